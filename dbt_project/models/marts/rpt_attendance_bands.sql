-- How pupils are spread across attendance bands, per school and for the trust,
-- per academic year (year to date), for the whole school and Years 1-11.
with grouped as (
    {% for scope in ['trust', 'school'] %}
    {% for population in ['whole_school', 'statutory_school_age'] %}
    select
        '{{ scope }}' as scope,
        {{ "school_urn" if scope == 'school' else "cast(null as " ~ dbt.type_string() ~ ")" }} as school_urn,
        academic_year,
        '{{ population }}' as population,
        attendance_band,
        count(*) as enrolments
    from {{ ref('fct_pupil_attendance') }}
    where attendance_band is not null
    {% if population == 'statutory_school_age' %}and is_statutory_school_age{% endif %}
    group by {{ "school_urn, " if scope == 'school' else "" }}academic_year, attendance_band
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    scope,
    school_urn,
    academic_year,
    population,
    attendance_band,
    cast(enrolments as {{ dbt.type_int() }}) as enrolments,
    {{ safe_ratio('enrolments', 'sum(enrolments) over (partition by scope, school_urn, academic_year, population)') }}
        as share_of_enrolments
from grouped
