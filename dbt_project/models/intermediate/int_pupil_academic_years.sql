-- The year group each pupil was in during each academic year they have marks for.
-- The MIS records the year group at extract time (or at leaving, for leavers);
-- earlier years count back one year group per academic year.
with pupil_years as (
    select distinct school_urn, pupil_id, academic_year
    from {{ ref('int_session_marks__categorised') }}
),

reference_years as (
    select
        pupils.school_urn,
        pupils.pupil_id,
        pupils.year_group,
        {{ year_group_number('pupils.year_group') }} as year_group_number_at_reference,
        {{ academic_year_start(dbt.dateadd('day', -1, 'coalesce(enrolments.last_leaving_date, pupils.extract_date)')) }}
            as reference_academic_year
    from {{ ref('int_pupils__current') }} as pupils
    left join (
        select school_urn, pupil_id,
            case when count(*) = count(leaving_date) then max(leaving_date) end as last_leaving_date
        from {{ ref('int_enrolments__current') }}
        group by school_urn, pupil_id
    ) as enrolments
        on pupils.school_urn = enrolments.school_urn and pupils.pupil_id = enrolments.pupil_id
)

select
    pupil_years.school_urn,
    pupil_years.pupil_id,
    pupil_years.academic_year,
    reference_years.year_group_number_at_reference
        - (reference_years.reference_academic_year - pupil_years.academic_year) as year_group_number
from pupil_years
inner join reference_years
    on pupil_years.school_urn = reference_years.school_urn
    and pupil_years.pupil_id = reference_years.pupil_id
