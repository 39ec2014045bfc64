-- depends_on: {{ ref('int_school_day_statuses') }}
{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Each academic year in which a pupil has any mark (open day or not), and when its marks last
-- changed: a mark built, or a day the pupil has marks on or before opened or closed.
--
-- Incremental: a night rewrites the pupil-years it changed (macros/pupil_weeks.sql), found by
-- fct_session_marks' built_at index, where reading every mark for the distinct pairs took 4.5 s
-- a night at 100 schools. A pair never goes: a mark, once in fct_session_marks, stays there.
{% if is_incremental() %}
select pupil_key, academic_year, newest_built_at as session_marks_built_at
from ({{ pupil_years_changed_since(newest_in_this('session_marks_built_at')) }}) as changed
{% else %}
select
    pupil_key,
    academic_year,
    max(built_at) as session_marks_built_at
from {{ ref('fct_session_marks') }}
group by pupil_key, academic_year
{% endif %}
