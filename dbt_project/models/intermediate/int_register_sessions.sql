-- depends_on: {{ ref('int_pupils__register_changes') }}, {{ ref('int_school_session_codes') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'session_date']}, {'columns': ['built_at']}],
        pre_hook="{{ forget_register_rows_to_redo(whole_schools=true) }}",
        post_hook="{{ record_register_build() }}",
    )
}}
-- Each register (form group) of each school's sessions this academic year: marks recorded,
-- blank ones, N codes, and pupils on roll with no mark recorded. What rpt_register_quality
-- reports, kept so a night recounts only what it changed.
--
-- Incremental: a night recounts the sessions whose marks it changed, and every session of a
-- school where a pupil's enrolment or form group changed, since a moved pupil's marks move
-- between registers (macros/register_rebuilds.sql).
with reporting as (
    {{ reporting_as_at() }}
),

{% if is_incremental() %}
sessions_to_redo as (
    {{ register_sessions_to_redo(whole_schools=true) }}
),

school_windows as (
    select school_urn, min(session_date) as first_session_date, max(session_date) as last_session_date
    from sessions_to_redo
    group by school_urn
),

marks_to_recount as materialized (
    -- Each school's marks from its first session to redo to its last, by fct_session_marks'
    -- (school_urn, session_date) index, one scan per school (OFFSET 0 stops PostgreSQL
    -- flattening it into a join; materialized, the pupils' join stays outside the loop), kept
    -- to the sessions to redo. One scan per session read a page per mark, and each page again
    -- for the other session of the day and for every other day on it: after a rebuild, marks lie
    -- in pupil order. At 100 schools a night's 1.54 M marks lie on 232 k pages, which the
    -- per-session scans visited 1.6 M times (cold 8.4-9.1 s against 5.9-6.1 s now). As a plain
    -- join, PostgreSQL misjudged how many marks the sessions hold and read every mark.
    -- Only the columns counted below: materialized, every column was written to temporary
    -- files (at 100 schools a night's 1.69 M marks wrote 232 MB of them; these, 145 MB).
    select marks.*
    from school_windows
    cross join lateral (
        select session_marks.school_urn, session_marks.session_date, session_marks.session_name,
            session_marks.pupil_key, session_marks.is_missing_mark, session_marks.attendance_code
        from {{ ref('fct_session_marks') }} as session_marks
        where session_marks.school_urn = school_windows.school_urn
          and session_marks.session_date between school_windows.first_session_date and school_windows.last_session_date
        offset 0
    ) as marks
    where (marks.school_urn, marks.session_date, marks.session_name) in (
        select school_urn, session_date, session_name from sessions_to_redo
    )
),

{% endif %}
marks as (
    select
        marks.school_urn,
        marks.session_date,
        marks.session_name,
        coalesce(pupils.form_group, 'Unknown') as form_group,
        count(*) as marks_recorded,
        sum(case when marks.is_missing_mark then 1 else 0 end) as blank_marks,
        sum(case when marks.attendance_code = 'N' then 1 else 0 end) as n_codes
    from {% if is_incremental() %}marks_to_recount{% else %}{{ ref('fct_session_marks') }}{% endif %} as marks
    left join {{ ref('int_pupils__current') }} as pupils on marks.pupil_key = pupils.pupil_key
    {% if not is_incremental() %}
    where marks.academic_year = (select academic_year from reporting)
      and marks.session_date >= (select make_date(academic_year, 9, 1) from reporting)
      and marks.session_date <= (select as_of_date from reporting)
    {% endif %}
    group by marks.school_urn, marks.session_date, marks.session_name, coalesce(pupils.form_group, 'Unknown')
),

not_recorded as (
    select
        missing.school_urn,
        missing.session_date,
        missing.session_name,
        coalesce(missing.form_group, 'Unknown') as form_group,
        count(*) as marks_not_recorded
    from {{ ref('fct_missing_marks') }} as missing
    {% if is_incremental() %}
    inner join sessions_to_redo
        on missing.school_urn = sessions_to_redo.school_urn
        and missing.session_date = sessions_to_redo.session_date
        and missing.session_name = sessions_to_redo.session_name
    {% endif %}
    where missing.missing_kind = 'no mark recorded'
    group by missing.school_urn, missing.session_date, missing.session_name, coalesce(missing.form_group, 'Unknown')
)

select
    marks.school_urn,
    marks.session_date,
    marks.session_name,
    marks.form_group,
    cast(marks.marks_recorded as {{ dbt.type_int() }}) as marks_recorded,
    cast(marks.blank_marks as {{ dbt.type_int() }}) as blank_marks,
    cast(marks.n_codes as {{ dbt.type_int() }}) as n_codes,
    cast(coalesce(not_recorded.marks_not_recorded, 0) as {{ dbt.type_int() }}) as marks_not_recorded,
    cast('{{ run_started_at.isoformat() }}' as timestamptz) as built_at
from marks
left join not_recorded
    on marks.school_urn = not_recorded.school_urn
    and marks.session_date = not_recorded.session_date
    and marks.session_name = not_recorded.session_name
    and marks.form_group = not_recorded.form_group
