{#- The academic year (1 September to 31 August) a date falls in, as its starting calendar year. -#}
{% macro academic_year_start(date_expression) -%}
    (extract(year from {{ date_expression }}) - case when extract(month from {{ date_expression }}) < 9 then 1 else 0 end)
{%- endmacro %}

{#- National curriculum year group as a number: nursery N1 = -2, N2 = -1, reception R = 0. -#}
{% macro year_group_number(year_group) -%}
    case {{ year_group }} when 'N1' then -2 when 'N2' then -1 when 'R' then 0
        else {{ dbt.safe_cast(year_group, api.Column.translate_type("integer")) }} end
{%- endmacro %}

{#- A share as an unrounded fraction; null when there is nothing to divide by. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when {{ denominator }} > 0 then cast({{ numerator }} as {{ dbt.type_numeric() }}) / {{ denominator }} end
{%- endmacro %}
