select
    school_urn,
    extract_date,
    status          as load_status,
    reason          as load_reason,
    marks_in_extract,
    mark_versions_added,
    pupils          as pupils_in_extract,
    enrolments      as enrolments_in_extract,
    data_docs       as data_docs_path,
    recorded_at
from {{ source('mis', 'load_batches') }}
