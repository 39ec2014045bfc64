-- Each school's enrolments as its latest loaded extract describes them.
select
    {{ pupil_key('enrolments.school_urn', 'enrolments.pupil_id') }} as pupil_key,
    enrolments.*
from {{ ref('stg_mis__enrolments') }} as enrolments
inner join {{ ref('int_latest_loaded_extracts') }} as latest_extract
    on enrolments.school_urn = latest_extract.school_urn
    and enrolments.extract_date = latest_extract.extract_date
