{#- The pupil-years an opened or closed day makes to redo: those with a mark at the school from its
    first day whose open status changed after `since` (int_school_day_statuses) on, in any academic
    year (school-week numbers run on across years), each from that day's week and dated by the
    change. Their own marks may not have changed, but their weeks, closed-day figures and school-week
    numbers did. On a night with no such day the status index answers with nothing and no mark is read. -#}
{% macro pupil_years_at_days_opened_or_closed_since(since) -%}
    select
        marks.pupil_key,
        marks.school_urn,
        marks.academic_year,
        cast({{ dbt.date_trunc('week', 'flipped.first_flipped_date') }} as date) as first_changed_week,
        flipped.status_changed_at
    from (
        select school_urn, min(session_date) as first_flipped_date, max(status_changed_at) as status_changed_at
        from {{ ref('int_school_day_statuses') }}
        where status_changed_at > {{ since }}
        group by school_urn
    ) as flipped
    inner join {{ ref('fct_session_marks') }} as marks
        on marks.school_urn = flipped.school_urn and marks.session_date >= flipped.first_flipped_date
    group by marks.pupil_key, marks.school_urn, marks.academic_year, flipped.first_flipped_date, flipped.status_changed_at
{%- endmacro %}

{#- The pupil-years a build after `since` must redo: those with a mark built since, and those with a
    mark at a school on or after a day that opened or closed since. Each with the week of its earliest
    change (a changed mark's own week, its day open or not: an amendment that closes a day takes the
    day's marks out of their week) and its newest change. In pupil order: each one's weeks are then
    looked up along int_pupil_weeks' (pupil_key, academic_year, week_start_date) index in the order
    the index and the table hold them (at 100 schools, from a cold cache, int_pupil_weeks' carried
    totals took 2.7 s against 8.3 s). -#}
{% macro pupil_years_changed_since(since) -%}
    select
        pupil_key,
        academic_year,
        cast({{ dbt.date_trunc('week', 'min(changed_from)') }} as date) as first_changed_week,
        max(changed_at) as newest_built_at
    from (
        select pupil_key, academic_year, session_date as changed_from, built_at as changed_at
        from {{ ref('fct_session_marks') }}
        where built_at > {{ since }}
        union all
        select pupil_key, academic_year, first_changed_week, status_changed_at
        from ({{ pupil_years_at_days_opened_or_closed_since(since) }}) as flipped
    ) as changes
    group by pupil_key, academic_year
    order by pupil_key, academic_year
{%- endmacro %}

{#- Pre-hook: delete this model's rows of the pupil-years `changed` lists (pupil_key, academic_year,
    first_changed_week) dated (by `date_column`) in or after their first changed week; the model then
    writes those that still exist. A week whose open days have all closed is not recomputed, and a
    delete of the recomputed rows' keys alone kept it with its old counts. The bound (this model's
    newest row) is read as a literal before the delete, as the model's query reads it.
    int_pupil_weeks deletes every changed pupil-year's weeks so; fct_pupil_attendance_periods only
    those of a day that opened or closed (a week can go only so), and with them the half-terms and
    terms ending on them. -#}
{% macro forget_pupil_rows_from_first_changed_week(changed, date_column) -%}
    delete from {{ this }} as stored
    where stored.ctid = any (array(
        -- Each changed pupil-year's rows looked up through the table's pupil-year index (offset 0
        -- keeps the lateral a loop). Joined, PostgreSQL hashed the pupil-years and read the whole
        -- table: at 100 schools 4.1 M weeks for 99,911, 1.22 s against 0.60 s this way.
        select to_forget.ctid
        from ({{ changed }}) as changed
        cross join lateral (
            select pupil_row.ctid
            from {{ this }} as pupil_row
            where pupil_row.pupil_key = changed.pupil_key
              and pupil_row.academic_year = changed.academic_year
              and pupil_row.{{ date_column }} >= changed.first_changed_week
            offset 0
        ) as to_forget
    ))
{%- endmacro %}
