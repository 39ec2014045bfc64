select
    school_urn,
    pupil_id,
    admission_date,
    leaving_date,
    enrolment_status,
    extract_date
from {{ source('mis', 'enrolments') }}
