-- The NC year group each pupil was in during each academic year they have marks for.
-- The MIS records the year group at extract time (or at leaving, for leavers);
-- earlier years count back one year group per academic year.
with pupil_years as (
    select pupil_key, academic_year
    from {{ ref('int_pupil_academic_years__marked') }}
),

last_leaving as (
    -- Only a pupil whose every enrolment has ended has a leaving date here.
    select
        pupil_key,
        case when count(*) = count(leaving_date) then max(leaving_date) end as leaving_date
    from {{ ref('int_enrolments__current') }}
    group by pupil_key
),

reference_years as (
    select
        pupils.pupil_key,
        {{ year_group_number('pupils.year_group') }} as year_group_number_at_reference,
        {{ academic_year_start(dbt.dateadd('day', -1, 'coalesce(last_leaving.leaving_date, pupils.extract_date)')) }}
            as reference_academic_year
    from {{ ref('int_pupils__current') }} as pupils
    left join last_leaving on pupils.pupil_key = last_leaving.pupil_key
)

select
    pupil_years.pupil_key,
    pupil_years.academic_year,
    cast(
        reference_years.year_group_number_at_reference
        - (reference_years.reference_academic_year - pupil_years.academic_year)
    as {{ dbt.type_int() }}) as year_group_number
from pupil_years
inner join reference_years on pupil_years.pupil_key = reference_years.pupil_key
