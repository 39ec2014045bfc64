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
-- The pupil premium attendance gap: PP vs non-PP attendance and persistent absence,
-- year to date as at the end of each week, by trust, phase and school, for all pupils
-- and each year group; with the national FSM gap and the trust's 2019 aspiration
-- (primary 2.1, secondary 3.6 points) from the benchmarks seed.
-- Gaps are in percentage points: positive means PP pupils attend less.
--
-- Incremental: a changed mark moves the year-to-date figures of its week and every
-- later week of its academic year, so a night recomputes, in each academic year it
-- changed, the weeks from the first changed one on, deleting them first so a week that
-- went (its only open day closed) goes. A full refresh restates every
-- week with the latest pupil characteristics and benchmarks.
{#- What each school, phase and year group counts; every scope sums the same counts. -#}
{% set counts = {
    'pupil_premium_enrolments': 'case when is_pupil_premium then 1 else 0 end',
    'other_enrolments': 'case when not is_pupil_premium then 1 else 0 end',
    'pp_attended': 'case when is_pupil_premium then year_to_date_attended_sessions else 0 end',
    'pp_possible': 'case when is_pupil_premium then year_to_date_possible_sessions else 0 end',
    'other_attended': 'case when not is_pupil_premium then year_to_date_attended_sessions else 0 end',
    'other_possible': 'case when not is_pupil_premium then year_to_date_possible_sessions else 0 end',
    'pp_persistent': 'case when is_pupil_premium and is_persistent_absence_to_date then 1 else 0 end',
    'other_persistent': 'case when not is_pupil_premium and is_persistent_absence_to_date then 1 else 0 end',
} %}
with pupil_weeks as (
    select *, year_group_label as year_group
    from ({{ pupil_weeks_from_first_changed_week() }}) as to_compute
),

by_school_and_year_group as (
    -- One pass over the pupil weeks: every scope and year-group breakdown below sums these
    -- counts (an enrolment belongs to one school). Grouping the pupil weeks once per
    -- breakdown read them six times.
    select
        school_urn,
        phase,
        academic_year,
        academic_week_number,
        year_group,
        min(week_start_date) as week_start_date,
        {% for count, value in counts.items() %}
        sum({{ value }}) as {{ count }},
        {% endfor %}
        max(session_marks_built_at) as session_marks_built_at
    from pupil_weeks
    group by school_urn, phase, academic_year, academic_week_number, year_group
),

grouped as (
    {% for scope, scope_key in [('trust', "'Trust'"), ('phase', 'phase'), ('school', 'school_urn')] %}
    {% for year_group in ['all', 'each'] %}
    select
        '{{ scope }}' as scope,
        {{ scope_key }} as scope_value,
        max(phase) as phase_if_single,
        count(distinct phase) as phases,
        academic_year,
        academic_week_number,
        min(week_start_date) as week_start_date,
        {{ "'All'" if year_group == 'all' else 'year_group' }} as year_group,
        {% for count in counts %}
        sum({{ count }}) as {{ count }},
        {% endfor %}
        max(session_marks_built_at) as session_marks_built_at
    from by_school_and_year_group
    group by {% if not scope_key.startswith("'") %}{{ scope_key }}, {% endif %}academic_year, academic_week_number
        {%- if year_group == 'each' %}, year_group{% endif %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

measured as (
    select
        grouped.*,
        case when phases = 1 then phase_if_single end as phase,
        {{ safe_ratio('pp_attended', 'pp_possible') }} as pupil_premium_attendance_rate,
        {{ safe_ratio('other_attended', 'other_possible') }} as other_attendance_rate,
        {{ safe_ratio('pp_persistent', 'pupil_premium_enrolments') }} as pupil_premium_persistent_absence_rate,
        {{ safe_ratio('other_persistent', 'other_enrolments') }} as other_persistent_absence_rate
    from grouped
),

benchmarks as (
    select benchmark_key, phase, value from {{ ref('national_benchmarks') }} where area = 'England'
)

select
    measured.scope,
    measured.scope_value,
    measured.phase,
    cast(measured.academic_year as {{ dbt.type_int() }}) as academic_year,
    measured.academic_week_number,
    measured.week_start_date,
    measured.year_group,
    cast(measured.pupil_premium_enrolments as {{ dbt.type_int() }}) as pupil_premium_enrolments,
    cast(measured.other_enrolments as {{ dbt.type_int() }}) as other_enrolments,
    measured.pupil_premium_attendance_rate,
    measured.other_attendance_rate,
    (measured.other_attendance_rate - measured.pupil_premium_attendance_rate) * 100 as attendance_gap_points,
    measured.pupil_premium_persistent_absence_rate,
    measured.other_persistent_absence_rate,
    (measured.pupil_premium_persistent_absence_rate - measured.other_persistent_absence_rate) * 100
        as persistent_absence_gap_points,
    national_gap.value as national_fsm_attendance_gap_points,
    aspiration.value as aspiration_gap_points,
    measured.session_marks_built_at
from measured
left join benchmarks as national_gap
    on national_gap.benchmark_key = 'fsm_absence_gap_points' and national_gap.phase = 'all'
left join benchmarks as aspiration
    on aspiration.benchmark_key = 'pupil_premium_gap_aspiration_points' and aspiration.phase = measured.phase
