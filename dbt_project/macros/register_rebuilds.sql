{#- The incremental scope of the register marts (fct_missing_marks, int_register_sessions).
    Their rows can change only where a session's marks changed (a new day, a blank filled
    in, a closure recorded) or where a pupil's enrolment or form group changed. So a night
    redoes, for this academic year, every session whose marks were built since the model's
    last build, and the pupils whose register expectations changed since then (for a
    register's counts, all of their school's sessions); a pre-hook first deletes the rows
    about to be redone, so resolved missing marks go. fct_missing_marks redoes a session that
    was open before and after the night's marks only for the pupils whose own marks changed.
    The scope reads the model's last build time and as-at date as literals (register_builds):
    the pre-hook's delete must not change what the model's query then reads. -#}
{% macro register_rows_built_since() -%}
    coalesce({{ last_register_build('built_at', 'timestamptz', 'max(built_at)') }}, '-infinity')
{%- endmacro %}

{#- The as-at date of the model's last build: a later session it has not covered yet. -#}
{% macro register_rows_newest_session_date() -%}
    coalesce({{ last_register_build('as_of_date', 'date', 'max(session_date)') }}, '-infinity')
{%- endmacro %}

{#- Each register mart's last build, a row per model: its time, as-at date and (for a model that
    reads load batches) the newest batch it read. The model's rows cannot say: fct_missing_marks
    has rows only where a mark is missing, so at a trust whose registers are complete its newest
    row stood still, and each night redid every mark and session since it for every pupil (at
    100 schools 2.4 s on the first night after a rebuild, 25.5 s on the twelfth);
    fct_register_amendments has rows only where a mark was amended. Its schema is named, not
    taken from a ref, so that keeping a record adds no dependency to a model. -#}
{% macro register_builds() -%}
    {%- do return(api.Relation.create(database=target.database, schema=generate_schema_name('intermediate', none), identifier='register_mart_builds')) -%}
{%- endmacro %}

{#- on-run-start: make the record (and its later columns) before any model runs. In the models'
    post-hooks, two creating it at once can fail on PostgreSQL's catalog, and an alter table waits
    for every open build that has read the record (two such would wait for each other). -#}
{% macro keep_register_builds() -%}
    create schema if not exists {{ register_builds().schema }};
    create table if not exists {{ register_builds() }} (
        model text primary key,
        built_at timestamptz not null,
        as_of_date date
    );
    alter table {{ register_builds() }} add column if not exists newest_batch_recorded_at timestamptz
{%- endmacro %}

{#- Post-hook: record this build, in its own transaction, so the record is never newer than the rows.
    Each of ``as_of_date`` and ``newest_batch_read`` is a query, or null for a model that does
    not read it: the marts' as-at date, and the newest load batch the model read (loads come
    before the build, so it is the newest the model's query saw). -#}
{% macro record_register_build(as_of_date="select as_of_date from " ~ ref('int_reporting_date'), newest_batch_read='null') -%}
    insert into {{ register_builds() }} (model, built_at, as_of_date, newest_batch_recorded_at)
    values ('{{ this.identifier }}', cast('{{ run_started_at.isoformat() }}' as timestamptz), ({{ as_of_date }}), ({{ newest_batch_read }}))
    on conflict (model) do update set built_at = excluded.built_at, as_of_date = excluded.as_of_date,
        newest_batch_recorded_at = excluded.newest_batch_recorded_at
{%- endmacro %}

{#- A column of the model's last build, as a literal; for a model built before the record (or the
    column) was kept, ``from_rows`` (an aggregate of its own rows) instead. The record is read only
    where it is there: dbt compile and docs generate run no on-run-start. -#}
{% macro last_register_build(column, data_type, from_rows) -%}
    {%- set builds = load_relation(register_builds()) if execute -%}
    {%- set kept = builds and column in (adapter.get_columns_in_relation(builds) | map(attribute='name') | list) -%}
    {%- set recorded = "(select " ~ column ~ " from " ~ register_builds() ~ " where model = '" ~ this.identifier ~ "')" -%}
    {%- set from_this = "(select " ~ from_rows ~ " from " ~ this ~ ")" -%}
    {{ query_value_as_literal("select " ~ ("coalesce(" ~ recorded ~ ", " ~ from_this ~ ")" if kept else from_this), data_type) }}
{%- endmacro %}

{#- Pupils whose enrolments or form group changed since the last build. -#}
{% macro register_pupils_to_redo() -%}
    select pupil_key, school_urn
    from {{ ref('int_pupils__register_changes') }}
    where changed_at > {{ register_rows_built_since() }}
{%- endmacro %}

{#- Sessions to redo, this academic year: marks built since; (after a build as at an earlier
    date) every session later than the newest this table holds; with ``whole_schools``, every
    session of a school with a pupil to redo. All bounds are literals, so PostgreSQL plans for
    the night's few hundred sessions: planned with subqueries, int_register_sessions read the
    whole year's marks (5.0 s against 1.2 s at 20 schools), or worse. -#}
{% macro register_sessions_to_redo(whole_schools=false) -%}
    {%- set as_of = query_value_as_literal("select as_of_date from " ~ ref('int_reporting_date'), "date") -%}
    select distinct school_urn, session_date, session_name
    from {{ ref('int_school_session_codes') }}
    where session_date >= make_date(cast({{ academic_year_start(as_of) }} as {{ dbt.type_int() }}), 9, 1)
      and session_date <= {{ as_of }}
      and (
        session_marks_built_at > {{ register_rows_built_since() }}
        or session_date > {{ register_rows_newest_session_date() }}
        {%- if whole_schools %}
        or school_urn in {{ query_values_as_literals("select distinct school_urn from (" ~ register_pupils_to_redo() ~ ") as changed") }}
        {%- endif %}
      )
{%- endmacro %}

{#- Of the sessions to redo (not whole schools), those whose rows only the pupils with a changed
    mark need redone: sessions the model covered, open before the night's marks (a possible mark
    built before then, unchanged) and so open still. Any other pupil's row there stands: it
    follows from the session being open, the pupil's enrolment and form (pupils to redo) and
    the pupil's own mark. Redone whole, a night's re-sent window of amendments made every
    session of the last two weeks redone for every pupil (at 20 schools 218 k pupil-sessions
    looked up for 391 sessions, where the new day and the amended marks are 23 k). -#}
{% macro register_sessions_open_throughout() -%}
    select sessions.school_urn, sessions.session_date, sessions.session_name
    from ({{ register_sessions_to_redo() }}) as sessions
    -- one such mark per session, by the (school_urn, session_date) index (as an exists, the
    -- planner read every mark of history to hash them)
    cross join lateral (
        select
        from {{ ref('fct_session_marks') }} as marks
        where marks.school_urn = sessions.school_urn
          and marks.session_date = sessions.session_date
          and marks.session_name = sessions.session_name
          and marks.built_at <= {{ register_rows_built_since() }}
          and marks.is_possible
        limit 1
    ) as unchanged_possible_mark
    where sessions.session_date <= {{ register_rows_newest_session_date() }}
{%- endmacro %}

{#- Pre-hook: delete what the model is about to redo (rows of the pupils to redo, unless
    their schools are redone whole; in a session open throughout, only the rows of pupils
    whose marks changed), and anything outside this academic year as at the reporting date. -#}
{% macro forget_register_rows_to_redo(whole_schools=false) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as stored
    where (
           (stored.school_urn, stored.session_date, stored.session_name) in ({{ register_sessions_to_redo(whole_schools) }})
           {%- if not whole_schools %}
           and (
               (stored.school_urn, stored.session_date, stored.session_name) not in ({{ register_sessions_open_throughout() }})
               or exists (
                   select from {{ ref('fct_session_marks') }} as marks
                   where marks.pupil_key = stored.pupil_key
                     and marks.session_date = stored.session_date
                     and marks.session_name = stored.session_name
                     and marks.built_at > {{ register_rows_built_since() }}
               )
           )
           {%- endif %}
       )
       {%- if not whole_schools %}
       or stored.pupil_key in (select pupil_key from ({{ register_pupils_to_redo() }}) as changed)
       {%- endif %}
       or stored.session_date < (select make_date(academic_year, 9, 1) from ({{ reporting_as_at() }}) as reporting)
       or stored.session_date > (select as_of_date from {{ ref('int_reporting_date') }})
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Each pupil on roll (inside an enrolment) in each of the sessions; with ``of_pupils``, the
    sessions are pupils' own (a pupil_key each), and each is kept if its pupil was on roll. -#}
{% macro pupils_on_roll_in(sessions, enrolments, of_pupils=false) -%}
    select enrolments.pupil_key, sessions.school_urn, sessions.session_date, sessions.session_name
    from {{ sessions }} as sessions
    inner join {{ enrolments }} as enrolments
        on enrolments.school_urn = sessions.school_urn
        {%- if of_pupils %}
        and enrolments.pupil_key = sessions.pupil_key
        {%- endif %}
        and enrolments.admission_date <= sessions.session_date
        and (enrolments.leaving_date is null or sessions.session_date <= enrolments.leaving_date)
{%- endmacro %}
