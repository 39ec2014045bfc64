-- depends_on: {{ ref('fct_session_marks') }}, {{ ref('int_school_day_statuses') }}, {{ ref('int_school_days') }}
{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year', 'period_type', 'period_label'],
        incremental_strategy='bounded_delete_insert',
        meta={'bounded_by': ['academic_year']},
        on_schema_change='fail',
        indexes=[{'columns': ['pupil_key', 'academic_year']}, {'columns': ['session_marks_built_at']}],
        pre_hook="{{ forget_pupil_rows_from_first_changed_week(pupil_years_at_days_opened_or_closed_since(newest_in_this('session_marks_built_at')), 'period_end_date')
                    if is_incremental() }}",
    )
}}
-- One row per enrolment per reporting period (week, half-term, term) it had marks in,
-- from the enrolment's school weeks (int_pupil_weeks): a week lies inside one half-term,
-- a half-term inside one term.
--
-- Incremental: a night rewrites only the weeks, half-terms and terms holding a week whose
-- marks it changed; history stays as built. A rewritten half-term or term is not summed from
-- its weeks again but read off two of them: int_pupil_weeks carries the year's running totals,
-- so a period's counts are its last week's totals less its first week's, plus the first week's
-- own counts. When a day opens or closes, a pre-hook first deletes its school's pupils' periods
-- from that week on (macros/pupil_weeks.sql), and the half-term and term of each one's last
-- week before it are rewritten too: the week that went may have been their last. dbt's delete of
-- the rows replaced probes only the academic years from the earliest the night rewrote
-- (bounded_delete_insert, macros/incremental.sql), not the whole history.
{% set counts = pupil_week_counts() %}
{% if is_incremental() %}
{% set since = newest_in_this('session_marks_built_at') %}
with weeks as (
    -- the weeks recomputed after the newest this table has read (an index answers it): each
    -- changed pupil-year's weeks from its first changed one to its last
    select * from {{ ref('int_pupil_weeks') }}
    where session_marks_built_at > {{ since }}
),

half_terms_to_rewrite as (
    select pupil_key, school_urn, academic_year, half_term_number
    from weeks
    union
    -- the half-term of an opened or closed day's pupil-years' last week before it
    select flipped.pupil_key, flipped.school_urn, flipped.academic_year, before_change.half_term_number
    from ({{ pupil_years_at_days_opened_or_closed_since(since) }}) as flipped
    cross join lateral (
        select stored.half_term_number
        from {{ ref('int_pupil_weeks') }} as stored
        where stored.pupil_key = flipped.pupil_key
          and stored.academic_year = flipped.academic_year
          and stored.week_start_date < flipped.first_changed_week
        order by stored.week_start_date desc
        limit 1
    ) as before_change
),

school_half_terms as (
    select school_urn, academic_year, half_term_number, min(week_start_date) as first_week, max(week_start_date) as last_week
    from {{ ref('int_school_days') }}
    group by school_urn, academic_year, half_term_number
),

school_periods as (
    -- each school half-term's own bounds, and those of the term it lies in
    select school_urn, academic_year, half_term_number, 'half_term' as period_type,
        {{ half_term_name('half_term_number') }} as period_label, first_week, last_week
    from school_half_terms
    union all
    select school_urn, academic_year, half_term_number, 'term', {{ term_name('half_term_number') }},
        min(first_week) over (partition by school_urn, academic_year, {{ term_name('half_term_number') }}),
        max(last_week) over (partition by school_urn, academic_year, {{ term_name('half_term_number') }})
    from school_half_terms
),

periods_to_rewrite as (
    -- each rewritten half-term and its term, with the weeks they span at the school (a term's
    -- two half-terms give it once)
    select distinct
        touched.pupil_key,
        touched.school_urn,
        touched.academic_year,
        school.period_type,
        school.period_label,
        school.first_week,
        school.last_week
    from half_terms_to_rewrite as touched
    inner join school_periods as school
        on touched.school_urn = school.school_urn
        and touched.academic_year = school.academic_year
        and touched.half_term_number = school.half_term_number
    -- in pupil order, as int_pupil_weeks' index holds them, for the lookups below
    order by touched.pupil_key, touched.academic_year
),

longer_periods as (
    -- Each period's first and last week, one step along int_pupil_weeks' (pupil_key,
    -- academic_year, week_start_date) index from the school's bounds, where summing every week
    -- of a rewritten term read the whole term.
    select
        periods.pupil_key,
        periods.school_urn,
        periods.academic_year,
        periods.period_type,
        periods.period_label,
        first_week.first_session_date as period_start_date,
        last_week.last_session_date as period_end_date,
        -- the newer of the two weeks it is read off
        greatest(first_week.session_marks_built_at, last_week.session_marks_built_at) as session_marks_built_at,
        {% for count in counts %}
        last_week.year_to_date_{{ count }} - first_week.year_to_date_{{ count }} + first_week.{{ count }}
            as {{ count }}{{ "," if not loop.last }}
        {% endfor %}
    from periods_to_rewrite as periods
    cross join lateral (
        select *
        from {{ ref('int_pupil_weeks') }} as stored
        where stored.pupil_key = periods.pupil_key
          and stored.academic_year = periods.academic_year
          and stored.week_start_date >= periods.first_week
        order by stored.week_start_date
        limit 1
    ) as first_week
    cross join lateral (
        select *
        from {{ ref('int_pupil_weeks') }} as stored
        where stored.pupil_key = periods.pupil_key
          and stored.academic_year = periods.academic_year
          and stored.week_start_date <= periods.last_week
        order by stored.week_start_date desc
        limit 1
    ) as last_week
),
{% else %}
with weeks as (
    select * from {{ ref('int_pupil_weeks') }}
),

longer_periods as (
    -- half-terms and terms summed from their weeks, every pupil's at once
    {% for period_type, period_grouping, period_label in [
        ('half_term', 'half_term_number', half_term_name('half_term_number')),
        ('term', term_name('half_term_number'), term_name('half_term_number'))] %}
    select
        pupil_key,
        school_urn,
        academic_year,
        '{{ period_type }}' as period_type,
        {{ period_label }} as period_label,
        min(first_session_date) as period_start_date,
        max(last_session_date) as period_end_date,
        max(session_marks_built_at) as session_marks_built_at,
        {% for count in counts %}
        sum({{ count }}) as {{ count }}{{ "," if not loop.last }}
        {% endfor %}
    from weeks
    group by pupil_key, school_urn, academic_year, {{ period_grouping }}
    {{ "union all" if not loop.last }}
    {% endfor %}
),
{% endif %}

periods as (
    -- A week period is one pupil week (int_pupil_weeks' grain), taken as it is. Grouping every
    -- pupil week by itself took half a full build (at 20 schools, 2.5 of 4.7 s, spilling to disk).
    select
        pupil_key,
        school_urn,
        academic_year,
        'week' as period_type,
        {{ dbt.concat(["'w/c '", dbt.safe_cast('week_start_date', api.Column.translate_type('string'))]) }} as period_label,
        first_session_date as period_start_date,
        last_session_date as period_end_date,
        session_marks_built_at,
        {% for count in counts %}
        {{ count }}{{ "," if not loop.last }}
        {% endfor %}
    from weeks
    union all
    select * from longer_periods
)

select
    pupil_key,
    school_urn,
    academic_year,
    period_type,
    period_label,
    period_start_date,
    period_end_date,
    {% for count in counts %}
    cast({{ count }} as {{ dbt.type_int() }}) as {{ count }},
    {% endfor %}
    {{ attendance_rates() }},
    session_marks_built_at
from periods
