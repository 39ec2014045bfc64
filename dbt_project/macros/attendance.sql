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

{#- Session counts from rows of fct_session_marks (one row per pupil-session). -#}
{% macro attendance_session_sums() -%}
    sum(case when is_possible then 1 else 0 end) as possible_sessions,
    sum(case when is_present then 1 else 0 end) as present_sessions,
    sum(case when is_approved_activity_or_elsewhere then 1 else 0 end) as approved_activity_sessions,
    sum(case when is_attending then 1 else 0 end) as attended_sessions,
    sum(case when is_authorised_absence then 1 else 0 end) as authorised_absence_sessions,
    sum(case when is_unauthorised_absence then 1 else 0 end) as unauthorised_absence_sessions,
    sum(case when is_absent then 1 else 0 end) as absence_sessions,
    sum(case when is_late then 1 else 0 end) as late_sessions,
    sum(case when attendance_code = 'U' then 1 else 0 end) as late_after_register_closed_sessions,
    sum(case when attendance_code = 'I' then 1 else 0 end) as illness_sessions,
    sum(case when attendance_code = 'N' then 1 else 0 end) as n_code_sessions,
    sum(case when is_missing_mark then 1 else 0 end) as missing_marks
{%- endmacro %}

{#- Rates and flags from summed session counts (rules doc, "Measures"). PA and SA
    compare integers, so exactly 10 % (50 %) absence is persistent (severe)
    with no floating-point doubt. -#}
{% macro attendance_rates(prefix='') -%}
    {{ safe_ratio(prefix ~ 'attended_sessions', prefix ~ 'possible_sessions') }} as attendance_rate,
    {{ safe_ratio(prefix ~ 'absence_sessions', prefix ~ 'possible_sessions') }} as absence_rate,
    {{ safe_ratio(prefix ~ 'authorised_absence_sessions', prefix ~ 'possible_sessions') }} as authorised_absence_rate,
    {{ safe_ratio(prefix ~ 'unauthorised_absence_sessions', prefix ~ 'possible_sessions') }} as unauthorised_absence_rate,
    {{ is_persistent_absence(prefix ~ 'absence_sessions', prefix ~ 'possible_sessions') }} as is_persistent_absence,
    {{ is_severe_absence(prefix ~ 'absence_sessions', prefix ~ 'possible_sessions') }} as is_severe_absence,
    {{ attendance_band(prefix ~ 'attended_sessions', prefix ~ 'possible_sessions') }} as attendance_band
{%- endmacro %}

{% macro is_persistent_absence(absence, possible) -%}
    ({{ possible }} > 0 and {{ absence }} * 10 >= {{ possible }})
{%- endmacro %}

{% macro is_severe_absence(absence, possible) -%}
    ({{ possible }} > 0 and {{ absence }} * 2 >= {{ possible }})
{%- endmacro %}

{#- Attendance band, lower bound inclusive: 90-92 means 90 % <= attendance < 92 %. -#}
{% macro attendance_band(attended, possible) -%}
    case
        when {{ possible }} = 0 or {{ possible }} is null then null
        when {{ attended }} * 100 < {{ possible }} * 50 then '<50'
        when {{ attended }} * 100 < {{ possible }} * 90 then '50-90'
        when {{ attended }} * 100 < {{ possible }} * 92 then '90-92'
        when {{ attended }} * 100 < {{ possible }} * 95 then '92-95'
        when {{ attended }} * 100 < {{ possible }} * 97 then '95-97'
        when {{ attended }} * 100 < {{ possible }} * 99 then '97-99'
        else '99-100'
    end
{%- endmacro %}

{#- Pseudonymous pupil key: one per enrolment (school + MIS pupil id). -#}
{% macro pupil_key(school_urn, pupil_id) -%}
    {{ dbt.hash(dbt.concat([school_urn, "'|'", pupil_id])) }}
{%- endmacro %}

{#- Week number within the academic year: week 1 is the week (Monday start) containing 1 September. -#}
{% macro academic_week_number(date_expression, academic_year) -%}
    cast(
        {{ dbt.datediff(dbt.date_trunc('week', "cast(" ~ dbt.concat([dbt.safe_cast(academic_year, api.Column.translate_type('string')), "'-09-01'"]) ~ " as date)"), dbt.date_trunc('week', date_expression), 'day') }} / 7 + 1
    as {{ dbt.type_int() }})
{%- endmacro %}

{#- Term of the academic year from the half-term number (1-2 autumn, 3-4 spring, 5-6 summer). -#}
{% macro term_name(half_term_number) -%}
    case when {{ half_term_number }} <= 2 then 'Autumn' when {{ half_term_number }} <= 4 then 'Spring' else 'Summer' end
{%- endmacro %}

{#- Half-term from its number: 'Autumn 1', 'Autumn 2', 'Spring 1' ... -#}
{% macro half_term_name(half_term_number) -%}
    {{ dbt.concat([term_name(half_term_number), "' '", "case when " ~ half_term_number ~ " % 2 = 1 then '1' else '2' end"]) }}
{%- endmacro %}

{#- Post-hook: fresh statistics on a table just built whole, so the models built next in the
    same run are planned on its real size (autovacuum's analyze may not have run yet). After an
    incremental model's night, only its time stamps (columns ending in _at): the night changed a
    sliver of the table, but every one of its rows carries a build time past the statistics' end,
    and a model looking for them (built_at > its last build) was planned for one row (a nested
    loop over 23 k marks at 20 schools, 0.9 s). The whole analyses were a fifth of a night's SQL
    at 20 schools (4.1 of 19.8 s); the time stamps' take half as long or less. Their sample is a
    tenth of the default (3,000 rows, not 30,000): the stamps are only ever compared with a
    build's time, and a night's rows are a share (0.45 % of the marks at 20 and at 100 schools)
    that 3,000 rows still show. At 100 schools the six largest tables' stamps took 0.64-0.76 s
    warm and 1.9-2.1 s cold with the default, 0.08 s and 0.3-0.4 s with this. Autovacuum's
    analyses keep the default. -#}
{% macro analyze_if_table() -%}
    {%- set materialized = config.get('materialized') -%}
    {%- if materialized == 'table' or (materialized == 'incremental' and not is_incremental()) -%}
        analyze {{ this }}
    {%- elif materialized == 'incremental' -%}
        {%- set stamps = [] -%}
        {%- for column in adapter.get_columns_in_relation(this) if column.name.endswith('_at') -%}
            {%- do stamps.append(adapter.quote(column.name)) -%}
        {%- endfor -%}
        {{ 'set local default_statistics_target = 10; analyze ' ~ this ~ ' (' ~ stamps | join(', ') ~ ')'
           if stamps else 'select 1' }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- on-run-start: fresh planner statistics for the source tables that need them. The incremental
    models find the night's rows by joining the loaded batches to the raw marks; a raw table never
    analysed (the first nights after a trust's initial load, before autovacuum gets to it) made
    PostgreSQL choose a plan that took 100 s instead of 5 s for one model. So a table is analysed
    when it never was, or when more of it changed since than autovacuum lets pass (a tenth): a
    night's load is a sliver of it, and analysing every source anyway held up the start of every
    build (0.5 s at 20 schools). -#}
{% macro analyze_sources(source_name) -%}
    {%- if execute -%}
        {%- set tables = [] -%}
        {%- for node in graph.sources.values() if node.source_name == source_name -%}
            {%- do tables.append("('" ~ node.schema ~ "', '" ~ node.identifier ~ "')") -%}
        {%- endfor -%}
        {%- set stale = run_query(
            "select format('%I.%I', stats.schemaname, stats.relname) from pg_stat_user_tables as stats"
            ~ " inner join pg_class on pg_class.oid = stats.relid"
            ~ " where (stats.schemaname, stats.relname) in (" ~ tables | join(", ") ~ ")"
            ~ " and (coalesce(stats.last_analyze, stats.last_autoanalyze) is null"
            ~ " or stats.n_mod_since_analyze > 50 + 0.1 * greatest(pg_class.reltuples, 0))") -%}
        {%- for table in stale.columns[0].values() -%}
            {%- do run_query('analyze ' ~ table) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
