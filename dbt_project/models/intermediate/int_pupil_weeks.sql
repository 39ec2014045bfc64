{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year']}, {'columns': ['school_urn', 'school_week_number']}],
    )
}}
-- One row per enrolment per school week it had marks in: the week's session counts
-- and the academic year's running totals as at the end of that week.
--
-- Incremental: a changed mark moves the running totals of every later week of its
-- academic year, so a night recomputes the whole year of each pupil whose marks it
-- changed, and nothing else.
with
{% if is_incremental() %}
touched as (
    select distinct pupil_key, academic_year
    from {{ ref('fct_session_marks') }}
    where built_at > (select max(session_marks_built_at) from {{ this }})
),
{% endif %}

weekly as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        days.week_start_date,
        days.academic_week_number,
        days.school_week_number,
        max(marks.built_at) as session_marks_built_at,
        {{ attendance_session_sums() }}
    from {{ ref('fct_session_marks') }} as marks
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    {% if is_incremental() %}
    inner join touched on marks.pupil_key = touched.pupil_key and marks.academic_year = touched.academic_year
    {% endif %}
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
