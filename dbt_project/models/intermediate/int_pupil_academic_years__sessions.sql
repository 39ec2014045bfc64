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
-- the running totals of its last school week (int_pupil_weeks, open days only), plus its marks on
-- days the school was closed ('#' for everyone, or nothing possible recorded): those count no possible
-- session but still make an enrolment "with marks" and can be missing marks.
--
-- Incremental: a night recounts only the pupil-years whose marks it built
-- (int_pupil_academic_years__marked); earlier years stay as built. fct_pupil_attendance re-summed
-- every pupil week of history each night instead (11.9 s at 100 schools, on the night's critical path).
-- A closed day adds no session, only its dates and missing marks, which are kept in their own
-- columns: a re-summed year takes its closed-day figures from its marks only if one of them may
-- have changed (or a day at its school opened or closed), and otherwise keeps the stored ones.
{% set measures = attendance_measures() %}
{% if is_incremental() %}{% set since = newest_in_this('session_marks_built_at') %}{% endif %}
with pupil_years as (
    select pupil_key, academic_year, session_marks_built_at
    from {{ ref('int_pupil_academic_years__marked') }}
    {% if is_incremental() %}
    where session_marks_built_at > {{ since }}
    {% endif %}
    -- in pupil order, as the weeks' index holds them, for the lookups below
    order by pupil_key, academic_year
),

closed_days as (
    select school_urn, session_date, academic_year
    from {{ ref('int_school_day_statuses') }}
    where not is_open
      and session_date <= (select as_of_date from {{ ref('int_reporting_date') }})
),

{% if is_incremental() %}
closed_day_changes as (
    -- The pupil-years with a mark built since (fct_session_marks' built_at index) on a closed day,
    -- or on or before their last stored closed day, which may have opened since; and those with
    -- marks at a school from a day that opened or closed since.
    select marks.pupil_key, marks.school_urn, marks.academic_year
    from {{ ref('fct_session_marks') }} as marks
    left join closed_days
        on marks.school_urn = closed_days.school_urn and marks.session_date = closed_days.session_date
    left join {{ this }} as stored
        on marks.pupil_key = stored.pupil_key and marks.academic_year = stored.academic_year
    where marks.built_at > {{ since }}
      and (closed_days.session_date is not null or marks.session_date <= stored.closed_day_last_session_date)
    union
    select pupil_key, school_urn, academic_year
    from ({{ pupil_years_at_days_opened_or_closed_since(since) }}) as flipped
),
{% endif %}

closed_day_marks as (
    {% if is_incremental() %}
    -- The changed pupil-years' marks on their school's closed days of the year, each looked up by
    -- the marks' unique (session_date, pupil_key, session_name) index. Joined instead, PostgreSQL
    -- read every closed day's marks to find them (317,866 at 100 schools, one to a heap block:
    -- 1.1 s with a warm cache, 7 s cold) for the few that changed (262 and 1,466 pupil-years on two nights).
    select changes.pupil_key, changes.school_urn, changes.academic_year, marks.session_date, marks.is_missing_mark
    from closed_day_changes as changes
    inner join closed_days
        on changes.school_urn = closed_days.school_urn and changes.academic_year = closed_days.academic_year
    cross join lateral (
        select pupil_marks.session_date, pupil_marks.is_missing_mark
        from {{ ref('fct_session_marks') }} as pupil_marks
        where pupil_marks.pupil_key = changes.pupil_key and pupil_marks.session_date = closed_days.session_date
        offset 0
    ) as marks
    {% else %}
    select marks.pupil_key, marks.school_urn, marks.academic_year, marks.session_date, marks.is_missing_mark
    from {{ ref('fct_session_marks') }} as marks
    inner join closed_days
        on marks.school_urn = closed_days.school_urn and marks.session_date = closed_days.session_date
    {% endif %}
),

closed_day_sessions as (
    select
        pupil_key,
        school_urn,
        academic_year,
        min(session_date) as closed_day_first_session_date,
        max(session_date) as closed_day_last_session_date,
        sum(case when is_missing_mark then 1 else 0 end) as closed_day_missing_marks
    from closed_day_marks
    group by pupil_key, school_urn, academic_year
    {% if is_incremental() %}
    union all
    -- the other years keep the closed-day figures they had (the re-summed ones are picked below)
    select stored.pupil_key, stored.school_urn, stored.academic_year, stored.closed_day_first_session_date,
        stored.closed_day_last_session_date, stored.closed_day_missing_marks
    from {{ this }} as stored
    where stored.closed_day_first_session_date is not null
      and not exists (
          select 1 from closed_day_changes
          where closed_day_changes.pupil_key = stored.pupil_key and closed_day_changes.academic_year = stored.academic_year
      )
    {% endif %}
),

weeks_and_closed_days as (
    -- each branch joins the pupil-years to sum, so a night reads only their weeks and closed days
    select pupil_years.pupil_key, last_week.school_urn, pupil_years.academic_year, first_week.first_session_date,
        last_week.last_session_date,
        {% for measure in measures %}last_week.year_to_date_{{ measure }}_sessions as {{ measure }}_sessions, {% endfor %}
        last_week.year_to_date_missing_marks as missing_marks,
        cast(null as date) as closed_day_first_session_date, cast(null as date) as closed_day_last_session_date,
        0 as closed_day_missing_marks, pupil_years.session_marks_built_at
    from pupil_years
    -- A year's weeks sum to its last week's running totals: two steps along the
    -- (pupil_key, academic_year, week_start_date) index, where summing every week grew with the
    -- year (at 20 schools 2.0 s a night in November, 3.6 s in July).
    cross join lateral (
        select *
        from {{ ref('int_pupil_weeks') }} as weeks
        where weeks.pupil_key = pupil_years.pupil_key and weeks.academic_year = pupil_years.academic_year
        order by weeks.week_start_date desc
        limit 1
    ) as last_week
    cross join lateral (
        select weeks.first_session_date
        from {{ ref('int_pupil_weeks') }} as weeks
        where weeks.pupil_key = pupil_years.pupil_key and weeks.academic_year = pupil_years.academic_year
        order by weeks.week_start_date
        limit 1
    ) as first_week
    union all
    select closed.pupil_key, closed.school_urn, closed.academic_year,
        closed.closed_day_first_session_date, closed.closed_day_last_session_date,
        {% for measure in measures %}0, {% endfor %}closed.closed_day_missing_marks,
        closed.closed_day_first_session_date, closed.closed_day_last_session_date,
        closed.closed_day_missing_marks, pupil_years.session_marks_built_at
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
    min(closed_day_first_session_date) as closed_day_first_session_date,
    max(closed_day_last_session_date) as closed_day_last_session_date,
    cast(sum(closed_day_missing_marks) as {{ dbt.type_int() }}) as closed_day_missing_marks,
    session_marks_built_at
from weeks_and_closed_days
group by pupil_key, school_urn, academic_year, session_marks_built_at
