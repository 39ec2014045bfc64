-- When absence happens: by day of the week and AM/PM session, per school and for
-- the trust, per academic year (seed 003: absence profiles by day and session).
with marks as (
    select codes.*, days.iso_day_of_week
    from {{ ref('int_school_session_codes') }} as codes
    inner join {{ ref('int_school_days') }} as days
        on codes.school_urn = days.school_urn and codes.session_date = days.session_date
    cross join {{ ref('int_reporting_date') }} as reporting
    where codes.session_date <= reporting.as_of_date
),

grouped as (
    {% for scope in ['trust', 'school'] %}
    select
        '{{ scope }}' as scope,
        {{ "school_urn" if scope == 'school' else "cast(null as " ~ dbt.type_string() ~ ")" }} as school_urn,
        academic_year,
        iso_day_of_week,
        session_name,
        sum(case when is_possible then marks else 0 end) as possible_sessions,
        sum(case when is_absent then marks else 0 end) as absence_sessions,
        sum(case when is_unauthorised_absence then marks else 0 end) as unauthorised_absence_sessions,
        sum(case when is_late then marks else 0 end) as late_sessions
    from marks
    group by {{ "school_urn, " if scope == 'school' else "" }}academic_year, iso_day_of_week, session_name
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    scope,
    school_urn,
    academic_year,
    iso_day_of_week,
    case iso_day_of_week when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
        when 4 then 'Thursday' when 5 then 'Friday' when 6 then 'Saturday' else 'Sunday' end as day_of_week,
    session_name,
    cast(possible_sessions as {{ dbt.type_int() }}) as possible_sessions,
    cast(absence_sessions as {{ dbt.type_int() }}) as absence_sessions,
    cast(unauthorised_absence_sessions as {{ dbt.type_int() }}) as unauthorised_absence_sessions,
    cast(late_sessions as {{ dbt.type_int() }}) as late_sessions,
    {{ safe_ratio('absence_sessions', 'possible_sessions') }} as absence_rate,
    {{ safe_ratio('unauthorised_absence_sessions', 'possible_sessions') }} as unauthorised_absence_rate
from grouped
