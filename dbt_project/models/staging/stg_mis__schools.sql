select
    school_urn,
    school_name,
    phase,
    la_code
from {{ source('mis', 'schools') }}
