-- depends_on: {{ ref('int_pupil_weeks') }}
{{
    config(
        materialized='incremental',
        unique_key=['academic_year', 'academic_week_number'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Enrolments, PA/SA counts and session sums by trust and school, population and pupil
-- group, per week of the academic year (the enrolments of a week are those with marks
-- that week; PA/SA is year to date as at the end of the week).
--
-- Incremental: a changed mark moves the year-to-date figures of its week and every
-- later week of its academic year, so a night recomputes, in each academic year it
-- changed, the weeks from the first changed one on (for a new day: its own week).
-- Weeks already built keep the pupil characteristics they were built with; a
-- full refresh restates every week with the latest ones.
with pupil_weeks as (
    {{ pupil_weeks_from_first_changed_week() }}
),

grouped as (
    {% for dimension, label in pupil_breakdowns() %}
    {% for scope in ['trust', 'school'] %}
    {% for population in ['whole_school', 'statutory_school_age'] %}
    select
        '{{ scope }}' as scope,
        {{ "school_urn" if scope == 'school' else "cast(null as " ~ dbt.type_string() ~ ")" }} as school_urn,
        academic_year,
        academic_week_number,
        min(week_start_date) as week_start_date,
        '{{ population }}' as population,
        '{{ dimension }}' as dimension,
        {{ label }} as dimension_value,
        count(*) as enrolments,
        sum(case when is_persistent_absence_to_date then 1 else 0 end) as persistent_absence_enrolments,
        sum(case when is_severe_absence_to_date then 1 else 0 end) as severe_absence_enrolments,
        sum(possible_sessions) as week_possible_sessions,
        sum(attended_sessions) as week_attended_sessions,
        sum(year_to_date_possible_sessions) as year_to_date_possible_sessions,
        sum(year_to_date_attended_sessions) as year_to_date_attended_sessions,
        max(session_marks_built_at) as session_marks_built_at
    from pupil_weeks
    {% if population == 'statutory_school_age' %}where is_statutory_school_age{% endif %}
    group by {{ "school_urn, " if scope == 'school' else "" }}academic_year, academic_week_number
        {%- if not label.startswith("'") %}, {{ label }}{% endif %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from grouped
