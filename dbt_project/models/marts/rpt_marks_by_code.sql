-- The mix of marks: how many of each code, as a share of all marks and of possible
-- sessions, per school and for the trust, per academic year.
with marks as (
    select codes.*
    from {{ ref('int_school_session_codes') }} as codes
    cross join {{ ref('int_reporting_date') }} as reporting
    where codes.session_date <= reporting.as_of_date
),

grouped as (
    {% for scope in ['trust', 'school'] %}
    select
        '{{ scope }}' as scope,
        {{ "school_urn" if scope == 'school' else "cast(null as " ~ dbt.type_string() ~ ")" }} as school_urn,
        academic_year,
        coalesce(attendance_code, '(missing)') as attendance_code,
        max(coalesce(attendance_category, 'missing_mark')) as attendance_category,
        sum(marks) as marks,
        sum(case when is_possible then marks else 0 end) as possible_marks
    from marks
    group by {{ "school_urn, " if scope == 'school' else "" }}academic_year, coalesce(attendance_code, '(missing)')
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    scope,
    school_urn,
    academic_year,
    attendance_code,
    attendance_category,
    cast(marks as {{ dbt.type_int() }}) as marks,
    {{ safe_ratio('marks', 'sum(marks) over (partition by scope, school_urn, academic_year)') }} as share_of_marks,
    {{ safe_ratio('possible_marks', 'sum(possible_marks) over (partition by scope, school_urn, academic_year)') }}
        as share_of_possible_sessions
from grouped
