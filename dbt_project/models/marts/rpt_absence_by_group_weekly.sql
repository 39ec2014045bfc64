-- Persistent and severe absence, and attendance, by trust and school, for every
-- pupil group, as at the end of each week of the academic year, with the same
-- week of the previous academic year beside it.
-- population: whole_school, or statutory_school_age (Years 1-11, as national statistics).
-- The enrolments of a week are those with marks that week; their PA/SA status is
-- year to date as at the end of that week (DfE definitions, unrounded rates).
-- The counts are int_absence_by_group_weekly's (incremental); this adds the rates
-- and sets each week beside the same week of the year before.
with measured as (
    select
        grouped.*,
        {{ safe_ratio('persistent_absence_enrolments', 'enrolments') }} as persistent_absence_rate,
        {{ safe_ratio('severe_absence_enrolments', 'enrolments') }} as severe_absence_rate,
        {{ safe_ratio('week_attended_sessions', 'week_possible_sessions') }} as week_attendance_rate,
        {{ safe_ratio('year_to_date_attended_sessions', 'year_to_date_possible_sessions') }} as year_to_date_attendance_rate
    from {{ ref('int_absence_by_group_weekly') }} as grouped
)

select
    current_year.scope,
    current_year.school_urn,
    cast(current_year.academic_year as {{ dbt.type_int() }}) as academic_year,
    current_year.academic_week_number,
    current_year.week_start_date,
    current_year.population,
    current_year.dimension,
    current_year.dimension_value,
    cast(current_year.enrolments as {{ dbt.type_int() }}) as enrolments,
    cast(current_year.persistent_absence_enrolments as {{ dbt.type_int() }}) as persistent_absence_enrolments,
    current_year.persistent_absence_rate,
    cast(current_year.severe_absence_enrolments as {{ dbt.type_int() }}) as severe_absence_enrolments,
    current_year.severe_absence_rate,
    current_year.week_attendance_rate,
    current_year.year_to_date_attendance_rate,
    cast(previous_year.enrolments as {{ dbt.type_int() }}) as previous_year_enrolments,
    previous_year.persistent_absence_rate as previous_year_persistent_absence_rate,
    previous_year.severe_absence_rate as previous_year_severe_absence_rate,
    previous_year.week_attendance_rate as previous_year_week_attendance_rate,
    previous_year.year_to_date_attendance_rate as previous_year_year_to_date_attendance_rate
from measured as current_year
left join measured as previous_year
    on previous_year.scope = current_year.scope
    and coalesce(previous_year.school_urn, '') = coalesce(current_year.school_urn, '')
    and previous_year.academic_year = current_year.academic_year - 1
    and previous_year.academic_week_number = current_year.academic_week_number
    and previous_year.population = current_year.population
    and previous_year.dimension = current_year.dimension
    and previous_year.dimension_value = current_year.dimension_value
