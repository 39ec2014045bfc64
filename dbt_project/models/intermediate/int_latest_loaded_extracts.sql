-- The latest extract of each school that loaded: the snapshot tables (pupils,
-- enrolments, attainment, transfers) are read as of this extract.
select school_urn, max(extract_date) as extract_date
from {{ ref('stg_mis__load_batches') }}
where load_status = 'loaded'
group by school_urn
