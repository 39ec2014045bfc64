-- depends_on: {{ ref('fct_session_marks') }}, {{ ref('int_school_day_statuses') }}
{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year', 'period_type', 'period_label'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year']}, {'columns': ['session_marks_built_at']}],
        pre_hook="{{ forget_pupil_rows_from_first_changed_week(pupil_years_at_days_opened_or_closed_since(newest_in_this('session_marks_built_at')), 'period_end_date')
                    if is_incremental() }}",
    )
}}
-- One row per enrolment per reporting period (week, half-term, term) it had marks in,
-- summed from the enrolment's school weeks (int_pupil_weeks): a week lies inside one
-- half-term, a half-term inside one term.
--
-- Incremental: a night rewrites only the weeks, half-terms and terms holding a week
-- whose marks it changed, summing each from all of its weeks; history stays as built.
-- When a day opens or closes, a pre-hook first deletes its school's pupils' periods from
-- that week on (macros/pupil_weeks.sql), and the half-term and term of each one's last week
-- before it are rewritten too: the week that went may have been their last.
{% set measures = attendance_measures() %}
{% if is_incremental() %}
{% set since = newest_in_this('session_marks_built_at') %}
with redone_from as (
    -- where an opened or closed day's pupil-years are redone from: their last week before it
    select flipped.pupil_key, flipped.academic_year, before_change.week_start_date, before_change.half_term_number
    from ({{ pupil_years_at_days_opened_or_closed_since(since) }}) as flipped
    cross join lateral (
        select weeks.week_start_date, weeks.half_term_number
        from {{ ref('int_pupil_weeks') }} as weeks
        where weeks.pupil_key = flipped.pupil_key
          and weeks.academic_year = flipped.academic_year
          and weeks.week_start_date < flipped.first_changed_week
        order by weeks.week_start_date desc
        limit 1
    ) as before_change
),

touched_terms as (
    select pupil_key, academic_year, {{ term_name('half_term_number') }} as term_label
    from {{ ref('int_pupil_weeks') }}
    -- after the newest marks this table has summed (an index answers it)
    where session_marks_built_at > {{ since }}
    union
    select pupil_key, academic_year, {{ term_name('half_term_number') }}
    from redone_from
),

pupil_weeks as (
    -- every week of a touched term, to sum its periods whole: each term's weeks looked up through
    -- the pupil-year index (offset 0 keeps the lateral a loop). Joined, PostgreSQL hashed every
    -- stored week, the whole history (at 20 schools 542 k weeks read for 125 k).
    select
        weeks.*,
        weeks.session_marks_built_at > {{ since }} or weeks.week_start_date >= redone_from.week_start_date
            as is_to_rewrite
    from touched_terms
    cross join lateral (
        select term_weeks.*
        from {{ ref('int_pupil_weeks') }} as term_weeks
        where term_weeks.pupil_key = touched_terms.pupil_key
          and term_weeks.academic_year = touched_terms.academic_year
          and {{ term_name('term_weeks.half_term_number') }} = touched_terms.term_label
        offset 0
    ) as weeks
    left join redone_from
        on weeks.pupil_key = redone_from.pupil_key and weeks.academic_year = redone_from.academic_year
),
{% else %}
with pupil_weeks as (
    select * from {{ ref('int_pupil_weeks') }}
),
{% endif %}

weeks_to_sum as (
    select
        *,
        {{ dbt.concat(["'w/c '", dbt.safe_cast('week_start_date', api.Column.translate_type('string'))]) }} as week_label,
        {{ dbt.concat([term_name('half_term_number'), "' '", "case when half_term_number % 2 = 1 then '1' else '2' end"]) }}
            as half_term_label,
        {{ term_name('half_term_number') }} as term_label
    from pupil_weeks
),

periods as (
    -- A week period is one pupil week (int_pupil_weeks' grain), taken as it is; half-terms
    -- and terms sum their weeks. Grouping every pupil week by itself took half a full build
    -- (at 20 schools, 2.5 of 4.7 s, spilling to disk).
    select
        pupil_key,
        school_urn,
        academic_year,
        'week' as period_type,
        week_label as period_label,
        first_session_date as period_start_date,
        last_session_date as period_end_date,
        session_marks_built_at,
        {% for measure in measures %}
        {{ measure }}_sessions,
        {% endfor %}
        missing_marks
    from weeks_to_sum
    {% if is_incremental() %}
    where session_marks_built_at > {{ since }}
    {% endif %}
    {% for period_type, period_column in [('half_term', 'half_term_label'), ('term', 'term_label')] %}
    union all
    select
        pupil_key,
        school_urn,
        academic_year,
        '{{ period_type }}' as period_type,
        {{ period_column }} as period_label,
        min(first_session_date) as period_start_date,
        max(last_session_date) as period_end_date,
        max(session_marks_built_at) as session_marks_built_at,
        {% for measure in measures %}
        sum({{ measure }}_sessions) as {{ measure }}_sessions,
        {% endfor %}
        sum(missing_marks) as missing_marks
    from weeks_to_sum
    group by pupil_key, school_urn, academic_year, {{ period_column }}
    {% if is_incremental() %}
    -- rewrite only the periods holding a changed week (the rest of the term is read to sum them)
    having bool_or(is_to_rewrite)
    {% endif %}
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
    {% for measure in measures %}
    cast({{ measure }}_sessions as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(missing_marks as {{ dbt.type_int() }}) as missing_marks,
    {{ attendance_rates() }},
    session_marks_built_at
from periods
