-- depends_on: {{ ref('fct_session_marks') }}, {{ ref('int_school_day_statuses') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ forget_weeks_from_first_changed() if is_incremental() }}",
        on_schema_change='fail',
        indexes=[{'columns': ['session_marks_built_at']}],
    )
}}
-- Enrolments, PA/SA counts and session sums by trust and school, population and pupil
-- group, per week of the academic year (the enrolments of a week are those with marks
-- that week; PA/SA is year to date as at the end of the week).
--
-- One pass over the pupil weeks, at school level, counts every breakdown (grouping sets)
-- and both populations at once (statutory school age conditionally); the trust's figures
-- are its schools' summed (an enrolment belongs to one school). Reading the pupil weeks
-- once per breakdown, scope and population instead cost four times the scans.
--
-- Incremental: a changed mark moves the year-to-date figures of its week and every
-- later week of its academic year, so a night recomputes, in each academic year it
-- changed, the weeks from the first changed one on (for a new day: its own week),
-- deleting them first (macros/weekly_groups.sql), so a week that went (its only open day
-- closed) goes.
-- Weeks already built keep the pupil characteristics they were built with; a
-- full refresh restates every week with the latest ones.
{% set populations = {'whole_school': 'true', 'statutory_school_age': 'is_statutory_school_age'} %}
{#- The breakdowns grouped by a pupil characteristic, and the one (all pupils) labelled the same for everyone. -#}
{% set grouped_breakdowns, constant_breakdowns = [], [] %}
{%- for breakdown in pupil_breakdowns() %}
{%- do (constant_breakdowns if breakdown[1].startswith("'") else grouped_breakdowns).append(breakdown) %}
{%- endfor %}
{% set all_pupils_breakdown = constant_breakdowns | first %}
{% set counts = {
    'enrolments': '1',
    'persistent_absence_enrolments': 'case when is_persistent_absence_to_date then 1 else 0 end',
    'severe_absence_enrolments': 'case when is_severe_absence_to_date then 1 else 0 end',
} %}
{#- each summed output column, with the pupil-week column it sums -#}
{% set sums = {
    'week_possible_sessions': 'possible_sessions',
    'week_attended_sessions': 'attended_sessions',
    'year_to_date_possible_sessions': 'year_to_date_possible_sessions',
    'year_to_date_attended_sessions': 'year_to_date_attended_sessions',
} %}
with pupil_weeks as (
    {{ pupil_weeks_from_first_changed_week() }}
),

by_school as (
    -- Every breakdown in one pass over the pupil weeks (grouping sets): one set per
    -- breakdown, and the set with no breakdown column for all pupils.
    select
        school_urn,
        academic_year,
        academic_week_number,
        case
            {% for dimension, label in grouped_breakdowns %}
            when grouping(breakdown__{{ dimension }}) = 0 then '{{ dimension }}'
            {% endfor %}
            else '{{ all_pupils_breakdown[0] }}'
        end as dimension,
        -- a breakdown's label is never null, so the set's own column is the one not null
        coalesce({% for dimension, label in grouped_breakdowns %}breakdown__{{ dimension }}, {% endfor %}{{ all_pupils_breakdown[1] }})
            as dimension_value,
        {% for population, condition in populations.items() %}
        min(case when {{ condition }} then week_start_date end) as {{ population }}__week_start_date,
        {% for count, value in counts.items() %}
        sum(case when {{ condition }} then {{ value }} else 0 end) as {{ population }}__{{ count }},
        {% endfor %}
        {% for column, summed in sums.items() %}
        sum(case when {{ condition }} then {{ summed }} end) as {{ population }}__{{ column }},
        {% endfor %}
        max(case when {{ condition }} then session_marks_built_at end) as {{ population }}__session_marks_built_at
        {{- "," if not loop.last }}
        {% endfor %}
    from (
        select
            pupil_weeks.*,
            {% for dimension, label in grouped_breakdowns %}
            {{ label }} as breakdown__{{ dimension }}{{ "," if not loop.last }}
            {% endfor %}
        from pupil_weeks
    ) as labelled
    group by grouping sets (
        (school_urn, academic_year, academic_week_number),
        {% for dimension, label in grouped_breakdowns %}
        (school_urn, academic_year, academic_week_number, breakdown__{{ dimension }}){{ "," if not loop.last }}
        {% endfor %}
    )
),

schools as (
    {% for population in populations %}
    select
        'school' as scope,
        school_urn,
        academic_year,
        academic_week_number,
        {{ population }}__week_start_date as week_start_date,
        '{{ population }}' as population,
        dimension,
        dimension_value,
        {% for column in counts.keys() | list + sums.keys() | list %}
        {{ population }}__{{ column }} as {{ column }},
        {% endfor %}
        {{ population }}__session_marks_built_at as session_marks_built_at
    from by_school
    where {{ population }}__enrolments > 0
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

trust as (
    select
        'trust' as scope,
        cast(null as {{ dbt.type_string() }}) as school_urn,
        academic_year,
        academic_week_number,
        min(week_start_date) as week_start_date,
        population,
        dimension,
        dimension_value,
        {% for column in counts %}
        cast(sum({{ column }}) as {{ dbt.type_bigint() }}) as {{ column }},
        {% endfor %}
        {% for column in sums %}
        sum({{ column }}) as {{ column }},
        {% endfor %}
        max(session_marks_built_at) as session_marks_built_at
    from schools
    group by academic_year, academic_week_number, population, dimension, dimension_value
)

select * from trust
union all
select * from schools
