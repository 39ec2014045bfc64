-- The trust's schools with how fresh each one's data is.
with latest_batch as (
    select
        school_urn,
        extract_date,
        load_status,
        row_number() over (partition by school_urn order by extract_date desc) as recency
    from {{ ref('stg_mis__load_batches') }}
),

last_loaded as (
    select school_urn, max(extract_date) as last_loaded_extract_date
    from {{ ref('stg_mis__load_batches') }}
    where load_status = 'loaded'
    group by school_urn
),

last_mark as (
    -- From the per-session code counts: the same dates, a far smaller table than the marks.
    select school_urn, max(session_date) as last_session_date
    from {{ ref('int_school_session_codes') }}
    group by school_urn
)

select
    schools.school_urn,
    schools.school_name,
    schools.phase,
    schools.la_code,
    latest_batch.extract_date as last_extract_date,
    latest_batch.load_status as last_load_status,
    last_loaded.last_loaded_extract_date,
    last_mark.last_session_date
from {{ ref('stg_mis__schools') }} as schools
left join latest_batch
    on schools.school_urn = latest_batch.school_urn and latest_batch.recency = 1
left join last_loaded on schools.school_urn = last_loaded.school_urn
left join last_mark on schools.school_urn = last_mark.school_urn
