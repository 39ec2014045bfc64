{#- The marts' as-at date and its academic year. The year is an integer, as academic_year is in
    the tables: a numeric would hide their statistics from the planner. -#}
{% macro reporting_as_at() -%}
    select as_of_date, cast({{ academic_year_start('as_of_date') }} as {{ dbt.type_int() }}) as academic_year
    from {{ ref('int_reporting_date') }}
{%- endmacro %}

{#- Each school's position as at the marts' as-at date: its latest school day and school week up
    to then. -#}
{% macro schools_as_at() -%}
    select school_urn, max(school_week_number) as school_week_number, max(school_day_number) as school_day_number
    from {{ ref('int_school_days') }}
    where session_date <= (select as_of_date from {{ ref('int_reporting_date') }})
    group by school_urn
{%- endmacro %}
