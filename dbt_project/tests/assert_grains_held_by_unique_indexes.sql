-- The models whose grain is held by a unique index instead of a data test (their SQL says why)
-- have the unique indexes their config declares. One row per declared index missing: dbt creates
-- an incremental model's indexes only when it creates the table, so a warehouse upgraded without
-- a full refresh could lack one. The key columns are read from the model's config and compared
-- with what PostgreSQL writes back (pg_get_indexdef), both lower-cased without spaces or text casts.
-- A warning, not an error: a missing index leaves the grain unchecked but the night's figures as
-- they were, and a night stopped for it would send no watch lists or emails; the warning names
-- the full refresh that makes the index.
{{ config(severity='warn') }}
{% set models = [ref('fct_session_marks'), ref('rpt_absence_by_group_weekly')] %}
with expected (model_name, table_name, grain) as (
    select cast(null as text), cast(null as text), cast(null as text) where false
    {% for relation in models if execute %}
    {% for index in graph.nodes['model.' ~ project_name ~ '.' ~ relation.identifier].config.indexes
       if index.unique %}
    union all
    select '{{ relation.identifier }}', '{{ relation }}', '{{ index.columns | join(", ") | replace("'", "''") }}'
    {% endfor %}
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
      and regexp_replace(lower(unique_indexes.grain), '::text|\s', '', 'g')
          = regexp_replace(lower(expected.grain), '::text|\s', '', 'g')
)
