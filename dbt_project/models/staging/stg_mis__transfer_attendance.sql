select
    school_urn,
    upn,
    source_urn,
    source_la,
    source_estab,
    academic_year,
    sessions_possible,
    sessions_attended,
    sessions_authorised,
    sessions_unauthorised,
    file as ctf_file,
    extract_date
from {{ source('mis', 'transfer_attendance') }}
