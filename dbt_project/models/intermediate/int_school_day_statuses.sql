{{
    config(
        materialized='incremental',
        unique_key=['school_urn', 'session_date'],
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'session_date'], 'unique': True},
                 {'columns': ['status_changed_at']}],
    )
}}
-- One row per school and date with any mark: whether the school was open (at least one
-- possible session recorded) and when that last changed. An amendment can open a day (a
-- '#' made present) or close it (the last possible mark made '#'); every pupil marked at
-- the school from that day on then has weeks, closed-day figures and school-week numbers
-- to redo, though only one pupil's mark changed. The stored status is what tells a night
-- that a day flipped: int_school_days is rebuilt from the current marks alone.
--
-- Incremental: a night re-reads the days of the sessions it recounted in
-- int_school_session_codes (found by its session_marks_built_at index); status_changed_at
-- is that night's build time when a stored day's status differs, and stays as it was
-- otherwise (null: never changed since first seen).
{% if is_incremental() %}
{% set since = newest_in_this('session_marks_built_at') %}
with touched_days as (
    select distinct school_urn, session_date
    from {{ ref('int_school_session_codes') }}
    where session_marks_built_at > {{ since }}
),

days as (
    select codes.*
    from {{ ref('int_school_session_codes') }} as codes
    inner join touched_days
        on codes.school_urn = touched_days.school_urn and codes.session_date = touched_days.session_date
),
{% else %}
with days as (
    select * from {{ ref('int_school_session_codes') }}
),
{% endif %}

statuses as (
    select
        school_urn,
        session_date,
        academic_year,
        sum(case when is_possible then marks else 0 end) > 0 as is_open,
        max(session_marks_built_at) as session_marks_built_at
    from days
    group by school_urn, session_date, academic_year
)

select
    statuses.school_urn,
    statuses.session_date,
    statuses.academic_year,
    statuses.is_open,
    {% if is_incremental() %}
    case
        when stored.is_open <> statuses.is_open then statuses.session_marks_built_at
        else stored.status_changed_at
    end as status_changed_at,
    {% else %}
    cast(null as timestamptz) as status_changed_at,
    {% endif %}
    statuses.session_marks_built_at
from statuses
{% if is_incremental() %}
left join {{ this }} as stored
    on statuses.school_urn = stored.school_urn and statuses.session_date = stored.session_date
{% endif %}
