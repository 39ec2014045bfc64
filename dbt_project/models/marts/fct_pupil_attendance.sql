-- One row per enrolment (pupil x school) per academic year, up to the as-at date:
-- session counts, rates (unrounded) and the persistent / severe absence flags.
-- Rules: ../shared/domain/attendance-rules.md ("Measures").
with sessions as (
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        min(marks.session_date) as first_session_date,
        max(marks.session_date) as last_session_date,
        {{ attendance_session_sums() }}
    from {{ ref('fct_session_marks') }} as marks
    cross join {{ ref('int_reporting_date') }} as reporting
    where marks.session_date <= reporting.as_of_date
    group by marks.pupil_key, marks.school_urn, marks.academic_year
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
    {% for measure in ['possible', 'present', 'approved_activity', 'attended', 'authorised_absence',
                       'unauthorised_absence', 'absence', 'late', 'late_after_register_closed', 'illness'] %}
    cast(sessions.{{ measure }}_sessions as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(sessions.missing_marks as {{ dbt.type_int() }}) as missing_marks,
    {{ attendance_rates('sessions.') }}
from sessions
cross join {{ ref('int_reporting_date') }} as reporting
left join {{ ref('int_pupil_characteristics') }} as characteristics
    on sessions.pupil_key = characteristics.pupil_key and sessions.academic_year = characteristics.academic_year
