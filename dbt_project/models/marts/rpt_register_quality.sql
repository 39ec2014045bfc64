-- Register quality per school, date, session and register (form group), this academic
-- year: missing marks, and N codes (reason not yet established) with their age in
-- school days. Freshness per school is in dim_schools.
{% set n_code_days = var('unresolved_n_code_school_days', 5) %}
with reporting as (
    -- An integer, as academic_year is in the tables: a numeric would hide their statistics from the planner.
    select as_of_date, cast({{ academic_year_start('as_of_date') }} as {{ dbt.type_int() }}) as academic_year
    from {{ ref('int_reporting_date') }}
),

school_now as (
    select school_urn, max(school_day_number) as school_day_number
    from {{ ref('int_school_days') }}
    where session_date <= (select as_of_date from reporting)
    group by school_urn
),

marks as (
    select
        marks.school_urn,
        marks.session_date,
        marks.session_name,
        coalesce(pupils.form_group, 'Unknown') as form_group,
        count(*) as marks_recorded,
        sum(case when marks.is_missing_mark then 1 else 0 end) as blank_marks,
        sum(case when marks.attendance_code = 'N' then 1 else 0 end) as n_codes
    from {{ ref('fct_session_marks') }} as marks
    left join {{ ref('int_pupils__current') }} as pupils on marks.pupil_key = pupils.pupil_key
    where marks.academic_year = (select academic_year from reporting)
      and marks.session_date >= (select make_date(academic_year, 9, 1) from reporting)
      and marks.session_date <= (select as_of_date from reporting)
    group by marks.school_urn, marks.session_date, marks.session_name, coalesce(pupils.form_group, 'Unknown')
),

aged as (
    -- a session's age is the same for all its marks: worked out per session, not per mark
    select marks.*, school_now.school_day_number - days.school_day_number as age_school_days
    from marks
    left join {{ ref('int_school_days') }} as days
        on marks.school_urn = days.school_urn and marks.session_date = days.session_date
    left join school_now on marks.school_urn = school_now.school_urn
),

missing as (
    select school_urn, session_date, session_name, coalesce(form_group, 'Unknown') as form_group,
        sum(case when missing_kind = 'no mark recorded' then 1 else 0 end) as marks_not_recorded
    from {{ ref('fct_missing_marks') }}
    group by school_urn, session_date, session_name, coalesce(form_group, 'Unknown')
)

select
    aged.school_urn,
    aged.session_date,
    aged.session_name,
    aged.form_group,
    cast(aged.marks_recorded + coalesce(missing.marks_not_recorded, 0) as {{ dbt.type_int() }}) as pupils_expected,
    cast(aged.blank_marks + coalesce(missing.marks_not_recorded, 0) as {{ dbt.type_int() }}) as missing_marks,
    cast(aged.n_codes as {{ dbt.type_int() }}) as n_codes,
    cast(aged.age_school_days as {{ dbt.type_int() }}) as age_school_days,
    aged.n_codes > 0 and aged.age_school_days >= {{ n_code_days }} as has_n_codes_unresolved_after_{{ n_code_days }}_school_days
from aged
left join missing
    on aged.school_urn = missing.school_urn
    and aged.session_date = missing.session_date
    and aged.session_name = missing.session_name
    and aged.form_group = missing.form_group
