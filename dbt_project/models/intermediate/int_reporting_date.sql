-- The "as at" date of the marts: var('as_of_date') if set, else the latest session date loaded
-- (read from the per-session code counts, a small table, rather than every mark).
select
    coalesce(
        {% if var('as_of_date') %}cast('{{ var("as_of_date") }}' as date){% else %}cast(null as date){% endif %},
        max(session_date)
    ) as as_of_date
from {{ ref('int_school_session_codes') }}
