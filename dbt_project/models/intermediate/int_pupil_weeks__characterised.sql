{{ config(materialized='view') }}
-- Each enrolment's school weeks (int_pupil_weeks) with the characteristics figures are
-- broken down by and its PA/SA status year to date as at the end of the week: the
-- shared base of the weekly group marts. A view: each mart reads only the weeks it needs.
select
    weeks.*,
    characteristics.phase,
    characteristics.year_group_number,
    case when characteristics.year_group_number is null then 'Unknown'
         when characteristics.year_group_number <= 0 then 'Early years'
         else {{ dbt.concat(["'Year '", dbt.safe_cast('characteristics.year_group_number', api.Column.translate_type('string'))]) }}
    end as year_group_label,
    characteristics.is_statutory_school_age,
    {{ pupil_characteristic_columns('characteristics') }}
    {{ is_persistent_absence('weeks.year_to_date_absence_sessions', 'weeks.year_to_date_possible_sessions') }}
        as is_persistent_absence_to_date,
    {{ is_severe_absence('weeks.year_to_date_absence_sessions', 'weeks.year_to_date_possible_sessions') }}
        as is_severe_absence_to_date
from {{ ref('int_pupil_weeks') }} as weeks
inner join {{ ref('int_pupil_characteristics') }} as characteristics
    on weeks.pupil_key = characteristics.pupil_key and weeks.academic_year = characteristics.academic_year
