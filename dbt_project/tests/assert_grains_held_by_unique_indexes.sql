-- The models whose grain is held by a unique index instead of a data test (their SQL says why)
-- have that index, on exactly their grain. One row per grain without one: dbt creates an
-- incremental model's indexes only when it creates the table, so a warehouse upgraded without
-- a full refresh could lack it. Key columns as PostgreSQL writes them back (pg_get_indexdef).
-- A warning, not an error: a missing index leaves the grain unchecked but the night's figures as
-- they were, and a night stopped for it would send no watch lists or emails; the warning names
-- the full refresh that makes the index.
{{ config(severity='warn') }}
{% set grains = [
    (ref('fct_session_marks'), ['session_date', 'pupil_key', 'session_name']),
    (ref('rpt_absence_by_group_weekly'), ['academic_year', 'academic_week_number', 'scope',
                                          "COALESCE(school_urn, ''::text)", 'population', 'dimension',
                                          'dimension_value']),
] %}
with expected (model_name, table_name, grain) as (
    values
    {% for relation, columns in grains %}
        ('{{ relation.identifier }}', '{{ relation }}', '{{ columns | join(", ") | replace("'", "''") }}'){{ "," if not loop.last }}
    {% endfor %}
),

unique_indexes as (
    select
        indrelid as table_oid,
        (select string_agg(pg_get_indexdef(indexrelid, key_number, true), ', ' order by key_number)
         from generate_series(1, indnkeyatts) as key_number) as grain
    from pg_index
    where indisunique
)

select expected.table_name || ' has no unique index on (' || expected.grain || '): run dbt build --full-refresh --select '
    || expected.model_name as missing_guarantee
from expected
where not exists (
    select 1 from unique_indexes
    where unique_indexes.table_oid = expected.table_name::regclass
      and unique_indexes.grain = expected.grain
)
