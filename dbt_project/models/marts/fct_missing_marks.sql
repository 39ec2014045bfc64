-- depends_on: {{ ref('int_pupils__register_changes') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'session_date']}, {'columns': ['pupil_key']}, {'columns': ['built_at']}],
        pre_hook="{{ forget_register_rows_to_redo() }}",
    )
}}
-- Every missing mark this academic year: a pupil on roll (inside an enrolment) with
-- no mark, or a blank one, for a session the school was open. A session is open when
-- the school recorded at least one possible mark for it (so not a # closure).
--
-- Incremental: a night redoes only the sessions whose marks it changed and the pupils
-- whose enrolments or form group it changed (macros/register_rebuilds.sql), so its cost
-- follows the night, not how far into the year it is.
with reporting as (
    -- An integer, as academic_year is in the tables: a numeric would hide their statistics from the planner.
    select as_of_date, cast({{ academic_year_start('as_of_date') }} as {{ dbt.type_int() }}) as academic_year
    from {{ ref('int_reporting_date') }}
),

open_sessions as (
    select school_urn, session_date, session_name
    from {{ ref('int_school_session_codes') }}
    where academic_year = (select academic_year from reporting)
      and session_date <= (select as_of_date from reporting)
    group by school_urn, session_date, session_name
    having sum(case when is_possible then marks else 0 end) > 0
),

{% if is_incremental() %}
sessions_to_redo as (
    select *
    from open_sessions
    where (school_urn, session_date, session_name) in ({{ register_sessions_to_redo() }})
),

enrolments_to_redo as (
    select *
    from {{ ref('int_enrolments__current') }}
    where pupil_key in (select pupil_key from ({{ register_pupils_to_redo() }}) as changed)
),

other_sessions as (
    select * from open_sessions
    except
    select * from sessions_to_redo
),

expected as (
    -- every pupil on roll in the sessions to redo, and the pupils to redo in the other sessions
    {{ pupils_on_roll_in('sessions_to_redo', ref('int_enrolments__current')) }}
    union all
    {{ pupils_on_roll_in('other_sessions', 'enrolments_to_redo') }}
)
{% else %}
expected as (
    {{ pupils_on_roll_in('open_sessions', ref('int_enrolments__current')) }}
)
{% endif %}

select
    expected.school_urn,
    expected.session_date,
    expected.session_name,
    expected.pupil_key,
    pupils.form_group,
    case when marks.pupil_key is null then 'no mark recorded' else 'blank mark' end as missing_kind,
    cast('{{ run_started_at.isoformat() }}' as timestamptz) as built_at
from expected
left join {{ ref('fct_session_marks') }} as marks
    on marks.pupil_key = expected.pupil_key
    and marks.session_date = expected.session_date
    and marks.session_name = expected.session_name
    -- only this year's marks are matched: filtered as they are read, not after the join
    and marks.session_date >= (select make_date(academic_year, 9, 1) from reporting)
left join {{ ref('int_pupils__current') }} as pupils on expected.pupil_key = pupils.pupil_key
where marks.pupil_key is null or marks.is_missing_mark
