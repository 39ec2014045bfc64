{#- fct_register_amendments' incremental scope: per school, the earliest batch (re)loaded
    since the newest batch the last build read (its record, macros/register_rebuilds.sql). Later
    batches are redone with it, as a re-run of an older night can change what later nights
    amended. A school's first batch (its whole history) is never looked at, as it cannot amend.
    The latest amendment logged was the watermark until it stalled: after a night that amends
    nothing anywhere, every batch since was read again each night until one did. -#}
{% macro reloaded_amendment_batches() -%}
    select school_urn, min(extract_date) as from_extract_date
    from (
        select
            school_urn,
            extract_date,
            recorded_at,
            min(extract_date) over (partition by school_urn) as first_extract_date
        from {{ ref('stg_mis__load_batches') }}
        where load_status = 'loaded'
    ) as batches
    where recorded_at > coalesce({{ last_register_build('newest_batch_recorded_at', 'timestamptz', 'max(amended_seen_at)') }}, '-infinity')
      and extract_date > first_extract_date
    group by school_urn
{%- endmacro %}

{#- The newest load batch the model read, for its build record. -#}
{% macro newest_loaded_batch() -%}
    select max(recorded_at) from {{ ref('stg_mis__load_batches') }} where load_status = 'loaded'
{%- endmacro %}

{#- Pre-hook: forget the amendments the batches about to be redone had logged. -#}
{% macro forget_amendments_of_reloaded_batches() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as logged
    using ({{ reloaded_amendment_batches() }}) as reloaded
    where logged.school_urn = reloaded.school_urn and logged.amended_in_extract_date >= reloaded.from_extract_date
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
