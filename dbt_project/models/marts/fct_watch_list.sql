{{ config(indexes=[{'columns': ['school_urn']}]) }}
-- Watch-list criteria per enrolment as at the as-at date (this academic year), and
-- whether the pupil is newly on the list since the end of the previous school week.
-- Thresholds: rules doc "Thresholds that trigger action" and the charter (seed 000).
-- Indexed by school: each school's watch lists and exception email read its rows
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
{% set persistent_lates = var('persistent_lates_in_4_weeks', 4) %}
with reporting as (
    {{ reporting_as_at() }}
),

offsets as (
    select 0 as weeks_ago union all select 1 as weeks_ago
),

year_to_date as (
    -- This academic year's session counts, the rows fct_pupil_attendance adds characteristics
    -- and rates to: read from where it reads them, this model builds beside it, not after it.
    select * from {{ ref('int_pupil_academic_years__sessions') }}
    where academic_year = (select academic_year from reporting)
),

windows as (
    -- Every enrolment with marks this year, as at each week's end: its sums over its last school
    -- weeks (none if it had no school week among them), and its year to date: this academic
    -- year's totals less what the weeks since added. Summing every week of the year instead
    -- grew with the year (12 weeks in November, 39 in July).
    select
        year_to_date.pupil_key,
        year_to_date.school_urn,
        offsets.weeks_ago,
        coalesce(recent.unauthorised_sessions_10_school_weeks, 0) as unauthorised_sessions_10_school_weeks,
        coalesce(recent.late_sessions_4_school_weeks, 0) as late_sessions_4_school_weeks,
        coalesce(recent.possible_sessions_4_school_weeks, 0) as possible_sessions_4_school_weeks,
        coalesce(recent.absence_sessions_4_school_weeks, 0) as absence_sessions_4_school_weeks,
        year_to_date.possible_sessions - coalesce(recent.possible_sessions_since, 0) as year_to_date_possible_sessions,
        year_to_date.attended_sessions - coalesce(recent.attended_sessions_since, 0) as year_to_date_attended_sessions,
        year_to_date.absence_sessions - coalesce(recent.absence_sessions_since, 0) as year_to_date_absence_sessions
    from year_to_date
    cross join offsets
    left join {{ ref('int_pupil_week_windows') }} as recent
        on year_to_date.pupil_key = recent.pupil_key and offsets.weeks_ago = recent.weeks_ago
),

criteria as (
    select
        windows.*,
        {{ is_persistent_absence('year_to_date_absence_sessions', 'year_to_date_possible_sessions') }} as is_persistent_absence,
        {{ is_severe_absence('year_to_date_absence_sessions', 'year_to_date_possible_sessions') }} as is_severe_absence,
        -- Risk of PA: attendance 90-92 %, or the last four school weeks below 90 %.
        not {{ is_persistent_absence('year_to_date_absence_sessions', 'year_to_date_possible_sessions') }}
        and (
            (year_to_date_attended_sessions * 100 < year_to_date_possible_sessions * 92)
            or {{ is_persistent_absence('absence_sessions_4_school_weeks', 'possible_sessions_4_school_weeks') }}
        ) as is_at_risk_of_persistent_absence,
        -- Risk of SA: absence of 40 % or more year to date, or half the last four school weeks.
        not {{ is_severe_absence('year_to_date_absence_sessions', 'year_to_date_possible_sessions') }}
        and (
            (year_to_date_possible_sessions > 0 and year_to_date_absence_sessions * 10 >= year_to_date_possible_sessions * 4)
            or {{ is_severe_absence('absence_sessions_4_school_weeks', 'possible_sessions_4_school_weeks') }}
        ) as is_at_risk_of_severe_absence,
        late_sessions_4_school_weeks >= {{ persistent_lates }} as has_persistent_lates,
        unauthorised_sessions_10_school_weeks >= 10 as has_reached_10_unauthorised_in_10_weeks
    from windows
),

listed as (
    select
        criteria.*,
        (is_persistent_absence or is_severe_absence or is_at_risk_of_persistent_absence
         or is_at_risk_of_severe_absence or has_persistent_lates or has_reached_10_unauthorised_in_10_weeks)
            as is_on_watch_list
    from criteria
),

this_week as (select * from listed where weeks_ago = 0),
last_week as (select * from listed where weeks_ago = 1)

