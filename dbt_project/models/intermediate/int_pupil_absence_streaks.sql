-- Each enrolment's current runs of absence as at the as-at date, in school days, and its N codes
-- of the last few school days: what fct_watch_list's continuous-absence and unresolved-N criteria
-- read. A model of its own, built from the session marks alone, so that it runs beside
-- int_pupil_weeks rather than at the end of the night after fct_pupil_attendance: at 100 schools
-- the watch list took 4.6 / 4.2 s against 8.8 / 8.4 s, and the night's dbt build 47.4 / 45.7 s
-- against 50.3 / 50.9 s.
{% set n_code_days = var('unresolved_n_code_school_days', 5) %}
{#- Runs of absence and N-code ages are read from this many recent school days (more
    for a pupil absent throughout them); it must be at least n_code_days. Two school weeks:
    at 100 schools, 20 days read 3.2 M marks a night and the watch list, which then worked these
    runs out, took 12.2 s; 10 days, 8.4 s. -#}
{% set streak_window_days = [10, n_code_days] | max %}

with reporting as (
    {{ reporting_as_at() }}
),

school_now as (
    {{ schools_as_at() }}
),

recent_window as (
    -- The last {{ streak_window_days }} school days of each school, and the date the earliest of them starts.
    select days.school_urn, min(days.school_day_number) as first_day, min(days.session_date) as first_date
    from {{ ref('int_school_days') }} as days
    inner join school_now on days.school_urn = school_now.school_urn
    where days.school_day_number > school_now.school_day_number - {{ streak_window_days }}
    group by days.school_urn
),

{% set pupil_day_columns %}
        marks.pupil_key,
        marks.school_urn,
        days.school_day_number,
        marks.academic_year,
        sum(case when marks.is_attending then 1 else 0 end) as attended,
        sum(case when marks.is_absent then 1 else 0 end) as absent,
        sum(case when marks.is_authorised_absence then 1 else 0 end) as authorised,
        sum(case when marks.attendance_code = 'N' then 1 else 0 end) as n_codes
{% endset %}
recent_pupil_days as (
    select {{ pupil_day_columns }}
    from {{ ref('fct_session_marks') }} as marks
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    inner join recent_window on days.school_urn = recent_window.school_urn
    where marks.session_date <= (select as_of_date from reporting)
      and marks.session_date >= (select min(first_date) from recent_window)
      and days.school_day_number >= recent_window.first_day
    group by marks.pupil_key, marks.school_urn, days.school_day_number, marks.academic_year
),

absent_throughout_window as (
    -- Pupils absent on every day of the window they have marks on: their runs started
    -- earlier, so their older days are read too (few pupils; by the pupil_key index).
    -- Anyone else's runs, of absence and of unauthorised absence, end inside the window.
    select pupil_key
    from recent_pupil_days
    group by pupil_key
    having max(case when not (absent > 0 and attended = 0) then 1 else 0 end) = 0
),

pupil_days as (
    select * from recent_pupil_days
    union all
    select {{ pupil_day_columns }}
    from absent_throughout_window
    inner join {{ ref('fct_session_marks') }} as marks on marks.pupil_key = absent_throughout_window.pupil_key
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    inner join recent_window on days.school_urn = recent_window.school_urn
    where days.school_day_number < recent_window.first_day
    group by marks.pupil_key, marks.school_urn, days.school_day_number, marks.academic_year
),

day_runs as (
    -- A day counts towards a run of absence when the pupil was absent and attended no session.
    select
        pupil_days.pupil_key,
        pupil_days.school_urn,
        max(pupil_days.school_day_number) as last_marked_day,
        max(case when not (pupil_days.absent > 0 and pupil_days.attended = 0) then pupil_days.school_day_number end)
            as last_day_not_absent,
        max(case when not (pupil_days.absent > 0 and pupil_days.attended = 0 and pupil_days.authorised = 0)
                 then pupil_days.school_day_number end)
            as last_day_not_unauthorised,
        min(pupil_days.school_day_number) - 1 as day_before_first_mark,
        sum(case when pupil_days.academic_year = (select academic_year from reporting)
                  and pupil_days.school_day_number > school_now.school_day_number - {{ n_code_days }}
                 then pupil_days.n_codes else 0 end) as recent_n_code_sessions
    from pupil_days
    inner join school_now on pupil_days.school_urn = school_now.school_urn
    group by pupil_days.pupil_key, pupil_days.school_urn
)

select
    day_runs.pupil_key,
    day_runs.school_urn,
    case when day_runs.last_marked_day = school_now.school_day_number
         then school_now.school_day_number - coalesce(day_runs.last_day_not_absent, day_runs.day_before_first_mark)
         else 0 end as consecutive_school_days_absent,
    case when day_runs.last_marked_day = school_now.school_day_number
         then school_now.school_day_number - coalesce(day_runs.last_day_not_unauthorised, day_runs.day_before_first_mark)
         else 0 end as consecutive_school_days_unauthorised,
    day_runs.recent_n_code_sessions
from day_runs
inner join school_now on day_runs.school_urn = school_now.school_urn
