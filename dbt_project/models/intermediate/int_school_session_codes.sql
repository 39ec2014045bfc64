{{
    config(
        materialized='incremental',
        unique_key=['school_urn', 'session_date', 'session_name'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'session_date']}, {'columns': ['session_marks_built_at']}],
    )
}}
-- How many marks of each code each school recorded in each session: the small table
-- the school-level marts (open days, code mix, day-of-week patterns, open sessions)
-- aggregate, instead of each re-reading every pupil's marks.
--
-- Incremental: a night recounts only the sessions in which its extracts changed a mark.
{% if is_incremental() %}
{% set since = newest_in_this('session_marks_built_at') %}
with touched as (
    select distinct school_urn, session_date, session_name
    from {{ ref('fct_session_marks') }}
    where built_at > {{ since }}
),

marks as (
    select marks.*
    from {{ ref('fct_session_marks') }} as marks
    inner join touched
        on marks.school_urn = touched.school_urn
        and marks.session_date = touched.session_date
        and marks.session_name = touched.session_name
    -- the same dates as a bound the planner can see: otherwise it expected every session touched
    where marks.session_date >= {{ earliest_session_date_built_after(since) }}
)
{% else %}
with marks as (
    select * from {{ ref('fct_session_marks') }}
)
{% endif %}

select
    school_urn,
    session_date,
    session_name,
    academic_year,
    attendance_code,
    attendance_category,
    is_possible,
    is_absent,
    is_unauthorised_absence,
    is_late,
    cast(count(*) as {{ dbt.type_int() }}) as marks,
    max(built_at) as session_marks_built_at
from marks
group by school_urn, session_date, session_name, academic_year, attendance_code, attendance_category,
    is_possible, is_absent, is_unauthorised_absence, is_late
