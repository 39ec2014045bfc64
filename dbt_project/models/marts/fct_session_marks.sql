{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'session_date', 'session_name'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['school_urn', 'session_date']},
            {'columns': ['pupil_key', 'session_date']},
            {'columns': ['latest_extract_date']},
        ],
    )
}}
-- One row per pupil, school, date and session: the current version of the mark
-- (the one carried by the latest extract) and what its code meant on that day.
-- Historic codes keep their historic category: J before August 2024 is an approved
-- educational activity, J1 after it an authorised absence.
--
-- Incremental: a night re-reads only the marks its extracts touched (the latest
-- extract date already built, to absorb a re-run of that night, and anything
-- newer), so its cost follows the night's delta, not the size of history.

with versions as (
    select
        school_urn,
        pupil_id,
        {{ pupil_key('school_urn', 'pupil_id') }} as pupil_key,
        session_date,
        session_name,
        attendance_code,
        minutes_late,
        extract_date
    from {{ ref('stg_mis__register_marks') }}
),

{% if is_incremental() %}
watermark as (
    select max(latest_extract_date) as extract_date from {{ this }}
),

touched as (
    select distinct versions.pupil_key, versions.session_date, versions.session_name
    from versions
    where versions.extract_date >= (select extract_date from watermark)
    union
    select existing.pupil_key, existing.session_date, existing.session_name
    from {{ this }} as existing
    where existing.latest_extract_date >= (select extract_date from watermark)
),

candidates as (
    select versions.*
    from versions
    inner join touched
        on versions.pupil_key = touched.pupil_key
        and versions.session_date = touched.session_date
        and versions.session_name = touched.session_name
),
{% else %}
candidates as (
    select * from versions
),
{% endif %}

ranked as (
    select
        candidates.*,
        row_number() over (
            partition by pupil_key, session_date, session_name order by extract_date desc
        ) as version_rank,
        count(*) over (partition by pupil_key, session_date, session_name) as versions_seen
    from candidates
),

codes as (
    select * from {{ ref('attendance_codes') }}
)

select
    ranked.pupil_key,
    ranked.school_urn,
    ranked.session_date,
    ranked.session_name,
    cast({{ academic_year_start('ranked.session_date') }} as {{ dbt.type_int() }}) as academic_year,
    ranked.attendance_code,
    codes.category as attendance_category,
    ranked.attendance_code is null as is_missing_mark,
    coalesce(codes.counts_as_possible, false) as is_possible,
    coalesce(codes.category = 'present', false) as is_present,
    coalesce(codes.category in ('approved_educational_activity', 'attending_elsewhere'), false)
        as is_approved_activity_or_elsewhere,
    coalesce(codes.counts_as_attendance, false) as is_attending,
    coalesce(codes.category = 'authorised_absence', false) as is_authorised_absence,
    coalesce(codes.category = 'unauthorised_absence', false) as is_unauthorised_absence,
    coalesce(codes.counts_as_absence, false) as is_absent,
    coalesce(codes.is_late, false) as is_late,
    ranked.minutes_late,
    ranked.versions_seen > 1 as was_amended,
    ranked.extract_date as latest_extract_date
from ranked
left join codes
    on ranked.attendance_code = codes.attendance_code
    and ranked.session_date >= codes.valid_from
    and (codes.valid_to is null or ranked.session_date < codes.valid_to)
where ranked.version_rank = 1
