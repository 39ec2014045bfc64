{#- Models land in the schema their folder names (staging, intermediate, marts),
    not in "<target schema>_<folder>": BI tools and roles are granted by schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name is not none else target.schema }}
{%- endmacro %}
