"""Airflow assets the DAGs share (imported only by DAG files)."""
from airflow.sdk import Asset

# Updated by the nightly DAG's dbt build; the governor-pack DAG is scheduled on it.
MARTS = Asset(name="trust_attendance_marts", uri="trust-attendance://warehouse/marts", group="trust_attendance")
