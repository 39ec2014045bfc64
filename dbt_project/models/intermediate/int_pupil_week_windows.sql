-- Sums over each enrolment's last school weeks, as at the end of its school's current school
-- week (weeks_ago = 0) and of the one before (weeks_ago = 1): the windows fct_watch_list's
-- criteria read, and, this academic year, what the weeks after each end added, which
-- fct_watch_list takes off the year's totals.
-- A model of its own because it reads only the pupil weeks: dbt builds it beside the year's
-- totals (int_pupil_academic_years__sessions, fct_pupil_attendance), not after them on the
-- night's longest chain of models, where at 100 schools these sums were 1.9-2.1 s of
-- fct_watch_list's 3.5-4.6 s.
{#- The sums over each pupil's last school weeks: (column, pupil-week measure, school weeks). -#}
{% set window_sums = [
    ('unauthorised_sessions_10_school_weeks', 'unauthorised_absence_sessions', 10),
    ('late_sessions_4_school_weeks', 'late_sessions', 4),
    ('possible_sessions_4_school_weeks', 'possible_sessions', 4),
    ('absence_sessions_4_school_weeks', 'absence_sessions', 4)] %}
{#- The school weeks read: the longest window, as at the end of last week (weeks_ago = 1). -#}
{% set school_weeks_read = (window_sums | map(attribute='2') | max) + 1 %}
{#- The year-to-date counts fct_watch_list's criteria take, as this year's totals less the weeks since. -#}
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

weeks_read_from as (
    -- The earliest week the windows sum: the first of any school's last school weeks read
    -- (last week's ten-week window: 11). A week starts on or after six days before its first school
    -- day. Bounding the weeks read by it leaves older weeks unread, so the read is the same size
    -- in July as in September.
    select min(days.session_date) - 6 as week_start_date
    from {{ ref('int_school_days') }} as days
    inner join school_now on days.school_urn = school_now.school_urn
    where days.school_week_number > school_now.school_week_number - {{ school_weeks_read }}
)

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
