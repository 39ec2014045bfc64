-- One row per enrolment per school week it had marks in: the week's session counts
-- and the academic year's running totals as at the end of that week.
with weekly as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        days.week_start_date,
        days.academic_week_number,
        days.school_week_number,
        {{ attendance_session_sums() }}
    from {{ ref('fct_session_marks') }} as marks
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    cross join {{ ref('int_reporting_date') }} as reporting
    where marks.session_date <= reporting.as_of_date
    group by marks.pupil_key, marks.school_urn, marks.academic_year, days.week_start_date,
        days.academic_week_number, days.school_week_number
)

select
    weekly.*,
    {% for measure in ['possible_sessions', 'attended_sessions', 'absence_sessions', 'unauthorised_absence_sessions', 'late_sessions'] %}
    sum({{ measure }}) over (
        partition by pupil_key, academic_year order by week_start_date
        rows between unbounded preceding and current row
    ) as year_to_date_{{ measure }}{{ "," if not loop.last }}
    {% endfor %}
from weekly