-- Every enrolment with marks this year has a row, even one whose only marks so far are
-- closures ('#', no school week to count): it meets no criterion yet.
select
    year_to_date.pupil_key,
    year_to_date.school_urn,
    (select as_of_date from reporting) as as_of_date,
    {{ safe_ratio('year_to_date.attended_sessions', 'year_to_date.possible_sessions') }} as attendance_rate,
    cast(year_to_date.possible_sessions as {{ dbt.type_int() }}) as possible_sessions,
    cast(year_to_date.absence_sessions as {{ dbt.type_int() }}) as absence_sessions,
    cast(year_to_date.unauthorised_absence_sessions as {{ dbt.type_int() }}) as unauthorised_absence_sessions,
    cast(year_to_date.late_sessions as {{ dbt.type_int() }}) as late_sessions,
    coalesce(this_week.is_persistent_absence, false) as is_persistent_absence,
    coalesce(this_week.is_severe_absence, false) as is_severe_absence,
    coalesce(this_week.is_at_risk_of_persistent_absence, false) as is_at_risk_of_persistent_absence,
    coalesce(this_week.is_at_risk_of_severe_absence, false) as is_at_risk_of_severe_absence,
    coalesce(this_week.has_persistent_lates, false) as has_persistent_lates,
    cast(coalesce(this_week.late_sessions_4_school_weeks, 0) as {{ dbt.type_int() }}) as late_sessions_4_school_weeks,
    cast(coalesce(this_week.unauthorised_sessions_10_school_weeks, 0) as {{ dbt.type_int() }}) as unauthorised_sessions_10_school_weeks,
    coalesce(this_week.has_reached_10_unauthorised_in_10_weeks, false) as has_reached_10_unauthorised_in_10_weeks,
    cast(coalesce(streaks.consecutive_school_days_absent, 0) as {{ dbt.type_int() }}) as consecutive_school_days_absent,
    coalesce(streaks.consecutive_school_days_absent >= 1, false) as is_continuous_absence_day_1,
    coalesce(streaks.consecutive_school_days_absent >= 3, false) as is_continuous_absence_day_3,
    coalesce(streaks.consecutive_school_days_absent >= 5, false) as is_continuous_absence_day_5,
    cast(coalesce(streaks.consecutive_school_days_unauthorised, 0) as {{ dbt.type_int() }}) as consecutive_school_days_unauthorised,
    coalesce(streaks.consecutive_school_days_unauthorised >= 20, false) as has_20_consecutive_days_unauthorised,
    year_to_date.illness_sessions / 2.0 as illness_days_this_year,
    year_to_date.illness_sessions > 30 as has_over_15_days_illness,
    -- N codes this year not resolved within a few school days (var unresolved_n_code_school_days):
    -- all this year's less the recent ones.
    cast(year_to_date.n_code_sessions - coalesce(streaks.recent_n_code_sessions, 0) as {{ dbt.type_int() }})
        as unresolved_n_codes,
    case
        when year_to_date.possible_sessions = 0 then null
        when {{ is_severe_absence('year_to_date.absence_sessions', 'year_to_date.possible_sessions') }} then 'Stage 5: severe absence (<50%)'
        when {{ is_persistent_absence('year_to_date.absence_sessions', 'year_to_date.possible_sessions') }} then 'Stage 4: persistent absence (<90%)'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 92 then 'Stage 3: below 92%'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 95 then 'Stage 2: below 95%'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 97 then 'Stage 1: below 97%'
        else 'Acknowledge: 97% or above'
    end as graduated_response_stage,
    case
        when year_to_date.possible_sessions = 0 then null
        when {{ is_severe_absence('year_to_date.absence_sessions', 'year_to_date.possible_sessions') }}
            then 'Multi-agency review with the LA; safeguarding check'
        when {{ is_persistent_absence('year_to_date.absence_sessions', 'year_to_date.possible_sessions') }}
            then 'LON5 letter; refer to LA Attendance Support Team; consider penalty referral'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 92
            then 'LON4 letter; further Attendance Improvement Meeting with a senior leader'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 95
            then 'LON3 letter; Attendance Improvement Meeting and 4-week targets'
        when year_to_date.attended_sessions * 100 < year_to_date.possible_sessions * 97
            then 'LON2 letter of notification'
        else 'LON1 half-termly acknowledgement; rewards'
    end as suggested_action,
    coalesce(this_week.is_on_watch_list, false) as is_on_watch_list,
    coalesce(this_week.is_on_watch_list and not coalesce(last_week.is_on_watch_list, false), false)
        as is_new_on_watch_list
from year_to_date
left join this_week on year_to_date.pupil_key = this_week.pupil_key
left join last_week on year_to_date.pupil_key = last_week.pupil_key
left join {{ ref('int_pupil_absence_streaks') }} as streaks on year_to_date.pupil_key = streaks.pupil_key
