{{ config(indexes=[{'columns': ['pupil_key', 'academic_year']}, {'columns': ['academic_year']}]) }}
-- One row per enrolment (pupil x school) per academic year, up to the as-at date:
-- session counts, rates (unrounded) and the persistent / severe absence flags.
-- Rules: ../shared/domain/attendance-rules.md ("Measures").
-- The session counts come from int_pupil_academic_years__sessions, which re-sums only the
-- pupil-years a night changed; the characteristics and the as-at date are joined afresh.
-- Indexed for the watch lists, which join each listed pupil's latest year
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
{% set measures = attendance_measures() %}
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
    sessions.{{ measure }}_sessions,
    {% endfor %}
    sessions.missing_marks,
    {{ attendance_rates('sessions.') }}
from {{ ref('int_pupil_academic_years__sessions') }} as sessions
cross join {{ ref('int_reporting_date') }} as reporting
left join {{ ref('int_pupil_characteristics') }} as characteristics
    on sessions.pupil_key = characteristics.pupil_key and sessions.academic_year = characteristics.academic_year
