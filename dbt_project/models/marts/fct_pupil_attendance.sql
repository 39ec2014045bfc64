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
    year_groups.year_group_number,
    coalesce(year_groups.year_group_number between 1 and 11, false) as is_statutory_school_age,
    pupils.form_group as current_form_group,
    pupils.sex,
    pupils.ethnicity_code,
    pupils.is_pupil_premium,
    pupils.is_free_school_meals,
    pupils.is_free_school_meals_6,
    (pupils.is_free_school_meals_6 or pupils.is_looked_after or pupils.is_previously_looked_after) as is_disadvantaged,
    pupils.sen_provision,
    pupils.is_english_additional_language,
    pupils.is_looked_after,
    {% for measure in ['possible', 'present', 'approved_activity', 'attended', 'authorised_absence',
                       'unauthorised_absence', 'absence', 'late', 'late_after_register_closed', 'illness'] %}
    cast(sessions.{{ measure }}_sessions as {{ dbt.type_int() }}) as {{ measure }}_sessions,
    {% endfor %}
    cast(sessions.missing_marks as {{ dbt.type_int() }}) as missing_marks,
    {{ attendance_rates('sessions.') }}
from sessions
cross join {{ ref('int_reporting_date') }} as reporting
left join {{ ref('int_pupils__current') }} as pupils on sessions.pupil_key = pupils.pupil_key
left join {{ ref('int_pupil_academic_years') }} as year_groups
    on sessions.pupil_key = year_groups.pupil_key and sessions.academic_year = year_groups.academic_year
