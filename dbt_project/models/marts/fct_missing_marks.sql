-- Every missing mark this academic year: a pupil on roll (inside an enrolment) with
-- no mark, or a blank one, for a session the school was open. A session is open when
-- the school recorded at least one possible mark for it (so not a # closure).
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

expected as (
    select
        enrolments.pupil_key,
        open_sessions.school_urn,
        open_sessions.session_date,
        open_sessions.session_name
    from open_sessions
    inner join {{ ref('int_enrolments__current') }} as enrolments
        on enrolments.school_urn = open_sessions.school_urn
        and enrolments.admission_date <= open_sessions.session_date
        and (enrolments.leaving_date is null or open_sessions.session_date <= enrolments.leaving_date)
)

select
    expected.school_urn,
    expected.session_date,
    expected.session_name,
    expected.pupil_key,
    pupils.form_group,
    case when marks.pupil_key is null then 'no mark recorded' else 'blank mark' end as missing_kind
from expected
left join {{ ref('fct_session_marks') }} as marks
    on marks.pupil_key = expected.pupil_key
    and marks.session_date = expected.session_date
    and marks.session_name = expected.session_name
    -- only this year's marks are matched: filtered as they are read, not after the join
    and marks.session_date >= (select make_date(academic_year, 9, 1) from reporting)
left join {{ ref('int_pupils__current') }} as pupils on expected.pupil_key = pupils.pupil_key
where marks.pupil_key is null or marks.is_missing_mark
