"""Governor and trustee packs: PDF and HTML per school and for the trust.

Runs when the nightly DAG refreshes the marts (the asset below) and builds
packs only when the registers reach a half-term end; trigger it by hand with
params for a pack on demand (any school or the trust, any period end).
"""
from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pendulum
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk import Param, dag, get_current_context, task

from trust_attendance import nightly
from trust_attendance.assets import MARTS
from trust_attendance.config import task_retries
from trust_attendance.publish import notify_failure

RETRIES, RETRY_DELAY_SECONDS = task_retries()


@dag(
    dag_id="governor_packs",
    schedule=[MARTS],
    start_date=pendulum.datetime(2026, 9, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
                  "on_failure_callback": notify_failure},
    params={
        "school": Param("all", type="string", description="'all', 'trust', or a school URN"),
        "period_end": Param(None, type=["null", "string"], format="date",
                            description="Last register date of the period (default: the latest loaded)"),
    },
    tags=["attendance", "governors"],
    doc_md=__doc__,
)
def governor_packs():
    @task
    def build() -> list[str]:
        context = get_current_context()
        params = context["params"]
        if params["period_end"]:
            period_end = dt.date.fromisoformat(params["period_end"])
        else:
            period_end = nightly.extract_date_for(context) - dt.timedelta(days=1)
            if context["dag_run"].run_type == "asset_triggered" and not nightly.is_half_term_end(period_end):
                raise AirflowSkipException(f"{period_end} is not a half-term end: no packs tonight")
        return nightly.build_governor_packs(period_end, params["school"])

    build()


governor_packs()
