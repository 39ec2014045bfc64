{#- What int_pupil_weeks recomputes: each pupil-year whose marks were built after `since`, the week
    of its earliest changed mark (its day open or not: an amendment that closes a day takes the
    day's marks out of their week) and its newest change. -#}
{% macro pupil_weeks_to_recompute(since) -%}
    select
        pupil_key,
        academic_year,
        min(cast({{ dbt.date_trunc('week', 'session_date') }} as date)) as first_changed_week,
        max(built_at) as newest_built_at
    from {{ ref('fct_session_marks') }}
    where built_at > {{ since }}
    group by pupil_key, academic_year
{%- endmacro %}

{#- Pre-hook: delete the stored weeks about to be recomputed (each changed pupil-year's weeks from
    its first changed one on), which the model then appends. A week whose open days have all closed
    is not recomputed, and a delete of the recomputed weeks' keys alone kept it with its old counts.
    The bound is read as a literal before the delete, as the model's query reads it. -#}
{% macro forget_pupil_weeks_to_recompute() -%}
    delete from {{ this }} as stored
    using ({{ pupil_weeks_to_recompute(newest_in_this('session_marks_built_at')) }}) as changed
    where stored.pupil_key = changed.pupil_key
      and stored.academic_year = changed.academic_year
      and stored.week_start_date >= changed.first_changed_week
{%- endmacro %}
