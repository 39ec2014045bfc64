"""Faults survived: a load killed mid-COPY, PostgreSQL crashing mid-load and dbt
killed mid-build leave nothing half-done; the re-run leaves the warehouse identical
to an undisturbed run (table checksums), with no mark lost or doubled.
(SMTP down then back is in test_publish.py.)"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from checksums import table_checksums
from trust_attendance.demo import generate_trust
from trust_attendance.paths import DBT_PROJECT_DIR, PROJECT_ROOT, var_dir
from trust_attendance.warehouse import dbt_env, run_dbt

AS_OF = dt.date(2026, 11, 20)
RUN_DATE = AS_OF + dt.timedelta(days=1)
CHECKSUM_TABLES = ["raw.register_marks", "raw.pupils", "raw.enrolments", "marts.fct_session_marks",
                   "intermediate.int_pupil_weeks", "marts.fct_pupil_attendance_periods",
                   "marts.fct_pupil_attendance", "marts.fct_watch_list", "marts.rpt_absence_by_group_weekly"]
LOAD = ("import datetime as dt\nfrom trust_attendance import nightly\n"
        "urns = nightly.prepare_warehouse()\n"
        "for urn in urns:\n"
        f"    nightly.ingest_school(urn, dt.date({RUN_DATE.year}, {RUN_DATE.month}, {RUN_DATE.day}))\n")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trust():
    trust_dir = var_dir() / "faults_trust"
    generate_trust(trust_dir, n_schools=2, seed=3, as_of=AS_OF, history_years=2, defects=False, progress=False)
    return trust_dir


def _env(trust, url):
    return {**os.environ, "TRUST_CONFIG": str(trust / "trust.yml"), "WAREHOUSE_URL": url,
            "PYTHONPATH": str(PROJECT_ROOT / "plugins")}


def _checksums(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sums = table_checksums(conn, CHECKSUM_TABLES)
    engine.dispose()
    return sums


def _wait_for_query(url: str, fragment: str, timeout: float = 60, process=None) -> None:
    # Autocommit: pg_stat_activity is a snapshot held for the rest of a transaction.
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            active = conn.execute(sa.text(
                "select count(*) from pg_stat_activity where state = 'active' and query ilike :q and pid <> pg_backend_pid()"),
                {"q": f"%{fragment}%"}).scalar()
            if active:
                engine.dispose()
                return
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the process ended (exit {process.returncode}) before {fragment!r} ran")
            time.sleep(0.01)
    raise AssertionError(f"never saw a query like {fragment!r}")


def _undisturbed(trust, url):
    subprocess.run([sys.executable, "-c", LOAD], env=_env(trust, url), check=True, capture_output=True)
    run_dbt(["build", "--resource-type", "seed", "--resource-type", "model"], url=url)
    return _checksums(url)


@pytest.fixture(scope="module")
def reference(trust, module_database_url):
    return _undisturbed(trust, module_database_url)


def test_a_load_killed_mid_copy_leaves_nothing_and_the_rerun_matches(trust, database_url, reference, monkeypatch):
    monkeypatch.setenv("TRUST_CONFIG", str(trust / "trust.yml"))
    loader = subprocess.Popen([sys.executable, "-c", LOAD], env=_env(trust, database_url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_query(database_url, "insert into raw.register_marks", process=loader)
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    time.sleep(0.5)  # the server notices the dead client and rolls its transaction back
    with sa.create_engine(database_url).connect() as conn:
        loaded = conn.execute(sa.text("select count(*) from raw.load_batches where status = 'loaded'")).scalar()
        marks = conn.execute(sa.text("select count(*) from raw.register_marks")).scalar()
        # Whatever loaded before the kill is complete; the school being loaded left nothing behind.
        complete = conn.execute(sa.text("select coalesce(sum(marks_in_extract), 0) from raw.load_batches "
                                        "where status = 'loaded'")).scalar()
    assert marks == complete and loaded < 2
    assert _undisturbed(trust, database_url) == reference


def test_postgres_crashing_mid_load_loses_nothing_and_the_rerun_matches(trust, database_url, reference, postgres_server):
    loader = subprocess.Popen([sys.executable, "-c", LOAD], env=_env(trust, database_url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_query(database_url, "insert into raw.register_marks", process=loader)
    # -l: the restarted server must not inherit (and hold open) this call's output pipes.
    postgres_server._pg("pg_ctl", "restart", "-D", str(postgres_server.data_dir), "-m", "immediate", "-w",
                        "-l", str(postgres_server.log_file),
                        "-o", f"-c listen_addresses=127.0.0.1 -c port={postgres_server.port} "
                              f"-c unix_socket_directories={postgres_server.socket_dir}")
    assert loader.wait(timeout=60) != 0  # the load failed loudly
    postgres_server._wait_ready(30)
    with sa.create_engine(database_url).connect() as conn:
        complete = conn.execute(sa.text("select coalesce(sum(marks_in_extract), 0) from raw.load_batches "
                                        "where status = 'loaded'")).scalar()
        assert conn.execute(sa.text("select count(*) from raw.register_marks")).scalar() == complete
    assert _undisturbed(trust, database_url) == reference


def test_dbt_killed_mid_build_then_rerun_matches(trust, database_url, reference):
    subprocess.run([sys.executable, "-c", LOAD], env=_env(trust, database_url), check=True, capture_output=True)
    dbt = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dbt"), "build", "--resource-type", "seed", "--resource-type",
         "model", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(var_dir() / "dbt-killed" / "target"), "--log-path", str(var_dir() / "dbt-killed" / "logs")],
        env={**os.environ, **dbt_env(database_url)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_query(database_url, "fct_session_marks")
    dbt.send_signal(signal.SIGKILL)
    dbt.wait()
    run_dbt(["build", "--resource-type", "seed", "--resource-type", "model"], url=database_url)
    assert _checksums(database_url) == reference
