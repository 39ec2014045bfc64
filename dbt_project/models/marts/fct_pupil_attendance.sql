{{ config(indexes=[{'columns': ['pupil_key', 'academic_year']}, {'columns': ['academic_year']}]) }}
-- One row per enrolment (pupil x school) per academic year, up to the as-at date:
-- session counts, rates (unrounded) and the persistent / severe absence flags.
-- Rules: ../shared/domain/attendance-rules.md ("Measures").
--
-- Summed from the enrolment's school weeks (int_pupil_weeks, open days only) plus its
-- marks on days the school was closed ('#' for everyone, or nothing possible recorded):
-- those count no possible session but still make an enrolment "with marks" and can be
-- missing marks. Reading weeks, not every session mark, keeps the night's cost small.
-- Indexed for the watch lists, which join each listed pupil's latest year
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
{% set measures = attendance_measures() %}
with closed_days as (
    select school_urn, session_date
    from {{ ref('int_school_session_codes') }}
    where session_date <= (select as_of_date from {{ ref('int_reporting_date') }})
    group by school_urn, session_date
    having sum(case when is_possible then marks else 0 end) = 0
),

closed_day_sessions as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        min(marks.session_date) as first_session_date,
        max(marks.session_date) as last_session_date,
        {{ attendance_session_sums() }}
    from {{ ref('fct_session_marks') }} as marks
    inner join closed_days
        on marks.school_urn = closed_days.school_urn and marks.session_date = closed_days.session_date
    group by marks.pupil_key, marks.school_urn, marks.academic_year
),

sessions as (
    select
        pupil_key,
        school_urn,
        academic_year,
        min(first_session_date) as first_session_date,
        max(last_session_date) as last_session_date,
        {% for measure in measures %}
        sum({{ measure }}_sessions) as {{ measure }}_sessions,
        {% endfor %}
        sum(missing_marks) as missing_marks
    from (
        select pupil_key, school_urn, academic_year, first_session_date, last_session_date,
            {% for measure in measures %}{{ measure }}_sessions, {% endfor %}missing_marks
        from {{ ref('int_pupil_weeks') }}
        union all
        select pupil_key, school_urn, academic_year, first_session_date, last_session_date,
            {% for measure in measures %}{{ measure }}_sessions, {% endfor %}missing_marks
        from closed_day_sessions
    ) as weeks_and_closed_days
    group by pupil_key, school_urn, academic_year
)

select
    sessions.pupil_key,
    sessions.school_urn,
    sessions.academic_year,
    reporting.as_of_date,
    sessions.first_session_date,
    sessions.last_session_date,
    characteristics.year_group_number,
    coalesce(characteristics.is_statutory_school_age, false) as is_statutory_school_age,
    {{ pupil_characteristic_columns('characteristics') }}
    {% for measure in measures %}
    cast(sessions.{{ measure }}_sessions as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(sessions.missing_marks as {{ dbt.type_int() }}) as missing_marks,
    {{ attendance_rates('sessions.') }}
from sessions
cross join {{ ref('int_reporting_date') }} as reporting
left join {{ ref('int_pupil_characteristics') }} as characteristics
    on sessions.pupil_key = characteristics.pupil_key and sessions.academic_year = characteristics.academic_year
