-- Each school's pupils as its latest loaded extract describes them.
with latest_extract as (
    select school_urn, max(extract_date) as extract_date
    from {{ ref('stg_mis__load_batches') }}
    where load_status = 'loaded'
    group by school_urn
)

select
    {{ pupil_key('pupils.school_urn', 'pupils.pupil_id') }} as pupil_key,
    pupils.*
from {{ ref('stg_mis__pupils') }} as pupils
inner join latest_extract
    on pupils.school_urn = latest_extract.school_urn
    and pupils.extract_date = latest_extract.extract_date
