-- Attendance linked to attainment: KS4 (Attainment 8, Progress 8 where published,
-- English and maths 4+ and 5+) and KS2 (expected standard in reading, writing and
-- maths) by attendance band in the exam year and by persistent absence, per school
-- and for the trust. Bands follow seed 001 (<90, 90-95, 95-97, 97-99, 99-100).
with results as (
    select
        {{ pupil_key('attainment.school_urn', 'attainment.pupil_id') }} as pupil_key,
        attainment.*
    from {{ ref('stg_mis__attainment') }} as attainment
    inner join {{ ref('int_latest_loaded_extracts') }} as latest_extract
        on attainment.school_urn = latest_extract.school_urn
        and attainment.extract_date = latest_extract.extract_date
),

linked as (
    select
        results.*,
        attendance.attendance_rate,
        attendance.is_persistent_absence,
        case
            when attendance.attended_sessions * 100 < attendance.possible_sessions * 90 then '<90'
            when attendance.attended_sessions * 100 < attendance.possible_sessions * 95 then '90-95'
            when attendance.attended_sessions * 100 < attendance.possible_sessions * 97 then '95-97'
            when attendance.attended_sessions * 100 < attendance.possible_sessions * 99 then '97-99'
            else '99-100'
        end as attendance_band
    from results
    inner join {{ ref('fct_pupil_attendance') }} as attendance
        on results.pupil_key = attendance.pupil_key and results.academic_year = attendance.academic_year
    where attendance.possible_sessions > 0
),

grouped as (
    {% for scope in ['trust', 'school'] %}
    {% for grouping, label in [('attendance_band', 'attendance_band'), ('persistent_absence', "case when is_persistent_absence then 'PA' else 'Not PA' end")] %}
    select
        '{{ scope }}' as scope,
        {{ "school_urn" if scope == 'school' else "cast(null as " ~ dbt.type_string() ~ ")" }} as school_urn,
        academic_year,
        key_stage,
        '{{ grouping }}' as grouping,
        {{ label }} as group_value,
        count(*) as pupils,
        avg(attendance_rate) as average_attendance_rate,
        avg(attainment_8) as average_attainment_8,
        avg(progress_8) as average_progress_8,
        count(progress_8) as pupils_with_progress_8,
        avg(case when english_maths_grade_4_plus then 1.0 when english_maths_grade_4_plus is not null then 0.0 end)
            as english_maths_grade_4_plus_rate,
        avg(case when english_maths_grade_5_plus then 1.0 when english_maths_grade_5_plus is not null then 0.0 end)
            as english_maths_grade_5_plus_rate,
        avg(case when ks2_reading_writing_maths_expected then 1.0
                 when ks2_reading_writing_maths_expected is not null then 0.0 end)
            as ks2_reading_writing_maths_expected_rate
    from linked
    group by {{ "school_urn, " if scope == 'school' else "" }}academic_year, key_stage, {{ label }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    scope,
    school_urn,
    cast(academic_year as {{ dbt.type_int() }}) as academic_year,
    key_stage,
    grouping,
    group_value,
    cast(pupils as {{ dbt.type_int() }}) as pupils,
    average_attendance_rate,
    average_attainment_8,
    average_progress_8,
    cast(pupils_with_progress_8 as {{ dbt.type_int() }}) as pupils_with_progress_8,
    english_maths_grade_4_plus_rate,
    english_maths_grade_5_plus_rate,
    ks2_reading_writing_maths_expected_rate
from grouped
