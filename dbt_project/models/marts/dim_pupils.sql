-- Identifying pupil details, kept apart from the analytical marts: BI roles get
-- the pseudonymous pupil_key by default and this table only where the role needs names.
select
    pupil_key,
    school_urn,
    pupil_id,
    upn,
    legal_forename,
    legal_surname,
    date_of_birth,
    year_group,
    form_group,
    extract_date as recorded_in_extract_date
from {{ ref('int_pupils__current') }}
