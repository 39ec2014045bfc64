"""Retention: remove register marks older than the retention period (default three
academic years, per the trusts' policy), recording what was purged in raw.purge_log,
then rebuild the marts from raw: the incremental models never re-read marks they
already hold, so without a full refresh the purged marks would stay in them."""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk import dag, get_current_context, task

from trust_attendance import nightly
from trust_attendance.config import task_retries
from trust_attendance.publish import notify_failure

RETRIES, RETRY_DELAY_SECONDS = task_retries()


@dag(
    dag_id="retention",
    schedule="0 4 1 9 *",  # once a year, at the start of the academic year
    start_date=pendulum.datetime(2026, 9, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
                  "on_failure_callback": notify_failure},
    tags=["attendance", "maintenance"],
    doc_md=__doc__,
)
def retention():
    @task
    def purge_expired_marks() -> dict[str, int]:
        return nightly.purge_expired_marks(nightly.extract_date_for(get_current_context()))

    @task
    def rebuild_marts(purged: dict[str, int]) -> None:
        if not nightly.rebuild_marts_after_purge(purged):
            raise AirflowSkipException("nothing was purged")

    rebuild_marts(purge_expired_marks())


retention()
