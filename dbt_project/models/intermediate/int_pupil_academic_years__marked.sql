{{
    config(
        materialized='incremental',
        unique_key=['pupil_key', 'academic_year'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Each academic year in which a pupil has any mark (open day or not).
--
-- Incremental: a night adds the years of the marks it built, found by fct_session_marks'
-- built_at index, where reading every mark for the distinct pairs took 4.5 s a night at
-- 100 schools. A pair never goes: a mark, once in fct_session_marks, stays there.
select
    pupil_key,
    academic_year,
    max(built_at) as session_marks_built_at
from {{ ref('fct_session_marks') }}
{% if is_incremental() %}
where built_at > {{ newest_in_this('session_marks_built_at') }}
{% endif %}
group by pupil_key, academic_year
