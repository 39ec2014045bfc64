-- The "as at" date of the marts: var('as_of_date') if set, else the latest session date loaded.
select
    coalesce(
        {% if var('as_of_date') %}cast('{{ var("as_of_date") }}' as date){% else %}cast(null as date){% endif %},
        max(session_date)
    ) as as_of_date
from {{ ref('fct_session_marks') }}
