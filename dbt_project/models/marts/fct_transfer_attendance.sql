-- Joiners' attendance at their previous school, from Common Transfer Files.
with transfers as (
    select transfers.*
    from {{ ref('stg_mis__transfer_attendance') }} as transfers
    inner join {{ ref('int_latest_loaded_extracts') }} as latest_extract
        on transfers.school_urn = latest_extract.school_urn
        and transfers.extract_date = latest_extract.extract_date
)

select
    school_urn,
    upn,
    source_urn,
    cast(academic_year as {{ dbt.type_int() }}) as academic_year,
    cast(sum(sessions_possible) as {{ dbt.type_int() }}) as possible_sessions,
    cast(sum(sessions_attended) as {{ dbt.type_int() }}) as attended_sessions,
    cast(sum(sessions_authorised + sessions_unauthorised) as {{ dbt.type_int() }}) as absence_sessions,
    cast(sum(sessions_unauthorised) as {{ dbt.type_int() }}) as unauthorised_absence_sessions,
    {{ safe_ratio('sum(sessions_attended)', 'sum(sessions_possible)') }} as attendance_rate,
    {{ is_persistent_absence('sum(sessions_authorised + sessions_unauthorised)', 'sum(sessions_possible)') }}
        as is_persistent_absence,
    {{ is_severe_absence('sum(sessions_authorised + sessions_unauthorised)', 'sum(sessions_possible)') }}
        as is_severe_absence
from transfers
group by school_urn, upn, source_urn, academic_year
