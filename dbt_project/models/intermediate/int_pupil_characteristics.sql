-- One row per enrolment per academic year with every characteristic figures are broken down by.
select
    years.pupil_key,
    years.academic_year,
    years.year_group_number,
    coalesce(years.year_group_number between 1 and 11, false) as is_statutory_school_age,
    pupils.school_urn,
    schools.phase,
    pupils.form_group as current_form_group,
    pupils.sex,
    pupils.ethnicity_code,
    pupils.is_pupil_premium,
    pupils.is_free_school_meals,
    pupils.is_free_school_meals_6,
    (pupils.is_free_school_meals_6 or pupils.is_looked_after or pupils.is_previously_looked_after) as is_disadvantaged,
    pupils.sen_provision,
    pupils.is_english_additional_language,
    pupils.is_looked_after
from {{ ref('int_pupil_academic_years') }} as years
inner join {{ ref('int_pupils__current') }} as pupils on years.pupil_key = pupils.pupil_key
left join {{ ref('stg_mis__schools') }} as schools on pupils.school_urn = schools.school_urn
