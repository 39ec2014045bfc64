-- The daily pupil target (seed 001): for each school, how many pupils can be absent
-- on a day while the school still meets 98 %, 97 % ... 90 % attendance. The roll is
-- the pupils with a possible session on the school's latest open day.
with latest_day as (
    select school_urn, max(session_date) as session_date
    from {{ ref('int_school_days') }}
    group by school_urn
),

roll as (
    select marks.school_urn, latest_day.session_date, count(distinct marks.pupil_key) as pupils_on_roll
    from {{ ref('fct_session_marks') }} as marks
    inner join latest_day
        on marks.school_urn = latest_day.school_urn and marks.session_date = latest_day.session_date
    where marks.is_possible
    group by marks.school_urn, latest_day.session_date
),

targets as (
    {% for target in range(98, 89, -1) %}
    select {{ target }} as target_attendance_percent{% if not loop.last %} union all{% endif %}
    {% endfor %}
)

select
    roll.school_urn,
    roll.session_date as roll_date,
    cast(roll.pupils_on_roll as {{ dbt.type_int() }}) as pupils_on_roll,
    cast(targets.target_attendance_percent as {{ dbt.type_int() }}) as target_attendance_percent,
    -- Most pupils absent with attendance still at or above the target: floor(roll x (100 - target) / 100).
    cast(floor(roll.pupils_on_roll * (100 - targets.target_attendance_percent) / 100.0) as {{ dbt.type_int() }})
        as pupils_absent_at_target,
    cast(roll.pupils_on_roll - floor(roll.pupils_on_roll * (100 - targets.target_attendance_percent) / 100.0)
        as {{ dbt.type_int() }}) as pupils_present_needed
from roll
cross join targets
