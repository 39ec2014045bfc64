{{
    config(
        materialized='incremental',
        unique_key='pupil_key',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['changed_at']}],
    )
}}
-- One row per pupil any latest extract has listed: what the registers expect of them
-- (their enrolments' dates and their form group, as a fingerprint) and when that last
-- changed. Every extract re-sends every pupil, so this is how the register marts tell
-- the night's few admissions, leavers and form moves from the thousands of pupils who
-- are as they were. A pupil no longer in their school's latest extract keeps a row with
-- no fingerprint, changed when they went.
with enrolment_periods as (
    select
        pupil_key,
        school_urn,
        string_agg(
            cast(admission_date as {{ dbt.type_string() }}) || '..' || coalesce(cast(leaving_date as {{ dbt.type_string() }}), ''),
            ',' order by admission_date
        ) as periods
    from {{ ref('int_enrolments__current') }}
    group by pupil_key, school_urn
),

current_pupils as (
    select
        coalesce(enrolment_periods.pupil_key, pupils.pupil_key) as pupil_key,
        coalesce(enrolment_periods.school_urn, pupils.school_urn) as school_urn,
        md5(coalesce(enrolment_periods.periods, '') || '|' || coalesce(pupils.form_group, '')) as register_fingerprint
    from enrolment_periods
    full outer join {{ ref('int_pupils__current') }} as pupils on enrolment_periods.pupil_key = pupils.pupil_key
)

{% if is_incremental() %}
select
    coalesce(current_pupils.pupil_key, stored.pupil_key) as pupil_key,
    coalesce(current_pupils.school_urn, stored.school_urn) as school_urn,
    current_pupils.register_fingerprint,
    cast('{{ run_started_at.isoformat() }}' as timestamptz) as changed_at
from current_pupils
full outer join {{ this }} as stored on current_pupils.pupil_key = stored.pupil_key
where current_pupils.register_fingerprint is distinct from stored.register_fingerprint
{% else %}
select pupil_key, school_urn, register_fingerprint, cast('{{ run_started_at.isoformat() }}' as timestamptz) as changed_at
from current_pupils
{% endif %}
