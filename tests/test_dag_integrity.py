"""Every DAG imports cleanly and is wired as intended."""
from __future__ import annotations

import importlib
import os

import pytest

from trust_attendance.cli import TASK_PROCESS_SETTINGS
from trust_attendance.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def dagbag(isolated_var_dir):
    os.environ["AIRFLOW_HOME"] = str(isolated_var_dir / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "nightly_attendance" in dagbag.dags


def test_nightly_dag_has_the_pipeline_stages_in_order(dagbag):
    dag = dagbag.dags["nightly_attendance"]
    assert set(dag.task_ids) == {
        "prepare", "ingest_school", "dbt_build", "export_watch_lists", "send_exception_emails",
    }
    downstream = lambda task_id: dag.get_task(task_id).downstream_task_ids  # noqa: E731
    assert downstream("prepare") == {"ingest_school"}
    assert downstream("ingest_school") == {"dbt_build"}
    assert downstream("dbt_build") == {"export_watch_lists"}
    assert downstream("export_watch_lists") == {"send_exception_emails"}


def test_nightly_dag_is_production_ready(dagbag):
    dag = dagbag.dags["nightly_attendance"]
    assert dag.schedule is not None and dag.max_active_runs == 1 and not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.on_failure_callback, task.task_id
    # dbt builds on whatever loaded, even when a school failed.
    assert dag.get_task("dbt_build").trigger_rule == "all_done"


def test_governor_packs_dag_is_scheduled_on_the_marts_asset(dagbag):
    dag = dagbag.dags["governor_packs"]
    assert dag.task_ids == ["build"]
    assert set(dag.params.keys()) == {"school", "period_end"}
    nightly = dagbag.dags["nightly_attendance"]
    assert [a.uri for a in nightly.get_task("dbt_build").outlets] == ["trust-attendance://warehouse/marts"]
    assert "trust-attendance://warehouse/marts" in str(dag.timetable.asset_condition)


def test_retention_dag_runs_once_a_year(dagbag):
    dag = dagbag.dags["retention"]
    assert dag.task_ids == ["purge_expired_marks", "rebuild_marts"]
    assert dag.get_task("rebuild_marts").upstream_task_ids == {"purge_expired_marks"}
    assert all(task.on_failure_callback for task in dag.tasks)


def test_forkserver_preload_names_modules_that_import():
    # A forkserver skips a preload module that fails to import without a word, and every task
    # would then quietly import it again.
    for module in TASK_PROCESS_SETTINGS["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"].split(","):
        importlib.import_module(module)
