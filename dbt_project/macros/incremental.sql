{#- The value of a one-value query, run before the model's query is planned, as a literal.
    An incremental model's bounds (its newest row, the night's earliest date) written as
    subqueries are unknown when PostgreSQL plans the query: it then expected a third of a
    39 M-row table to lie beyond them and read all of it for a night's 174 k marks.
    At parse time (no database), and in a unit test (whose inputs are CTEs, not tables),
    the query stays a subquery. -#}
{% macro query_value_as_literal(query, data_type=none) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set value = run_query(query).columns[0].values()[0] -%}
        {%- set literal = "null" if value is none else "'" ~ value.isoformat() ~ "'" -%}
        {#- without a type, the literal takes the type of what it is compared with -#}
        {{ literal if data_type is none else "cast(" ~ literal ~ " as " ~ data_type ~ ")" }}
    {%- else -%}
        ({{ query }})
    {%- endif -%}
{%- endmacro %}

{#- The values of a one-column query, as a list of literals for `in`: the same for a set
    (the schools whose pupils changed tonight) that decides how many rows a query reads. -#}
{% macro query_values_as_literals(query) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set quoted = [] -%}
        {%- for value in run_query(query).columns[0].values() -%}
            {%- do quoted.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}
        {%- endfor -%}
        ({{ quoted | join(", ") if quoted else "null" }})
    {%- else -%}
        ({{ query }})
    {%- endif -%}
{%- endmacro %}

{#- The newest value of a (timestamp) column of the incremental model being built. A night asks
    it two or three times per model (the pre-hook, the query, a newest-rows test), so the models
    whose tables a night mostly keeps index that column: unindexed, each ask scanned the table (at
    100 schools, in a slow hour, the weekly group models' and the PP gap's asks summed 0.9-1.6 s
    of a night; indexed, 0.1 s). The pupil-year tables, which a night mostly rewrites, and the
    small day statuses are scanned for it (0.15 s or less each in that hour). -#}
{% macro newest_in_this(column) -%}
    {{ query_value_as_literal("select max(" ~ column ~ ") from " ~ this, "timestamptz") }}
{%- endmacro %}

{#- The earliest session date among the session marks built after `since`: bounds the
    re-read of a night's sessions to the dates it touched. The marks are found by the built_at
    index first (offset 0): left to itself, PostgreSQL walked the date-led unique index from
    the oldest mark up to the first one built since, 420 s at 100 schools. -#}
{% macro earliest_session_date_built_after(since) -%}
    {{ query_value_as_literal("select min(session_date) from (select session_date from " ~ ref('fct_session_marks') ~ " where built_at > " ~ since ~ " offset 0) as built", "date") }}
{%- endmacro %}

{#- The incremental strategy `bounded_delete_insert`: dbt's delete+insert, its delete held to the rows
    at or above the least value the new rows hold of each column the model names in `meta.bounded_by`
    (under meta, where dbt 1.10 on wants a project's own configs). dbt's delete probes every row of
    the table for the new rows' keys, so it grows with the history; a bounded column is one of the
    unique key's, so any row the new rows replace lies within the bound.
    For fct_pupil_attendance_periods, bounded by academic_year, the previous years' rows are passed
    over by a comparison instead of each being hashed and probed (at 100 schools, two academic
    years, 5.1 M rows, the delete 1.72-1.95 s against 2.95-3.79 s, alternated). -#}
{% macro get_incremental_bounded_delete_insert_sql(arg_dict) -%}
    {%- set new_rows = arg_dict['temp_relation'] -%}
    {%- set unique_key = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else (arg_dict['unique_key'] or []) -%}
    {%- set predicates = (arg_dict['incremental_predicates'] or []) | list -%}
    {%- for column in config.meta_require('bounded_by') -%}
        {%- if column not in unique_key -%}
            {{ exceptions.raise_compiler_error("bounded_by: " ~ column ~ " is not in the unique key of " ~ this) }}
        {%- endif -%}
        {%- do predicates.append("DBT_INTERNAL_DEST." ~ column ~ " >= (select min(" ~ column ~ ") from " ~ new_rows ~ ")") -%}
    {%- endfor -%}
    {{ return(get_delete_insert_merge_sql(arg_dict['target_relation'], new_rows, arg_dict['unique_key'],
                                          arg_dict['dest_columns'], predicates)) }}
{%- endmacro %}
