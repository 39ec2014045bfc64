-- depends_on: {{ ref('int_school_day_statuses') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year', 'week_start_date'], 'unique': True},
                 {'columns': ['school_urn', 'school_week_number']},
                 {'columns': ['session_marks_built_at']}],
        pre_hook="{{ forget_pupil_rows_from_first_changed_week(pupil_years_changed_since(newest_in_this('session_marks_built_at')), 'week_start_date')
                    if is_incremental() else '' }}",
    )
}}
-- One row per enrolment per school week it had marks in: the week's session counts
-- and the academic year's running totals as at the end of that week. The grain the
-- pupil-level marts sum instead of re-reading every session mark.
--
-- Incremental: a changed mark moves the running totals of its week and of every later
-- week of its academic year, and nothing earlier. So a night recomputes, for each
-- pupil-year whose marks it changed, the weeks from the first changed one on, and
-- carries the running totals forward from the stored week before it. A new day
-- touches only its own week. A day that opened or closed (int_school_day_statuses) makes
-- every pupil marked at its school from that day on changed, from its week. A pre-hook
-- first deletes the weeks to recompute (so a week whose open days have all closed goes),
-- and the recomputed weeks are appended (macros/pupil_weeks.sql); the unique index keeps the grain.
--
-- A full build goes a school at a time: it reads the school's marks by their (school_urn,
-- session_date) index, where each school-day lies together (fct_session_marks), and groups
-- them into weeks within the school. Over all the marks at once PostgreSQL sorted every mark on disk
-- (a 500 MB sort at 20 schools, growing with the history), and read in pupil order along the
-- pupil_key index each pupil's marks lie on a page a day (at 20 schools 19.7 s, the same rows
-- as 7.2 s a school at a time; at 100 schools, with the indexes, 90.8 / 101.5 s against 138.1 /
-- 132.6 s, alternated). Its rows then lie by school, not in pupil_key order, and the night after
-- a rebuild looks the pupils' weeks up in pupil_key order: 12.0 / 11.9 s against 10.9 / 11.5 s.
-- The nights append their weeks in pupil_key order, so that fades as they replace the last weeks.
{#- Every count has a running total, so a pupil-year's totals are its last week's
    (int_pupil_academic_years__sessions reads them there instead of summing every week). -#}
{% set measures = pupil_week_counts() %}
{% if is_incremental() %}
{% set changed_pupil_years = pupil_years_changed_since(newest_in_this('session_marks_built_at')) %}
{#- The week from which every school's marks are read in one range: the newest changed week, where
    most pupil-years changed only in it (a new day), unless more than a third changed earlier; then
    the earliest, and all are read in the range. The third is a judgement: a pupil's day looked up
    cost about 2.4 times what reading it in the range did (at 100 schools 89,180 lookups in
    0.37 s, 4.2 us each; 636,720 marks, 318,360 pupil-days, in the range in 0.55 s, 1.7 us
    each), but the range reads every pupil's day, changed or not. A literal, so an index on the date finds those marks; as a subquery
    PostgreSQL read every mark for it along the pupil_key index: at 100 schools, twelve nights
    after a rebuild, 39 M marks read to keep 1.9 M, 7.5 s warm and 22 s cold, against 5.5 and
    6.0 s (and 0.2 s to ask). -#}
{% set range_from = query_value_as_literal(
    'select case when 3 * count(*) filter (where first_changed_week < newest_week) <= count(*)'
    ~ ' then max(first_changed_week) else min(first_changed_week) end'
    ~ ' from (select first_changed_week, max(first_changed_week) over () as newest_week'
    ~ ' from (' ~ changed_pupil_years ~ ') as changed) as weeks',
    'date') %}
with
changed as (
    {{ changed_pupil_years }}
),

marks as (
    -- Every school's marks from range_from on. A night's changed pupil-years mostly begin there:
    -- at 100 schools 69,776 of 79,593 began in the new day's week, 9,817 in the re-sent window's
    -- two weeks before it. Reading every school's marks from the earliest changed week read
    -- 2.18 M marks to keep 761 k; this reads 764 k (the same night's select alone, alternated:
    -- 5.04, 4.89, 4.94 s before, 3.38, 3.53, 3.29 s after).
    select * from {{ ref('fct_session_marks') }}
    where session_date >= {{ range_from }}
    union all
    -- the marks before it of the pupil-years changed earlier, a day at a time along the unique
    -- (session_date, pupil_key, session_name) index (offset 0 keeps each day a lookup: joined,
    -- PostgreSQL read each pupil's every mark along the pupil_key index). Each pupil-year reads
    -- its own year's marks: a pupil changed in both years early in September would otherwise
    -- read this year's first days twice.
    select of_day.*
    from changed
    cross join generate_series(changed.first_changed_week, {{ range_from }} - 1, interval '1 day') as days_before (day)
    cross join lateral (
        select *
        from {{ ref('fct_session_marks') }} as stored
        where stored.session_date = cast(days_before.day as date)
          and stored.pupil_key = changed.pupil_key
          and stored.academic_year = changed.academic_year
        offset 0
    ) as of_day
    where changed.first_changed_week < {{ range_from }}
),

carried as (
    -- Each changed pupil-year's running totals at the end of the last week before its first
    -- changed one: one step back along the (pupil_key, academic_year, week_start_date) index,
    -- where ranking every stored week of the pupil-year read 856 k weeks at 100 schools (1.6 s).
    select changed.pupil_key, changed.academic_year, before_change.*
    from changed
    cross join lateral (
        select
            {% for measure in measures %}
            stored.year_to_date_{{ measure }} as carried_{{ measure }}{{ "," if not loop.last }}
            {% endfor %}
        from {{ this }} as stored
        where stored.pupil_key = changed.pupil_key
          and stored.academic_year = changed.academic_year
          and stored.week_start_date < changed.first_changed_week
        order by stored.week_start_date desc
        limit 1
    ) as before_change
),
{% else %}
select by_school.*
from (select distinct school_urn from {{ ref('int_school_days') }}) as schools
cross join lateral (
with
{% endif %}
weekly as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        days.week_start_date,
        days.academic_week_number,
        days.school_week_number,
        -- A week never spans two half-terms: they are separated by breaks of more than a week.
        days.half_term_number,
        min(marks.session_date) as first_session_date,
        max(marks.session_date) as last_session_date,
        {% if is_incremental() -%}
        -- Every recomputed week is as new as the night's changes: its running totals moved, and a
        -- week that lost a closed day's marks may hold no mark built tonight.
        greatest(max(marks.built_at), max(changed.newest_built_at)) as session_marks_built_at,
        {%- else -%}
        max(marks.built_at) as session_marks_built_at,
        {%- endif %}
        {{ attendance_session_sums() }}
    from {{ 'marks' if is_incremental() else ref('fct_session_marks') }} as marks
    inner join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    {% if is_incremental() %}
    inner join changed
        on marks.pupil_key = changed.pupil_key
        and marks.academic_year = changed.academic_year
        -- the same bound on the marks themselves, applied as they are read
        and marks.session_date >= changed.first_changed_week
        and days.week_start_date >= changed.first_changed_week
    {% endif %}
    cross join {{ ref('int_reporting_date') }} as reporting
    where marks.session_date <= reporting.as_of_date
    {% if not is_incremental() %}
      and marks.school_urn = schools.school_urn
    {% endif %}
    group by marks.pupil_key, marks.school_urn, marks.academic_year, days.week_start_date,
        days.academic_week_number, days.school_week_number, days.half_term_number
)

select
    weekly.*,
    -- Summed as integers and kept as integers: summing the weeks' bigints gave numerics, slower to
    -- add up (with twelve running totals a full build at 20 schools took 16.3 s, against 15.4 s),
    -- and bigints made the table 246 MB against 189 MB before (20 schools, July).
    {% for measure in measures %}
    cast(
        {% if is_incremental() %}coalesce(carried.carried_{{ measure }}, 0) + {% endif -%}
        sum(cast(weekly.{{ measure }} as {{ dbt.type_int() }})) over (
            partition by weekly.pupil_key, weekly.academic_year order by weekly.week_start_date
            rows between unbounded preceding and current row
        ) as {{ dbt.type_int() }}
    ) as year_to_date_{{ measure }}{{ "," if not loop.last }}
    {% endfor %}
from weekly
{% if is_incremental() %}
left join carried on weekly.pupil_key = carried.pupil_key and weekly.academic_year = carried.academic_year
{% else %}
) as by_school
{% endif %}
