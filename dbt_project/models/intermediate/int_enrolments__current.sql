-- Each school's enrolments as its latest loaded extract describes them.
with latest_extract as (
    select school_urn, max(extract_date) as extract_date
    from {{ ref('stg_mis__load_batches') }}
    where load_status = 'loaded'
    group by school_urn
)

select
    {{ pupil_key('enrolments.school_urn', 'enrolments.pupil_id') }} as pupil_key,
    enrolments.*
from {{ ref('stg_mis__enrolments') }} as enrolments
inner join latest_extract
    on enrolments.school_urn = latest_extract.school_urn
    and enrolments.extract_date = latest_extract.extract_date
