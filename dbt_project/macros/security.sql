{#- Row-level security on a pupil-level mart: BI and identified readers see every row,
    school readers only their own schools' (security.current_user_schools()).
    Run as a post-hook on every build, because a rebuilt table loses its policies. -#}
{% macro row_level_security() %}
    alter table {{ this }} enable row level security;
    drop policy if exists trust_wide_read on {{ this }};
    create policy trust_wide_read on {{ this }} for select
        to trust_bi_reader, trust_identified_reader using (true);
    drop policy if exists own_school_read on {{ this }};
    create policy own_school_read on {{ this }} for select
        to trust_school_reader using (school_urn in (select security.current_user_schools()));
{% endmacro %}
