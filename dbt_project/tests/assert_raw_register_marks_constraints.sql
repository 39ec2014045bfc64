-- stg_mis__register_marks' versions are unique, keyed and AM or PM because raw.register_marks'
-- constraints say so (its primary key and the check on session). One row per guarantee missing.
{% set marks = source('mis', 'register_marks') %}
with expected_key (column_name) as (
    values ('school_urn'), ('pupil_id'), ('session_date'), ('session'), ('extract_date')
),

constraints as (
    select table_constraints.constraint_name, table_constraints.constraint_type
    from information_schema.table_constraints
    where table_constraints.table_schema = '{{ marks.schema }}'
      and table_constraints.table_name = '{{ marks.identifier }}'
),

key_columns as (
    select key_column_usage.column_name
    from constraints
    inner join information_schema.key_column_usage
        on key_column_usage.constraint_name = constraints.constraint_name
        and key_column_usage.table_schema = '{{ marks.schema }}'
    where constraints.constraint_type = 'PRIMARY KEY'
),

session_checks as (
    select check_constraints.check_clause
    from constraints
    inner join information_schema.check_constraints
        on check_constraints.constraint_name = constraints.constraint_name
        and check_constraints.constraint_schema = '{{ marks.schema }}'
    where constraints.constraint_type = 'CHECK'
      and check_constraints.check_clause like '%session%'
      and check_constraints.check_clause like '%''AM''%'
      and check_constraints.check_clause like '%''PM''%'
)

select 'the primary key lacks ' || column_name as missing_guarantee
from expected_key
where column_name not in (select column_name from key_columns)
union all
select 'the primary key also has ' || column_name
from key_columns
where column_name not in (select column_name from expected_key)
union all
select 'no check that session is AM or PM'
from (select count(*) as checks from session_checks) as counted
where counted.checks = 0
