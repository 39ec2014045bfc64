-- Each current mark with the meaning its code had on the day it was recorded
-- (historic codes keep their historic category: J before 2024 is attendance, J1 after is authorised).
with marks as (
    select * from {{ ref('int_register_marks__current') }}
),

codes as (
    select * from {{ ref('attendance_codes') }}
)

select
    marks.school_urn,
    marks.pupil_id,
    marks.session_date,
    marks.session_name,
    cast({{ academic_year_start('marks.session_date') }} as {{ dbt.type_int() }}) as academic_year,
    marks.attendance_code,
    codes.category as attendance_category,
    marks.attendance_code is null as is_missing_mark,
    coalesce(codes.counts_as_possible, false) as is_possible,
    coalesce(codes.category = 'present', false) as is_present,
    coalesce(codes.category in ('approved_educational_activity', 'attending_elsewhere'), false)
        as is_approved_activity_or_elsewhere,
    coalesce(codes.counts_as_attendance, false) as is_attending,
    coalesce(codes.category = 'authorised_absence', false) as is_authorised_absence,
    coalesce(codes.category = 'unauthorised_absence', false) as is_unauthorised_absence,
    coalesce(codes.counts_as_absence, false) as is_absent,
    coalesce(codes.is_late, false) as is_late,
    marks.minutes_late,
    marks.was_amended,
    marks.latest_extract_date
from marks
left join codes
    on marks.attendance_code = codes.attendance_code
    and marks.session_date >= codes.valid_from
    and (codes.valid_to is null or marks.session_date < codes.valid_to)
