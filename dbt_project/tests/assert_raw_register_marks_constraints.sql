-- stg_mis__register_marks' versions are unique, keyed and AM or PM because raw.register_marks'
-- constraints say so (its primary key and the check on session). One row per guarantee missing.
{% set marks = source('mis', 'register_marks') %}
with expected_key (column_name) as (
    values ('school_urn'), ('pupil_id'), ('session_date'), ('session'), ('extract_date')
),

constraints as (
    -- each constraint of the table, with its key columns or its check clause
    select table_constraints.constraint_type, key_column_usage.column_name, check_constraints.check_clause
    from information_schema.table_constraints
    left join information_schema.key_column_usage
        on key_column_usage.constraint_schema = table_constraints.constraint_schema
        and key_column_usage.constraint_name = table_constraints.constraint_name
    left join information_schema.check_constraints
        on check_constraints.constraint_schema = table_constraints.constraint_schema
        and check_constraints.constraint_name = table_constraints.constraint_name
    where table_constraints.table_schema = '{{ marks.schema }}'
      and table_constraints.table_name = '{{ marks.identifier }}'
),

key_columns as (
    select column_name from constraints where constraint_type = 'PRIMARY KEY'
),

session_checks as (
    select check_clause
    from constraints
    where constraint_type = 'CHECK'
      and check_clause like '%session%' and check_clause like '%''AM''%' and check_clause like '%''PM''%'
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
