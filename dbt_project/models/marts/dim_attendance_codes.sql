select * from {{ ref('attendance_codes') }}
