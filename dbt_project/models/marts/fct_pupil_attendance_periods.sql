-- One row per enrolment per reporting period (week, half-term, term) it had marks in.
with marks as (
    select
        marks.*,
        {{ dbt.concat(["'w/c '", dbt.safe_cast('days.week_start_date', api.Column.translate_type('string'))]) }} as week_label,
        {{ dbt.concat([term_name('days.half_term_number'), "' '", "case when days.half_term_number % 2 = 1 then '1' else '2' end"]) }}
            as half_term_label,
        {{ term_name('days.half_term_number') }} as term_label
    from {{ ref('fct_session_marks') }} as marks
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
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
    {{ attendance_rates() }}
from periods
