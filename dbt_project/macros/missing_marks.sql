{#- fct_missing_marks' incremental scope. A missing mark can appear or go only where a
    session's marks changed (a new day, a blank filled in, a closure recorded) or where a
    pupil's enrolment or form group changed. So a night redoes, for this academic year,
    every session whose marks were built since the last build, and every session of the
    pupils whose register expectations changed since then; a pre-hook first deletes the
    rows it is about to redo, so missing marks that were resolved go.
    Both read this table's newest build time and newest session date, as literals: the
    pre-hook's delete must not change what the model's query then reads. -#}
{% macro missing_marks_rebuilt_since() -%}
    coalesce({{ newest_in_this('built_at') }}, '-infinity')
{%- endmacro %}

{#- Sessions to redo: marks built since, and (after a build as at an earlier date) every
    session later than the newest this table holds. -#}
{% macro missing_marks_rebuilt_sessions() -%}
    select distinct school_urn, session_date, session_name
    from {{ ref('int_school_session_codes') }}
    where session_marks_built_at > {{ missing_marks_rebuilt_since() }}
       or session_date > coalesce({{ query_value_as_literal("select max(session_date) from " ~ this, "date") }}, '-infinity')
{%- endmacro %}

{#- Pupils to redo: their enrolments or form group changed since. -#}
{% macro missing_marks_rebuilt_pupils() -%}
    select pupil_key
    from {{ ref('int_pupils__register_changes') }}
    where changed_at > {{ missing_marks_rebuilt_since() }}
{%- endmacro %}

{#- Pre-hook: delete what the model is about to redo, and anything outside this academic
    year as at the reporting date. -#}
{% macro forget_missing_marks_to_rebuild() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as stored
    where (stored.school_urn, stored.session_date, stored.session_name) in ({{ missing_marks_rebuilt_sessions() }})
       or stored.pupil_key in ({{ missing_marks_rebuilt_pupils() }})
       or stored.session_date < (select make_date(cast({{ academic_year_start('as_of_date') }} as {{ dbt.type_int() }}), 9, 1) from {{ ref('int_reporting_date') }})
       or stored.session_date > (select as_of_date from {{ ref('int_reporting_date') }})
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Each pupil on roll (inside an enrolment) in each of the sessions. -#}
{% macro pupils_on_roll_in(sessions, enrolments) -%}
    select enrolments.pupil_key, sessions.school_urn, sessions.session_date, sessions.session_name
    from {{ sessions }} as sessions
    inner join {{ enrolments }} as enrolments
        on enrolments.school_urn = sessions.school_urn
        and enrolments.admission_date <= sessions.session_date
        and (enrolments.leaving_date is null or sessions.session_date <= enrolments.leaving_date)
{%- endmacro %}
