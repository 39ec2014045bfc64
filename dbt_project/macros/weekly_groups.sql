{#- The characterised pupil weeks a weekly group model must (re)compute: all of them on a
    full build; on an incremental one, in each academic year a night changed, the weeks
    from the first changed one on (a changed mark moves the year-to-date figures of its
    week and of every later week). The changed pupil weeks carry this run's build time. -#}
{% macro pupil_weeks_from_first_changed_week() -%}
    select pupil_weeks.*
    from {{ ref('int_pupil_weeks__characterised') }} as pupil_weeks
    {% if is_incremental() %}
    inner join ({{ first_changed_weeks() }}) as changed
        on pupil_weeks.academic_year = changed.academic_year
        and pupil_weeks.academic_week_number >= changed.first_changed_week
    {% endif %}
{%- endmacro %}

{#- Each academic year's first week with pupil weeks built since this model last ran. -#}
{% macro first_changed_weeks() -%}
    select academic_year, min(academic_week_number) as first_changed_week
    from {{ ref('int_pupil_weeks') }}
    where session_marks_built_at > {{ newest_in_this('session_marks_built_at') }}
    group by academic_year
{%- endmacro %}

{#- The session counts every pupil-level mart carries, as <name>_sessions (plus missing_marks). -#}
{% macro attendance_measures() -%}
    {{ return(['possible', 'present', 'approved_activity', 'attended', 'authorised_absence',
               'unauthorised_absence', 'absence', 'late', 'late_after_register_closed', 'illness']) }}
{%- endmacro %}
