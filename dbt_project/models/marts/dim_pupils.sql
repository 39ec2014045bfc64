{{ config(indexes=[{'columns': ['pupil_key']}]) }}
-- Identifying pupil details, kept apart from the analytical marts: BI roles get
-- the pseudonymous pupil_key by default and this table only where the role needs names.
-- Indexed for the watch lists, which look each listed pupil's name up
-- (a query per school a night: a table scan took 50 ms at 100 schools, the index a few).
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
