-- Rules doc, "Measures": attendance + absence = 100 % of possible sessions.
-- (Not for 2020/21-2021/22, when COVID X codes were possible but neither.)
select pupil_key, academic_year, attendance_rate, absence_rate
from {{ ref('fct_pupil_attendance') }}
where possible_sessions > 0
  and academic_year >= 2022
  and abs(attendance_rate + absence_rate - 1) > 0.000000001
