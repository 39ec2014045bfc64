"""Nightly attendance load: every school's registers into the trust warehouse.

prepare -> ingest_school, one mapped task per school: extract -> validate (GX) -> load (COPY)
        -> dbt build (on whatever loaded) -> watch lists -> exception emails to school leads.
All logic lives in plugins/trust_attendance; this file only wires it.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk import dag, get_current_context, task

from trust_attendance import nightly
from trust_attendance.assets import MARTS
from trust_attendance.config import task_retries
from trust_attendance.publish import notify_failure

RETRIES, RETRY_DELAY_SECONDS = task_retries()


@dag(
    dag_id="nightly_attendance",
    schedule="0 2 * * *",  # after MIS overnight exports, before staff arrive
    start_date=pendulum.datetime(2026, 9, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": RETRIES,
        "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
        "retry_exponential_backoff": True,
        "on_failure_callback": notify_failure,
    },
    tags=["attendance", "nightly"],
    doc_md=__doc__,
)
def nightly_attendance():
    @task
    def prepare() -> list[str]:
        return nightly.prepare_warehouse()

    # The grid and failure emails name each mapped task by its school's URN, not its index;
    # the outcome is one XCom (a dict return would otherwise be pushed key by key).
    @task(map_index_template="{{ task.op_kwargs['school_urn'] }}", multiple_outputs=False)
    def ingest_school(school_urn: str) -> dict:
        outcome = nightly.ingest_school(school_urn, nightly.extract_date_for(get_current_context()))
        if outcome["quarantined_to"]:
            raise AirflowSkipException(f"batch quarantined to {outcome['quarantined_to']}: nothing loaded tonight")
        return outcome

    @task(trigger_rule="all_done", outlets=[MARTS])
    def dbt_build() -> None:
        nightly.build_marts()

    @task
    def export_watch_lists() -> dict[str, str]:
        return nightly.export_watch_lists(nightly.extract_date_for(get_current_context()))

    @task
    def send_exception_emails() -> dict[str, str]:
        return nightly.send_exception_emails(nightly.extract_date_for(get_current_context()))

    ingest_school.expand(school_urn=prepare()) >> dbt_build() >> export_watch_lists() >> send_exception_emails()


nightly_attendance()
