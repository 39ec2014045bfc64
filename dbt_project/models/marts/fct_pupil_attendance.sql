-- One row per enrolment (pupil x school) per academic year, up to the as-at date:
-- session counts, rates (unrounded) and the persistent / severe absence flags.
-- Rules: ../shared/domain/attendance-rules.md ("Measures").
with marks as (
    select marks.*
    from {{ ref('int_session_marks__categorised') }} as marks
    cross join {{ ref('int_reporting_date') }} as reporting
    where marks.session_date <= reporting.as_of_date
),

sessions as (
    select
        school_urn,
        pupil_id,
        academic_year,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date,
        sum(case when is_possible then 1 else 0 end) as possible_sessions,
        sum(case when is_present then 1 else 0 end) as present_sessions,
        sum(case when is_approved_activity_or_elsewhere then 1 else 0 end) as approved_activity_sessions,
        sum(case when is_attending then 1 else 0 end) as attended_sessions,
        sum(case when is_authorised_absence then 1 else 0 end) as authorised_absence_sessions,
        sum(case when is_unauthorised_absence then 1 else 0 end) as unauthorised_absence_sessions,
        sum(case when is_absent then 1 else 0 end) as absence_sessions,
        sum(case when is_late then 1 else 0 end) as late_sessions,
        sum(case when attendance_code = 'U' then 1 else 0 end) as late_after_register_closed_sessions,
        sum(case when is_missing_mark then 1 else 0 end) as missing_marks
    from marks
    group by school_urn, pupil_id, academic_year
),

pupils as (
    select * from {{ ref('int_pupils__current') }}
),

year_groups as (
    select * from {{ ref('int_pupil_academic_years') }}
),

measured as (
    select
        sessions.*,
        {{ safe_ratio('sessions.attended_sessions', 'sessions.possible_sessions') }} as attendance_rate,
        {{ safe_ratio('sessions.absence_sessions', 'sessions.possible_sessions') }} as absence_rate,
        {{ safe_ratio('sessions.authorised_absence_sessions', 'sessions.possible_sessions') }} as authorised_absence_rate,
        {{ safe_ratio('sessions.unauthorised_absence_sessions', 'sessions.possible_sessions') }} as unauthorised_absence_rate,
        -- Integer comparisons: exactly 10 % (or 50 %) absence is persistent (severe), with no rounding error.
        sessions.possible_sessions > 0 and sessions.absence_sessions * 10 >= sessions.possible_sessions
            as is_persistent_absence,
        sessions.possible_sessions > 0 and sessions.absence_sessions * 2 >= sessions.possible_sessions
            as is_severe_absence
    from sessions
)

select
    {{ dbt.hash(dbt.concat(["measured.school_urn", "'|'", "measured.pupil_id"])) }} as pupil_key,
    measured.school_urn,
    cast(measured.academic_year as {{ dbt.type_int() }}) as academic_year,
    reporting.as_of_date,
    measured.first_session_date,
    measured.last_session_date,
    cast(year_groups.year_group_number as {{ dbt.type_int() }}) as year_group_number,
    coalesce(year_groups.year_group_number between 1 and 11, false) as is_statutory_school_age,
    pupils.form_group as current_form_group,
    pupils.sex,
    pupils.ethnicity_code,
    pupils.is_pupil_premium,
    pupils.is_free_school_meals,
    pupils.is_free_school_meals_6,
    (pupils.is_free_school_meals_6 or pupils.is_looked_after or pupils.is_previously_looked_after) as is_disadvantaged,
    pupils.sen_provision,
    pupils.is_english_additional_language,
    pupils.is_looked_after,
    cast(measured.possible_sessions as {{ dbt.type_int() }}) as possible_sessions,
    cast(measured.present_sessions as {{ dbt.type_int() }}) as present_sessions,
    cast(measured.approved_activity_sessions as {{ dbt.type_int() }}) as approved_activity_sessions,
    cast(measured.attended_sessions as {{ dbt.type_int() }}) as attended_sessions,
    cast(measured.authorised_absence_sessions as {{ dbt.type_int() }}) as authorised_absence_sessions,
    cast(measured.unauthorised_absence_sessions as {{ dbt.type_int() }}) as unauthorised_absence_sessions,
    cast(measured.absence_sessions as {{ dbt.type_int() }}) as absence_sessions,
    cast(measured.late_sessions as {{ dbt.type_int() }}) as late_sessions,
    cast(measured.late_after_register_closed_sessions as {{ dbt.type_int() }}) as late_after_register_closed_sessions,
    cast(measured.missing_marks as {{ dbt.type_int() }}) as missing_marks,
    measured.attendance_rate,
    measured.absence_rate,
    measured.authorised_absence_rate,
    measured.unauthorised_absence_rate,
    measured.is_persistent_absence,
    measured.is_severe_absence,
    case
        when measured.attendance_rate is null then null
        when measured.attended_sessions * 100 < measured.possible_sessions * 50 then '<50'
        when measured.attended_sessions * 100 < measured.possible_sessions * 90 then '50-90'
        when measured.attended_sessions * 100 < measured.possible_sessions * 92 then '90-92'
        when measured.attended_sessions * 100 < measured.possible_sessions * 95 then '92-95'
        when measured.attended_sessions * 100 < measured.possible_sessions * 97 then '95-97'
        when measured.attended_sessions * 100 < measured.possible_sessions * 99 then '97-99'
        else '99-100'
    end as attendance_band
from measured
cross join {{ ref('int_reporting_date') }} as reporting
left join pupils
    on measured.school_urn = pupils.school_urn and measured.pupil_id = pupils.pupil_id
left join year_groups
    on measured.school_urn = year_groups.school_urn
    and measured.pupil_id = year_groups.pupil_id
    and measured.academic_year = year_groups.academic_year
