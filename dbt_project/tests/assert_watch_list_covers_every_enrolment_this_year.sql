-- Every enrolment with marks this academic year has a watch-list row, and no other.
with this_year as (
    select pupil_key from {{ ref('fct_pupil_attendance') }}
    where academic_year = (select max(academic_year) from {{ ref('fct_pupil_attendance') }})
)
select coalesce(this_year.pupil_key, watch.pupil_key) as pupil_key
from this_year
full outer join {{ ref('fct_watch_list') }} as watch on this_year.pupil_key = watch.pupil_key
where this_year.pupil_key is null or watch.pupil_key is null
