{#- The characterised pupil weeks a weekly group model must (re)compute: all of them on a
    full build; on an incremental one, in each academic year a night changed, the weeks
    from the first changed one on (a changed mark moves the year-to-date figures of its
    week and of every later week). -#}
{% macro pupil_weeks_from_first_changed_week() -%}
    select pupil_weeks.*
    from {{ ref('int_pupil_weeks__characterised') }} as pupil_weeks
    {% if is_incremental() %}
    inner join ({{ first_changed_weeks() }}) as changed
        on pupil_weeks.academic_year = changed.academic_year
        and pupil_weeks.academic_week_number >= changed.first_changed_week
    {% endif %}
{%- endmacro %}

{#- Each academic year's first week with a change since this model last ran: a mark built since,
    or a day opened or closed since (which can take a whole week out). -#}
{% macro first_changed_weeks() -%}
    {% set since = newest_in_this('session_marks_built_at') %}
    select academic_year, {{ academic_week_number('min(changed_from)', 'academic_year') }} as first_changed_week
    from (
        select academic_year, session_date as changed_from
        from {{ ref('fct_session_marks') }}
        where built_at > {{ since }}
        union all
        select academic_year, session_date
        from {{ ref('int_school_day_statuses') }}
        where status_changed_at > {{ since }}
    ) as changes
    group by academic_year
{%- endmacro %}

{#- Pre-hook of a weekly group model: delete, in each academic year changed (and, with
    `years_after`, as many years after it), the weeks from the first changed one on, which the
    model then appends. A week that went (its only open day closed) is not rewritten, and a
    delete of the rewritten weeks' keys alone kept it. -#}
{% macro forget_weeks_from_first_changed(years_after=0) -%}
    delete from {{ this }} as stored
    using ({{ first_changed_weeks() }}) as changed
    where stored.academic_year between changed.academic_year and changed.academic_year + {{ years_after }}
      and stored.academic_week_number >= changed.first_changed_week
{%- endmacro %}

{#- The session counts every pupil-level mart carries, as <name>_sessions (plus missing_marks). -#}
{% macro attendance_measures() -%}
    {{ return(['possible', 'present', 'approved_activity', 'attended', 'authorised_absence',
               'unauthorised_absence', 'absence', 'late', 'late_after_register_closed', 'illness', 'n_code']) }}
{%- endmacro %}

{#- The same counts as column names, with missing_marks: what int_pupil_weeks keeps for each week,
    each with its year_to_date_ running total. -#}
{% macro pupil_week_counts() -%}
    {% set counts = [] %}
    {% for measure in attendance_measures() %}{% do counts.append(measure ~ '_sessions') %}{% endfor %}
    {% do counts.append('missing_marks') %}
    {{ return(counts) }}
{%- endmacro %}
