{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year'], 'unique': True}],
    )
}}
-- One row per enrolment per academic year with marks up to the as-at date: its session counts,
-- summed from its school weeks (int_pupil_weeks, open days only) plus its marks on days the
-- school was closed ('#' for everyone, or nothing possible recorded): those count no possible
-- session but still make an enrolment "with marks" and can be missing marks.
--
-- Incremental: a night re-sums, from all their weeks, only the pupil-years whose marks it built
-- (int_pupil_academic_years__marked); earlier years stay as built. fct_pupil_attendance re-summed
-- every pupil week of history each night instead (11.9 s at 100 schools, on the night's critical path).
{% set measures = attendance_measures() %}
with pupil_years as (
    select pupil_key, academic_year, session_marks_built_at
    from {{ ref('int_pupil_academic_years__marked') }}
    {% if is_incremental() %}
    where session_marks_built_at > {{ newest_in_this('session_marks_built_at') }}
    {% endif %}
),

closed_days as (
    select school_urn, session_date
    from {{ ref('int_school_session_codes') }}
    where session_date <= (select as_of_date from {{ ref('int_reporting_date') }})
    group by school_urn, session_date
    having sum(case when is_possible then marks else 0 end) = 0
),

closed_day_sessions as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        min(marks.session_date) as first_session_date,
        max(marks.session_date) as last_session_date,
        {{ attendance_session_sums() }}
    from {{ ref('fct_session_marks') }} as marks
    inner join closed_days
        on marks.school_urn = closed_days.school_urn and marks.session_date = closed_days.session_date
    group by marks.pupil_key, marks.school_urn, marks.academic_year
),

weeks_and_closed_days as (
    -- each branch joins the pupil-years to sum, so a night reads only their weeks
    select weeks.pupil_key, weeks.school_urn, weeks.academic_year, weeks.first_session_date, weeks.last_session_date,
        {% for measure in measures %}weeks.{{ measure }}_sessions, {% endfor %}weeks.missing_marks,
        pupil_years.session_marks_built_at
    from {{ ref('int_pupil_weeks') }} as weeks
    inner join pupil_years
        on weeks.pupil_key = pupil_years.pupil_key and weeks.academic_year = pupil_years.academic_year
    union all
    select closed.pupil_key, closed.school_urn, closed.academic_year, closed.first_session_date, closed.last_session_date,
        {% for measure in measures %}closed.{{ measure }}_sessions, {% endfor %}closed.missing_marks,
        pupil_years.session_marks_built_at
    from closed_day_sessions as closed
    inner join pupil_years
        on closed.pupil_key = pupil_years.pupil_key and closed.academic_year = pupil_years.academic_year
)

select
    pupil_key,
    school_urn,
    academic_year,
    min(first_session_date) as first_session_date,
    max(last_session_date) as last_session_date,
    {% for measure in measures %}
    cast(sum({{ measure }}_sessions) as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(sum(missing_marks) as {{ dbt.type_int() }}) as missing_marks,
    session_marks_built_at
from weeks_and_closed_days
group by pupil_key, school_urn, academic_year, session_marks_built_at
