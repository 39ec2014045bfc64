-- Every version of every mark, typed and renamed; no logic.
select
    cast(school_urn as {{ dbt.type_string() }})    as school_urn,
    cast(pupil_id as {{ dbt.type_string() }})      as pupil_id,
    cast(session_date as date)                     as session_date,
    cast(session as {{ dbt.type_string() }})       as session_name,
    nullif(trim(mark), '')                         as attendance_code,
    cast(minutes_late as {{ dbt.type_int() }})     as minutes_late,
    comment                                        as register_comment,
    cast(extract_date as date)                     as extract_date,
    seen_at                                        as first_seen_at
from {{ source('mis', 'register_marks') }}
