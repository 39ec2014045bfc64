-- depends_on: {{ ref('stg_mis__load_batches') }}
{{
    config(
        materialized='incremental',
        unique_key=['school_urn', 'amended_in_extract_date'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['school_urn', 'amended_in_extract_date']}],
        pre_hook="{{ forget_amendments_of_reloaded_batches() }}",
        post_hook="{{ record_register_build(as_of_date='null', newest_batch_read=newest_loaded_batch()) }}",
    )
}}
-- The amendment log: every change to a mark after it was first seen (an N resolved
-- to I, a missing mark filled, ...), with the extract that carried each version.
-- The attendance policy (seed 002) requires original and amended entries to be kept.
--
-- Incremental: a night logs the versions its batches added, each against the version
-- before it (read by the raw table's key). A school's batches are redone from the
-- earliest one (re)loaded since the last build (macros/amendments.sql);
-- a pre-hook first forgets what they had logged, so a re-run that withdraws an
-- amendment withdraws it here too.
{% if is_incremental() %}
with reloaded as materialized (
    -- Materialized: read once per mark from memory when the planner, its statistics not yet
    -- showing tonight's extract date, takes the night's marks for one row and loops over them.
    {{ reloaded_amendment_batches() }}
),

added as (
    select marks.school_urn, marks.pupil_id, marks.session_date, marks.session_name, reloaded.from_extract_date
    from {{ ref('stg_mis__register_marks') }} as marks
    inner join reloaded
        on marks.school_urn = reloaded.school_urn and marks.extract_date >= reloaded.from_extract_date
    -- the same bound as a constant, so the raw table's extract_date index serves it
    where marks.extract_date >= {{ query_value_as_literal(
        'select min(from_extract_date) from (' ~ reloaded_amendment_batches() ~ ') as reloaded', 'date') }}
),

marks as (
    -- Every version of each mark those batches added a version of, with its school's bound.
    select marks.*, keys.from_extract_date
    from {{ ref('stg_mis__register_marks') }} as marks
    inner join (select distinct * from added) as keys
        on marks.school_urn = keys.school_urn
        and marks.pupil_id = keys.pupil_id
        and marks.session_date = keys.session_date
        and marks.session_name = keys.session_name
),
{% else %}
with marks as (
    select * from {{ ref('stg_mis__register_marks') }}
),
{% endif %}

versions as (
    -- Every version of every mark on a full build; the pupil key is worked out after, for
    -- the few that are amendments (hashing every version took a third of the full build).
    select
        pupil_id,
        school_urn,
        session_date,
        session_name,
        attendance_code,
        extract_date,
        first_seen_at,
        {% if is_incremental() %}from_extract_date,{% endif %}
        lag(attendance_code) over (
            partition by school_urn, pupil_id, session_date, session_name order by extract_date
        ) as previous_attendance_code,
        lag(extract_date) over (
            partition by school_urn, pupil_id, session_date, session_name order by extract_date
        ) as previous_extract_date
    from marks
)

select
    {{ pupil_key('versions.school_urn', 'versions.pupil_id') }} as pupil_key,
    versions.school_urn,
    versions.session_date,
    versions.session_name,
    versions.previous_attendance_code,
    versions.attendance_code as amended_attendance_code,
    versions.previous_extract_date as previous_seen_in_extract_date,
    versions.extract_date as amended_in_extract_date,
    versions.first_seen_at as amended_seen_at
from versions
where versions.previous_extract_date is not null
{% if is_incremental() %}
  -- The bound is carried on each version, not joined to reloaded again: so joined, the planner
  -- (one row expected each side) ran the versions' window once per school, 110 s at 100 schools
  -- on four nights of eleven, against 2.5 s on the rest; carried, 2.0 s on the same night.
  and versions.extract_date >= versions.from_extract_date
{% endif %}
