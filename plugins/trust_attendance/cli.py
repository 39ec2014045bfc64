"""Command line: ``python -m trust_attendance.cli demo|warehouse``.

``demo`` is what ``make demo`` runs: start the embedded warehouse unless
``WAREHOUSE_URL`` is set, generate the synthetic demo trust, run the nightly
DAG through Airflow (``airflow dags test``: the real task code, in process),
print a summary, and stop the warehouse it started.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from .demo import PRESETS, generate_trust
from .paths import PROJECT_ROOT, var_dir
from .warehouse import EmbeddedPostgres, engine, masked

DAG_ID = "nightly_attendance"


def airflow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Airflow CLI: a project-local home, this project's DAGs and plugins."""
    home = var_dir() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    return {**env, **(extra or {})}


# A deployment's settings for the processes that run tasks, measured by `make bench` (README, Performance):
# - a LocalExecutor's workers start from a forkserver that has already imported GX (about 3.7 s) and
#   this package and made GX ready (trust_attendance.preload), and each task process forks from a
#   worker, so a night's hundred school tasks do not each do it again (a forkserver skips a module
#   that fails to import without a word: test_dag_integrity checks that each one imports);
# - a task's supervisor can miss its process's exit and then sleeps until its next heartbeat, up to
#   min_heartbeat_interval (5 s by default) per task (Airflow 3.3): 1 s bounds that.
TASK_PROCESS_SETTINGS = {
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "trust_attendance.preload",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}


def airflow_command(args: list[str]) -> list[str]:
    """Airflow's CLI from the project's venv, with ``args``."""
    return [str(Path(sys.executable).with_name("airflow")), *args]


