-- The amendment log: every change to a mark after it was first seen (an N resolved
-- to I, a missing mark filled, ...), with the extract that carried each version.
-- The attendance policy (seed 002) requires original and amended entries to be kept.
with versions as (
    select
        {{ pupil_key('school_urn', 'pupil_id') }} as pupil_key,
        school_urn,
        session_date,
        session_name,
        attendance_code,
        extract_date,
        first_seen_at,
        lag(attendance_code) over (
            partition by school_urn, pupil_id, session_date, session_name order by extract_date
        ) as previous_attendance_code,
        lag(extract_date) over (
            partition by school_urn, pupil_id, session_date, session_name order by extract_date
        ) as previous_extract_date
    from {{ ref('stg_mis__register_marks') }}
)

select
    pupil_key,
    school_urn,
    session_date,
    session_name,
    previous_attendance_code,
    attendance_code as amended_attendance_code,
    previous_extract_date as previous_seen_in_extract_date,
    extract_date as amended_in_extract_date,
    first_seen_at as amended_seen_at
from versions
where previous_extract_date is not null
