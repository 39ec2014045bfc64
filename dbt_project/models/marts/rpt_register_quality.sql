{{ config(indexes=[{'columns': ['school_urn', 'session_date']}]) }}
-- Register quality per school, date, session and register (form group), this academic
-- year: missing marks, and N codes (reason not yet established) with their age in
-- school days. Freshness per school is in dim_schools. The counts are kept in
-- int_register_sessions (a night recounts what it changed); only the ages move every night.
-- Indexed by school and date: each school's exception email reads its latest day
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
{% set n_code_days = var('unresolved_n_code_school_days', 5) %}
with reporting as (
    select as_of_date from {{ ref('int_reporting_date') }}
),

school_now as (
    {{ schools_as_at() }}
),

aged as (
    -- a session's age is the same for all its registers: worked out per session, not per mark
    select registers.*, school_now.school_day_number - days.school_day_number as age_school_days
    from {{ ref('int_register_sessions') }} as registers
    left join {{ ref('int_school_days') }} as days
        on registers.school_urn = days.school_urn and registers.session_date = days.session_date
    left join school_now on registers.school_urn = school_now.school_urn
)

select
    school_urn,
    session_date,
    session_name,
    form_group,
    cast(marks_recorded + marks_not_recorded as {{ dbt.type_int() }}) as pupils_expected,
    cast(blank_marks + marks_not_recorded as {{ dbt.type_int() }}) as missing_marks,
    n_codes,
    cast(age_school_days as {{ dbt.type_int() }}) as age_school_days,
    n_codes > 0 and age_school_days >= {{ n_code_days }} as has_n_codes_unresolved_after_{{ n_code_days }}_school_days
from aged
