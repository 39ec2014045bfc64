-- Each school's pupils as its latest loaded extract describes them.
select
    {{ pupil_key('pupils.school_urn', 'pupils.pupil_id') }} as pupil_key,
    pupils.*
from {{ ref('stg_mis__pupils') }} as pupils
inner join {{ ref('int_latest_loaded_extracts') }} as latest_extract
    on pupils.school_urn = latest_extract.school_urn
    and pupils.extract_date = latest_extract.extract_date
