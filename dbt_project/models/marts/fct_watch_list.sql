{{ config(indexes=[{'columns': ['school_urn']}]) }}
-- Watch-list criteria per enrolment as at the as-at date (this academic year), and
-- whether the pupil is newly on the list since the end of the previous school week.
-- Thresholds: rules doc "Thresholds that trigger action" and the charter (seed 000).
-- Indexed by school: each school's watch lists and exception email read its rows
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
{% set persistent_lates = var('persistent_lates_in_4_weeks', 4) %}
{#- The sums over each pupil's last school weeks: (column, pupil-week measure, school weeks). -#}
{% set window_sums = [
    ('unauthorised_sessions_10_school_weeks', 'unauthorised_absence_sessions', 10),
    ('late_sessions_4_school_weeks', 'late_sessions', 4),
    ('possible_sessions_4_school_weeks', 'possible_sessions', 4),
    ('absence_sessions_4_school_weeks', 'absence_sessions', 4)] %}
{#- The school weeks read: the longest window, as at the end of last week (weeks_ago = 1). -#}
{% set school_weeks_read = (window_sums | map(attribute='2') | max) + 1 %}
{#- The year-to-date counts the criteria take, as this year's totals less the weeks since. -#}
{% set year_to_date_measures = ['possible', 'attended', 'absence'] %}

with reporting as (
    {{ reporting_as_at() }}
),

school_now as (
    {{ schools_as_at() }}
),

offsets as (
    select 0 as weeks_ago union all select 1 as weeks_ago
),

year_to_date as (
    select * from {{ ref('fct_pupil_attendance') }}
    where academic_year = (select academic_year from reporting)
),

weeks_read_from as (
    -- The earliest week the windows below sum: the first of any school's last school weeks read
    -- (last week's ten-week window: 11). A week starts on or after six days before its first school
    -- day. Bounding the weeks read by it leaves older weeks unread, so the read is the same size
    -- in July as in September.
    select min(days.session_date) - 6 as week_start_date
    from {{ ref('int_school_days') }} as days
    inner join school_now on days.school_urn = school_now.school_urn
    where days.school_week_number > school_now.school_week_number - {{ school_weeks_read }}
),

recent_weeks as (
    -- Sums over each enrolment's last school weeks as at the end of this school week
    -- (weeks_ago = 0) and of the one before; and, this academic year, what the weeks after that
    -- end added, to take off the year's totals.
    select
        weeks.pupil_key,
        offsets.weeks_ago,
        {% for column, measure, weeks_in_window in window_sums %}
        sum(case when weeks.school_week_number <= school_now.school_week_number - offsets.weeks_ago
                  and weeks.school_week_number > school_now.school_week_number - offsets.weeks_ago - {{ weeks_in_window }}
                 then weeks.{{ measure }} else 0 end) as {{ column }},
        {% endfor %}
        {% for measure in year_to_date_measures %}
        sum(case when weeks.school_week_number > school_now.school_week_number - offsets.weeks_ago
                  and weeks.academic_year = (select academic_year from reporting)
                 then weeks.{{ measure }}_sessions else 0 end) as {{ measure }}_sessions_since{{ "," if not loop.last }}
        {% endfor %}
    from {{ ref('int_pupil_weeks') }} as weeks
    inner join school_now on weeks.school_urn = school_now.school_urn
    cross join offsets
    where weeks.week_start_date >= (select week_start_date from weeks_read_from)
      and weeks.school_week_number > school_now.school_week_number - {{ school_weeks_read }}
    group by weeks.pupil_key, offsets.weeks_ago
),

windows as (
    -- Every enrolment with marks this year, as at each week's end: its year to date is this
    -- academic year's totals (fct_pupil_attendance) less what the weeks since added. Summing
    -- every week of the year instead grew with the year (12 weeks in November, 39 in July).
    select
        year_to_date.pupil_key,
        year_to_date.school_urn,
        offsets.weeks_ago,
        {% for column, _, _ in window_sums %}
        coalesce(recent_weeks.{{ column }}, 0) as {{ column }},
        {% endfor %}
        {% for measure in year_to_date_measures %}
        year_to_date.{{ measure }}_sessions - coalesce(recent_weeks.{{ measure }}_sessions_since, 0)
            as year_to_date_{{ measure }}_sessions{{ "," if not loop.last }}
        {% endfor %}
    from year_to_date
    cross join offsets
    left join recent_weeks
        on year_to_date.pupil_key = recent_weeks.pupil_key and offsets.weeks_ago = recent_weeks.weeks_ago
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
    year_to_date.attendance_rate,
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
