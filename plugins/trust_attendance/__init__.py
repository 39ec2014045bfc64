"""Trust attendance platform: the library behind the nightly DAGs.

One module per pipeline stage (sources, validate, load, publish), plus the
trust configuration (config), the warehouse connection and embedded server
(warehouse) and the synthetic demo trust generator (demo). Nothing here
imports Airflow, so every stage is testable without a scheduler.
"""
