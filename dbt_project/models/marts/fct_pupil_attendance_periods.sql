{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year', 'period_type', 'period_label'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year']}],
    )
}}
-- One row per enrolment per reporting period (week, half-term, term) it had marks in.
--
-- Incremental: a night recomputes only the terms in which its extracts changed a
-- pupil's marks (a term holds its half-terms and weeks, so every period row it
-- rewrites is complete); history stays as built.
with days as (
    select *, {{ term_name('half_term_number') }} as term_label from {{ ref('int_school_days') }}
),

{% if is_incremental() %}
touched_terms as (
    select distinct changed.pupil_key, changed.academic_year, days.term_label
    from {{ ref('fct_session_marks') }} as changed
    inner join days on changed.school_urn = days.school_urn and changed.session_date = days.session_date
    where changed.built_at > (select max(session_marks_built_at) from {{ this }})
),
{% endif %}

marks as (
    select
        marks.*,
        {{ dbt.concat(["'w/c '", dbt.safe_cast('days.week_start_date', api.Column.translate_type('string'))]) }} as week_label,
        {{ dbt.concat([term_name('days.half_term_number'), "' '", "case when days.half_term_number % 2 = 1 then '1' else '2' end"]) }}
            as half_term_label,
        days.term_label
    from {{ ref('fct_session_marks') }} as marks
    inner join days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    {% if is_incremental() %}
    inner join touched_terms
        on marks.pupil_key = touched_terms.pupil_key and marks.academic_year = touched_terms.academic_year
        and days.term_label = touched_terms.term_label
    {% endif %}
    cross join {{ ref('int_reporting_date') }} as reporting
    where marks.session_date <= reporting.as_of_date
),

periods as (
    {% for period_type, period_column in [('week', 'week_label'), ('half_term', 'half_term_label'), ('term', 'term_label')] %}
    select
        pupil_key,
        school_urn,
        academic_year,
        '{{ period_type }}' as period_type,
        {{ period_column }} as period_label,
        min(session_date) as period_start_date,
        max(session_date) as period_end_date,
        max(built_at) as session_marks_built_at,
        {{ attendance_session_sums() }}
    from marks
    group by pupil_key, school_urn, academic_year, {{ period_column }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    pupil_key,
    school_urn,
    academic_year,
    period_type,
    period_label,
    period_start_date,
    period_end_date,
    {% for measure in ['possible', 'present', 'approved_activity', 'attended', 'authorised_absence',
                       'unauthorised_absence', 'absence', 'late', 'late_after_register_closed', 'illness'] %}
    cast({{ measure }}_sessions as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(missing_marks as {{ dbt.type_int() }}) as missing_marks,
    {{ attendance_rates() }},
    session_marks_built_at
from periods
