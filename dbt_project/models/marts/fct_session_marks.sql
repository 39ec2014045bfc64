-- depends_on: {{ ref('stg_mis__load_batches') }}
{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'session_date', 'session_name'],
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[
            {'columns': ['school_urn', 'session_date']},
            {'columns': ['session_date', 'pupil_key', 'session_name'], 'unique': True},
            {'columns': ['pupil_key']},
            {'columns': ['built_at', 'loaded_at']},
            {'columns': ['school_urn', 'latest_extract_date']},
            {'columns': ['session_date'], 'type': 'brin'},
        ],
    )
}}
-- One row per pupil, school, date and session: the current version of the mark
-- (the one carried by the latest extract) and what its code meant on that day.
-- Historic codes keep their historic category: J before August 2024 is an approved
-- educational activity, J1 after it an authorised absence. Rows arrive roughly in date
-- order, so a block-range index on session_date serves the marts' "this year" and
-- "recent days" ranges at almost no cost; (school_urn, latest_extract_date) answers
-- "has this school's night been built already?" without a scan. The grain is held by a
-- unique index, not a data test: as unique it checks every row a build writes, where the
-- test re-read every row after a full build (72 s at 100 schools, with every other model
-- waiting).
--
-- That index leads with the date, and the pupil-level models read marks by a separate
-- pupil_key index. A night's new marks all share one date, so they go in at one end of the
-- unique index; led by pupil_key (2.5 GB at 100 schools), they went in at 80,000 places
-- (each pupil's own), and nearly every one was a page to read, dirty and write in full to
-- the WAL. The pupil_key index, with its duplicates stored once, is 285 MB. The same night's
-- 174,425 marks merged, each layout in a rolled-back transaction after a checkpoint:
-- 11.7 s, 190 k pages dirtied and 1.40 GB of WAL led by pupil; 4.6 s, 105 k and 0.55 GB now.
--
-- Incremental: a night re-reads only the marks whose versions were loaded since the
-- last build (new nights, amendments, and a re-run's replacements), so its cost
-- follows the night's delta, not the size of history. A re-run of a night that was
-- already built could also have withdrawn versions: the marks whose current version came
-- from the re-run's extract, and amended ones whose current version is later (their count
-- of versions can drop). The (school_urn, latest_extract_date) index finds them, and only
-- they are re-read, where re-reading the school's two academic years rebuilt 5.1 M marks
-- at 20 schools in 153 s. Most re-runs send the same export again, so each of those marks
-- is among the re-run's own: only the rest (withdrawn) need their versions found by key.
-- Whether there are any is asked before the query is planned. Planned in, the re-run's
-- case made PostgreSQL read every mark and all of raw (4.4 s at 20 schools); asked first,
-- a re-run with none reads its marks as a night does (0.55 s, and 0.08 s to ask).
--
-- Merged (PostgreSQL 15 or later), not deleted and inserted: most of a night's marks are new,
-- and delete+insert looked each one up in the unique index to delete nothing before inserting
-- it. At 100 schools a night's 173,828 marks (14,648 of them amended) took 11.0-14.2 s against
-- 14.0-16.1 s.

{% if is_incremental() %}
{% set watermark_sql %}
    -- The newest version read so far is among the rows the last build wrote ((built_at, loaded_at) index).
    select max(loaded_at) as loaded_at from {{ this }}
    where built_at = (select max(built_at) from {{ this }})
{% endset %}
{% set loaded_batches_sql %}
    -- A batch's marks are stored in the transaction that records it, so they carry its time.
    select school_urn, extract_date
    from {{ ref('stg_mis__load_batches') }}
    where recorded_at > ({{ watermark_sql }})
{% endset %}
{% set rerun_batches_sql %}
    -- Batches (re)loaded since the last build for a night this model has already seen.
    select batches.school_urn, batches.extract_date
    from ({{ loaded_batches_sql }}) as batches
    where batches.extract_date <= (
          select max(existing.latest_extract_date) from {{ this }} as existing
          where existing.school_urn = batches.school_urn
      )
{% endset %}
{% set loaded_marks_sql %}
    select marks.school_urn, marks.pupil_id, marks.session_date, marks.session_name
    from {{ ref('stg_mis__register_marks') }} as marks
    inner join ({{ loaded_batches_sql }}) as loaded_batches
        on marks.school_urn = loaded_batches.school_urn and marks.extract_date = loaded_batches.extract_date
    -- The same dates as constants, so the raw table's extract_date index finds the night's rows. As a
    -- subquery they were planned as 1/n_distinct of the table: a week after a trust's history came
    -- in one extract, a third of it, and the night read all 39 M marks at 100 schools (5 s).
    where marks.extract_date in {{ query_values_as_literals("select distinct extract_date from (" ~ loaded_batches_sql ~ ") as batches") }}
{% endset %}
{% set withdrawn_marks_sql %}
    with rerun_marks as materialized (
        -- The marks such a batch could change by withdrawing a version: those whose current
        -- version came from its extract, and amended ones whose current version is later. Read
        -- per batch through the (school_urn, latest_extract_date) index (offset 0 keeps the
        -- lateral from being flattened into a join that read every mark).
        select existing.*
        from ({{ rerun_batches_sql }}) as batches
        cross join lateral (
            select marks.school_urn, marks.pupil_key, marks.session_date, marks.session_name
            from {{ this }} as marks
            where marks.school_urn = batches.school_urn
              and marks.latest_extract_date >= batches.extract_date
              and (marks.latest_extract_date = batches.extract_date
                   or (marks.was_amended and marks.session_date < batches.extract_date))
            offset 0
        ) as existing
    ),

    loaded_marks as materialized (
        -- Each loaded mark's key worked out once, for one hashed anti-join.
        select {{ pupil_key('school_urn', 'pupil_id') }} as pupil_key, session_date, session_name
        from ({{ loaded_marks_sql }}) as loaded
    )

    -- Of those, the marks the batches loaded since the last build did not carry again. Only
    -- these need their versions found by key: a night re-run with the same export has none.
    select rerun_marks.*
    from rerun_marks
    where not exists (
        select from loaded_marks
        where loaded_marks.pupil_key = rerun_marks.pupil_key
          and loaded_marks.session_date = rerun_marks.session_date
          and loaded_marks.session_name = rerun_marks.session_name
    )
{% endset %}
{% set has_withdrawn_marks = execute and run_query(rerun_batches_sql).rows | length > 0
    and run_query("select count(*) from (" ~ withdrawn_marks_sql ~ ") as withdrawn").columns[0].values()[0] > 0 %}
with
{% if has_withdrawn_marks %}

withdrawn_marks as (
    {{ withdrawn_marks_sql }}
),
{% endif %}

touched as (
    {{ loaded_marks_sql }}
{%- if has_withdrawn_marks %}
    union
    select marks.school_urn, marks.pupil_id, marks.session_date, marks.session_name
    from {{ ref('stg_mis__register_marks') }} as marks
    inner join (
        select school_urn, min(session_date) as earliest_session_date from withdrawn_marks group by school_urn
    ) as withdrawn_windows
        on marks.school_urn = withdrawn_windows.school_urn
        and marks.session_date >= withdrawn_windows.earliest_session_date
    inner join withdrawn_marks
        on withdrawn_marks.pupil_key = {{ pupil_key('marks.school_urn', 'marks.pupil_id') }}
        and withdrawn_marks.session_date = marks.session_date
        and withdrawn_marks.session_name = marks.session_name
{%- endif %}
),

versions as (
    -- Keyed by the raw table's own columns so the lookup can use its primary key.
    select marks.*
    from {{ ref('stg_mis__register_marks') }} as marks
    inner join touched
        on marks.school_urn = touched.school_urn
        and marks.pupil_id = touched.pupil_id
        and marks.session_date = touched.session_date
        and marks.session_name = touched.session_name
),
{% else %}
with versions as (
    select * from {{ ref('stg_mis__register_marks') }}
),
{% endif %}

candidates as (
    select
        school_urn,
        pupil_id,
        {{ pupil_key('school_urn', 'pupil_id') }} as pupil_key,
        session_date,
        session_name,
        attendance_code,
        minutes_late,
        extract_date,
        first_seen_at
    from versions
),

ranked as (
    -- One window gives both the latest version and how many were seen: one sort, where a
    -- row_number and a count over the same partition took two passes (at 20 schools the full
    -- build's select 10.5 s against 12.3 s). Ordered by the raw key instead, the raw table's
    -- primary key could feed it unsorted, but only while the table lies in key order: history
    -- loaded night by night lies in date order, and sorting by the raw key took 13.1 s.
    -- The partition leads with the date, then the school, so that a full build and every night
    -- write the marks in (session_date, school_urn) order: the night's models read the last school
    -- weeks by (school_urn, session_date), and each such read then finds its school-day's marks on
    -- a few dozen pages, not spread over the day's thousands. school_urn adds no partition (the
    -- pupil_key hashes it). Led by pupil_key, the last two school weeks lay on 105 k pages, every
    -- page read again for each day (dbt 40.0 / 40.4 s against 49.5 s, the same night re-run with
    -- the table clustered each way). With the school after the date, again at 100 schools, night 4
    -- re-run with the table clustered each way, alternated: dbt 35.7 / 33.4 s against 45.0 (as the
    -- bench left it) / 38.1 s; int_pupil_weeks 9.9 / 8.7 against 14.4 / 12.2 s, the streaks 5.5 /
    -- 5.3 against 9.8 / 8.4 s. A full build of int_pupil_weeks, which read the marks pupil by
    -- pupil and so from different pages of each day, now reads them a school at a time.
    select
        candidates.*,
        lead(extract_date) over by_version is null as is_latest_version,
        row_number() over by_version as version_number
    from candidates
    window by_version as (partition by session_date, school_urn, pupil_key, session_name order by extract_date)
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
    ranked.version_number > 1 as was_amended,
    ranked.extract_date as latest_extract_date,
    ranked.first_seen_at as loaded_at,
    cast('{{ run_started_at.isoformat() }}' as timestamptz) as built_at
from ranked
left join codes
    on ranked.attendance_code = codes.attendance_code
    and ranked.session_date >= codes.valid_from
    and (codes.valid_to is null or ranked.session_date < codes.valid_to)
where ranked.is_latest_version
