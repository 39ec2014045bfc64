-- depends_on: {{ ref('fct_session_marks') }}, {{ ref('int_school_day_statuses') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ forget_weeks_from_first_changed(years_after=1) if is_incremental() }}",
        on_schema_change='fail',
        indexes=[{'columns': ['academic_year', 'academic_week_number', 'scope', "coalesce(school_urn, '')",
                              'population', 'dimension', 'dimension_value'], 'unique': True},
                 {'columns': ['session_marks_built_at']}],
    )
}}
-- Persistent and severe absence, and attendance, by trust and school, for every
-- pupil group, as at the end of each week of the academic year, with the same
-- week of the previous academic year beside it.
-- population: whole_school, or statutory_school_age (Years 1-11, as national statistics).
-- The enrolments of a week are those with marks that week; their PA/SA status is
-- year to date as at the end of that week (DfE definitions, unrounded rates).
-- The counts are int_absence_by_group_weekly's (incremental); this adds the rates
-- and sets each week beside the same week of the year before.
--
-- Incremental, as int_absence_by_group_weekly: a night rebuilds, in each academic year
-- it changed, the weeks from the first changed one on, and the same weeks of the year
-- after (whose previous-year columns they are), deleting them first. Rebuilt whole, it took 34.1 s of the
-- night at 100 schools, the fourth slowest model. The grain is a unique index, not a data
-- test: it checks every row a build writes, where the test grouped all 680 k rows every night
-- (0.8-1.2 s at 100 schools) and a test of the newest rows would miss the next year's weeks,
-- which keep their own build time. It leads with the week, so the pre-hook's delete reads
-- the weeks it deletes through it and a night's rows go in at its end; trust rows have no
-- school, hence the coalesce.
with
{% if is_incremental() %}
first_changed_weeks as (
    {{ first_changed_weeks() }}
),

weeks_to_build as (
    select academic_year, first_changed_week from first_changed_weeks
    union all
    select academic_year + 1, first_changed_week from first_changed_weeks
),

weeks_built as materialized (
    -- The weeks this run writes, each one (the counts hold them): a year earlier, only these
    -- same weeks are read, not the rest of that year (at 20 schools, 82 k rows sorted for the
    -- join against 15 k; the query 0.7-1.0 s against 0.2-0.3 s).
    select distinct grouped.academic_year, grouped.academic_week_number
    from {{ ref('int_absence_by_group_weekly') }} as grouped
    inner join weeks_to_build
        on grouped.academic_year = weeks_to_build.academic_year
        and grouped.academic_week_number >= weeks_to_build.first_changed_week
),

{% endif %}
measured as (
    select
        grouped.*,
        {{ safe_ratio('persistent_absence_enrolments', 'enrolments') }} as persistent_absence_rate,
        {{ safe_ratio('severe_absence_enrolments', 'enrolments') }} as severe_absence_rate,
        {{ safe_ratio('week_attended_sessions', 'week_possible_sessions') }} as week_attendance_rate,
        {{ safe_ratio('year_to_date_attended_sessions', 'year_to_date_possible_sessions') }} as year_to_date_attendance_rate
    from {{ ref('int_absence_by_group_weekly') }} as grouped
    {% if is_incremental() %}
    -- the weeks to build, and the same weeks a year earlier that sit beside them
    where exists (
        select 1 from weeks_built
        where grouped.academic_year in (weeks_built.academic_year, weeks_built.academic_year - 1)
            and grouped.academic_week_number = weeks_built.academic_week_number
    )
    {% endif %}
)

select
    current_year.scope,
    current_year.school_urn,
    cast(current_year.academic_year as {{ dbt.type_int() }}) as academic_year,
    current_year.academic_week_number,
    current_year.week_start_date,
    current_year.population,
    current_year.dimension,
    current_year.dimension_value,
    cast(current_year.enrolments as {{ dbt.type_int() }}) as enrolments,
    cast(current_year.persistent_absence_enrolments as {{ dbt.type_int() }}) as persistent_absence_enrolments,
    current_year.persistent_absence_rate,
    cast(current_year.severe_absence_enrolments as {{ dbt.type_int() }}) as severe_absence_enrolments,
    current_year.severe_absence_rate,
    current_year.week_attendance_rate,
    current_year.year_to_date_attendance_rate,
    cast(previous_year.enrolments as {{ dbt.type_int() }}) as previous_year_enrolments,
    previous_year.persistent_absence_rate as previous_year_persistent_absence_rate,
    previous_year.severe_absence_rate as previous_year_severe_absence_rate,
    previous_year.week_attendance_rate as previous_year_week_attendance_rate,
    previous_year.year_to_date_attendance_rate as previous_year_year_to_date_attendance_rate,
    current_year.session_marks_built_at
from measured as current_year
left join measured as previous_year
    on previous_year.scope = current_year.scope
    and coalesce(previous_year.school_urn, '') = coalesce(current_year.school_urn, '')
    and previous_year.academic_year = current_year.academic_year - 1
    and previous_year.academic_week_number = current_year.academic_week_number
    and previous_year.population = current_year.population
    and previous_year.dimension = current_year.dimension
    and previous_year.dimension_value = current_year.dimension_value
{% if is_incremental() %}
where exists (
    select 1 from weeks_built
    where weeks_built.academic_year = current_year.academic_year
        and weeks_built.academic_week_number = current_year.academic_week_number
)
{% endif %}