def airflow(args: list[str], env: dict[str, str], capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(airflow_command(args), env=env, capture_output=capture, text=capture)


def run_dag(dag_id: str, logical_date: dt.date, env: dict[str, str], conf: dict | None = None) -> None:
    """Run a DAG for real, in process, with ``airflow dags test``."""
    if not (Path(env["AIRFLOW_HOME"]) / "airflow.db").exists():
        if airflow(["db", "migrate"], env).returncode != 0:
            raise SystemExit("airflow db migrate failed")
    args = ["dags", "test", dag_id, logical_date.isoformat()] + (["-c", json.dumps(conf)] if conf else [])
    result = airflow(args, env)
    if result.returncode != 0:
        raise SystemExit(f"airflow dags test {dag_id} failed (exit {result.returncode})")


def run_nightly_dag(extract_date: dt.date, env: dict[str, str]) -> None:
    run_dag(DAG_ID, extract_date, env)


SUMMARY_SQL = """
with current_year as (select max(academic_year) as academic_year from marts.fct_pupil_attendance)
select
    (select count(*) from marts.dim_schools where last_load_status = 'loaded' and last_extract_date = :d) as schools_loaded,
    (select count(*) from marts.dim_schools) as schools,
    (select string_agg(school_urn || ' ' || coalesce(last_load_status, 'no data'), ', ')
       from marts.dim_schools where coalesce(last_load_status, '') <> 'loaded' or last_extract_date <> :d) as not_loaded,
    (select coalesce(sum(marks_in_extract), 0) from raw.load_batches where extract_date = :d and status = 'loaded')
        as marks_loaded,
    sum(attended_sessions)::numeric / nullif(sum(possible_sessions), 0) as attendance_rate,
    avg(case when is_persistent_absence then 1.0 else 0.0 end) as persistent_absence_rate,
    avg(case when is_severe_absence then 1.0 else 0.0 end) as severe_absence_rate,
    count(*) as enrolments,
    max(as_of_date) as as_of_date,
    max(academic_year) as academic_year
from marts.fct_pupil_attendance
where academic_year = (select academic_year from current_year) and is_statutory_school_age
"""


def summary(extract_date: dt.date, url: str | None = None) -> dict:
    with engine(url).connect() as conn:
        return dict(conn.execute(sa.text(SUMMARY_SQL), {"d": extract_date}).mappings().one())


def print_summary(extract_date: dt.date, outbox: Path, url: str | None = None) -> dict:
    figures = summary(extract_date, url)
    pct = lambda x: f"{float(x) * 100:.1f} %" if x is not None else "n/a"  # noqa: E731
    year = figures["academic_year"]
    print(f"""
Nightly run for {extract_date} (registers to {figures['as_of_date']}, academic year {year}/{(year + 1) % 100:02d})
  schools loaded : {figures['schools_loaded']} of {figures['schools']}{f"  (not loaded: {figures['not_loaded']})" if figures['not_loaded'] else ''}
  marks loaded   : {figures['marks_loaded']:,}
  Years 1-11, year to date ({figures['enrolments']:,} enrolments):
    attendance   : {pct(figures['attendance_rate'])}
    persistent absence (PA) : {pct(figures['persistent_absence_rate'])}
    severe absence (SA)     : {pct(figures['severe_absence_rate'])}
  outputs        : {outbox}
  quarantine     : {var_dir() / 'demo' / 'quarantine'}
  GX Data Docs   : {var_dir() / 'data_docs' / extract_date.isoformat()}
""")
    return figures


def demo(args: argparse.Namespace) -> None:
    started = time.monotonic()
    embedded = None
    url = os.environ.get("WAREHOUSE_URL")
    if not url:
        embedded = EmbeddedPostgres()
        was_running = embedded.is_running()
        url = embedded.start()
        print(f"Embedded PostgreSQL at {masked(url)} (data in {embedded.root})")
    else:
        print(f"Using WAREHOUSE_URL {masked(url)}")
    try:
        out = var_dir() / "demo"
        as_of = args.as_of or dt.date.today() - dt.timedelta(days=1)
        manifest = generate_trust(out, n_schools=args.schools or PRESETS[args.preset], seed=args.seed, as_of=as_of)
        extract_date = dt.date.fromisoformat(manifest["extract_date"])
        env = airflow_env({
            "WAREHOUSE_URL": url, "TRUST_CONFIG": str(out / "trust.yml"),
            # A demo that hits an error should show it within seconds, not after the nightly 5-minute backoff.
            "TRUST_TASK_RETRIES": os.environ.get("TRUST_TASK_RETRIES", "1"),
            "TRUST_RETRY_DELAY_SECONDS": os.environ.get("TRUST_RETRY_DELAY_SECONDS", "5"),
        })
        run_nightly_dag(extract_date, env)
        period_end = extract_date - dt.timedelta(days=1)
        run_dag("governor_packs", extract_date, env, {"period_end": period_end.isoformat()})
        print_summary(extract_date, out / "outbox", url)
        outbox = out / "outbox"
        print(f"  watch lists    : {outbox / extract_date.isoformat()}/<urn>/watch_lists_<urn>_{extract_date}.xlsx (+ .csv)")
        print(f"  trust summary  : {outbox / extract_date.isoformat()}/trust_watch_list_summary_{extract_date}.xlsx")
        print(f"  emails         : {outbox / extract_date.isoformat()}/<urn>/exception_email_<urn>_{extract_date}.eml"
              " (no SMTP_HOST set: written, not sent)")
        print(f"  governor packs : {outbox / 'governor_packs' / period_end.isoformat()}/governor_pack_<urn|trust>_{period_end}.pdf (+ .html)")
        print(f"make demo took {time.monotonic() - started:.0f} s")
    finally:
        if embedded is not None and not was_running and not args.keep_running:
            embedded.stop()


def warehouse_command(args: argparse.Namespace) -> None:
    embedded = EmbeddedPostgres()
    if args.action == "start":
        print(masked(embedded.start()))
        print(f"password: {embedded.secret_file}")
    elif args.action == "stop":
        embedded.stop()
    else:
        print("running" if embedded.is_running() else "stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="trust_attendance")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="generate the demo trust and run the nightly DAG on it")
    demo_parser.add_argument("--preset", choices=PRESETS, default="default")
    demo_parser.add_argument("--schools", type=int)
    demo_parser.add_argument("--seed", type=int, default=2026)
    demo_parser.add_argument("--as-of", type=dt.date.fromisoformat)
    demo_parser.add_argument("--keep-running", action="store_true", help="leave the embedded PostgreSQL running")
    demo_parser.set_defaults(func=demo)
    wh = sub.add_parser("warehouse", help="start, stop or check the embedded PostgreSQL")
    wh.add_argument("action", choices=["start", "stop", "status"])
    wh.set_defaults(func=warehouse_command)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
