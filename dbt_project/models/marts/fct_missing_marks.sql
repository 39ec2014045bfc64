-- depends_on: {{ ref('int_pupils__register_changes') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'session_date']}, {'columns': ['pupil_key']}, {'columns': ['built_at']}],
        pre_hook="{{ forget_register_rows_to_redo() }}",
        post_hook="{{ record_register_build() }}",
    )
}}
-- Every missing mark this academic year: a pupil on roll (inside an enrolment) with
-- no mark, or a blank one, for a session the school was open. A session is open when
-- the school recorded at least one possible mark for it (so not a # closure).
--
-- Incremental: a night redoes only the sessions whose marks it changed and the pupils
-- whose enrolments or form group it changed (macros/register_rebuilds.sql), so its cost
-- follows the night, not how far into the year it is. A session open before and after the
-- night's marks (an amended one) is redone only for the pupils whose own marks changed.
with reporting as (
    {{ reporting_as_at() }}
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
sessions_open_throughout as (
    {{ register_sessions_open_throughout() }}
),

sessions_to_redo as (
    -- redone for every pupil on roll: new sessions, and those that may have opened or closed
    select *
    from open_sessions
    where (school_urn, session_date, session_name) in ({{ register_sessions_to_redo() }})
      and (school_urn, session_date, session_name) not in (select * from sessions_open_throughout)
),

pupils_to_redo as (
    {{ register_pupils_to_redo() }}
),

enrolments_to_redo as (
    select *
    from {{ ref('int_enrolments__current') }}
    where pupil_key in (select pupil_key from pupils_to_redo)
),

other_sessions as (
    select * from open_sessions
    except
    select * from sessions_to_redo
),

remarked_sessions as materialized (
    -- in the sessions open throughout, the pupils whose own marks changed (the other pupils'
    -- rows there stand; the pupils to redo are redone in every session below), found from the
    -- marks built since (their built_at index). Inlined, PostgreSQL paired every enrolment with
    -- every such session of its school and looked each pair's mark up: at 100 schools 1.8 M
    -- lookups for 27 k pupil-sessions (the select 16 s from a cold cache, against 3.4 s).
    select marks.pupil_key, marks.school_urn, marks.session_date, marks.session_name
    from {{ ref('fct_session_marks') }} as marks
    where marks.built_at > {{ register_rows_built_since() }}
      and (marks.school_urn, marks.session_date, marks.session_name) in (select * from sessions_open_throughout)
      and marks.pupil_key not in (select pupil_key from pupils_to_redo)
),

expected as (
    -- every pupil on roll in the sessions to redo, the pupils to redo in the other sessions,
    -- and the remarked pupils in theirs
    {{ pupils_on_roll_in('sessions_to_redo', ref('int_enrolments__current')) }}
    union all
    {{ pupils_on_roll_in('other_sessions', 'enrolments_to_redo') }}
    union all
    {{ pupils_on_roll_in('remarked_sessions', ref('int_enrolments__current'), of_pupils=true) }}
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
