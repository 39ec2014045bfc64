{#
    dbt's hook for a test's `where` config, with one placeholder: `__newest__(column)` is the
    newest value of that column in the tested model. Tests on the big incremental models use
    it to read only the rows the latest run wrote, so their cost follows the night's delta:
    older rows were tested on the night they were written, and a delete+insert run replaces
    every row whose key it writes, so uniqueness can only break among the rows it wrote.
    A full refresh writes every row at once, so it tests them all.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- set where = modules.re.sub('__newest__\\((\\w+)\\)', '(select max(\\1) from ' ~ relation ~ ')', where) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
