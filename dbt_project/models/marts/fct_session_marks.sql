-- One row per pupil, school, date and session: the current mark and what it counts as.
select
    {{ dbt.hash(dbt.concat(["school_urn", "'|'", "pupil_id"])) }} as pupil_key,
    school_urn,
    session_date,
    session_name,
    academic_year,
    attendance_code,
    attendance_category,
    is_missing_mark,
    is_possible,
    is_present,
    is_approved_activity_or_elsewhere,
    is_attending,
    is_authorised_absence,
    is_unauthorised_absence,
    is_absent,
    is_late,
    minutes_late,
    was_amended,
    latest_extract_date
from {{ ref('int_session_marks__categorised') }}
