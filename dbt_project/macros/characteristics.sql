{#- The pupil characteristics figures are broken down by, as (dimension, SQL expression
    giving the group label). Used by every group mart so the breakdowns agree. -#}
{% macro pupil_breakdowns() -%}
    {{ return([
        ('all_pupils', "'All pupils'"),
        ('year_group', 'year_group_label'),
        ('form_group', "coalesce(current_form_group, 'Unknown')"),
        ('pupil_premium', "case when is_pupil_premium then 'PP' else 'Non-PP' end"),
        ('free_school_meals', "case when is_free_school_meals then 'FSM' else 'Non-FSM' end"),
        ('fsm6', "case when is_free_school_meals_6 then 'FSM6' else 'Non-FSM6' end"),
        ('disadvantaged', "case when is_disadvantaged then 'Disadvantaged' else 'Not disadvantaged' end"),
        ('sen_provision', "case sen_provision when 'K' then 'SEN support' when 'E' then 'EHC plan' else 'No SEN' end"),
        ('english_additional_language', "case when is_english_additional_language then 'EAL' else 'Non-EAL' end"),
        ('sex', "coalesce(sex, 'Unknown')"),
        ('ethnicity', "coalesce(ethnicity_code, 'Unknown')"),
        ('looked_after', "case when is_looked_after then 'Looked after' else 'Not looked after' end"),
    ]) }}
{%- endmacro %}

{#- The characteristics every pupil-level model carries, from int_pupil_characteristics
    (aliased as ``relation``), in one order so the models agree. -#}
{% macro pupil_characteristic_columns(relation) -%}
    {%- for column in ['current_form_group', 'sex', 'ethnicity_code', 'is_pupil_premium', 'is_free_school_meals',
                       'is_free_school_meals_6', 'is_disadvantaged', 'sen_provision',
                       'is_english_additional_language', 'is_looked_after'] %}
    {{ relation }}.{{ column }},
    {%- endfor %}
{%- endmacro %}
