-- The version of each mark the marts use: the one carried by the latest extract.
-- Earlier versions stay in raw.register_marks for the amendment log.
with versions as (
    select
        *,
        row_number() over (
            partition by school_urn, pupil_id, session_date, session_name
            order by extract_date desc
        ) as version_rank,
        count(*) over (
            partition by school_urn, pupil_id, session_date, session_name
        ) as versions_seen
    from {{ ref('stg_mis__register_marks') }}
)

select
    school_urn,
    pupil_id,
    session_date,
    session_name,
    attendance_code,
    minutes_late,
    register_comment,
    extract_date as latest_extract_date,
    versions_seen > 1 as was_amended
from versions
where version_rank = 1
