-- Indexed by day: int_pupil_weeks' full build looks each mark's day up here as the marks stream by.
{{ config(indexes=[{'columns': ['school_urn', 'session_date'], 'unique': true}]) }}
-- The days each school was open (at least one possible session recorded), numbered
-- so that windows of school days and school weeks can cross terms and years.
-- Half-terms are the runs of open days between breaks of more than a week;
-- a school week is any week with at least one possible session.
with days as (
    select
        school_urn,
        session_date,
        academic_year,
        cast({{ dbt.date_trunc('week', 'session_date') }} as date) as week_start_date
    from {{ ref('int_school_day_statuses') }}
    where is_open
),

numbered as (
    select
        days.*,
        {{ academic_week_number('session_date', 'academic_year') }} as academic_week_number,
        row_number() over (partition by school_urn order by session_date) as school_day_number,
        dense_rank() over (partition by school_urn order by week_start_date) as school_week_number,
        case
            when lag(session_date) over (partition by school_urn, academic_year order by session_date) is null
              or {{ dbt.datediff('lag(session_date) over (partition by school_urn, academic_year order by session_date)', 'session_date', 'day') }} > 7
            then 1 else 0
        end as starts_half_term
    from days
)

select
    school_urn,
    session_date,
    academic_year,
    week_start_date,
    academic_week_number,
    school_day_number,
    school_week_number,
    cast(sum(starts_half_term) over (
        partition by school_urn, academic_year order by session_date rows between unbounded preceding and current row
    ) as {{ dbt.type_int() }}) as half_term_number,
    cast(case when day_of_week_number = 0 then 7 else day_of_week_number end as {{ dbt.type_int() }}) as iso_day_of_week
from (
    select numbered.*, cast(extract(dow from session_date) as {{ dbt.type_int() }}) as day_of_week_number
    from numbered
) as with_weekday
