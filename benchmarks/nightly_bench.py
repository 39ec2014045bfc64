"""Trust-scale benchmark: prints the five figures of `make bench`.

1. ingest throughput (parse + validate + load) as a ratio to a raw COPY of the same rows;
2. full rebuild of the warehouse from raw (dbt build --full-refresh);
3. one incremental night through the real DAG (a new day for every school plus 1 % of the
   last ten school days amended), end to end; the same night re-run, in process and by a real
   scheduler (LocalExecutor) with Airflow's defaults and with TASK_PROCESS_SETTINGS; with
   --nights N, N - 1 more nights after it (the last shows a night in the steady state);
4. peak memory (RSS) of each stage, and of the scheduler's processes (PSS) in its re-runs;
5. where the time goes (Airflow, GX, dbt start-up, SQL, and how long dbt ran one node at a time).

    make bench                       # 20 schools, two academic years
    make bench BENCH_ARGS="--preset large"   # 100 schools, about 80,000 pupils on roll (long)
    make bench BENCH_ARGS="--preset large --nights 12"   # and eleven more nights (about 25 min more)
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from trust_attendance import load  # noqa: E402
from trust_attendance.cli import DAG_ID, TASK_PROCESS_SETTINGS, airflow, airflow_command, airflow_env  # noqa: E402
from trust_attendance.config import load_trust_config  # noqa: E402
from trust_attendance.demo import PRESET_PUPILS_ON_ROLL, PRESETS, generate_trust  # noqa: E402
from trust_attendance.school_calendar import academic_year_start, school_days  # noqa: E402
from trust_attendance.warehouse import EmbeddedPostgres, free_port, run_dbt  # noqa: E402

WINDOW_SCHOOL_DAYS = 10  # a nightly export re-sends the last two school weeks, so amendments arrive


def timed_child(cmd: list[str], env: dict) -> tuple[float, float, str, int]:
    """Run a command; return (seconds, its peak RSS in MB, stdout, the sectors it and its children read
    from disk). Reads that the operating system's cache answered are not counted."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/env", "python3", "-c",
                             "import resource, subprocess, sys;"
                             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
                             "sys.stdout.write(r.stdout[-20000:]); sys.stderr.write(r.stderr[-20000:]);"
                             "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
                             "print('\\nRUSAGE', u.ru_maxrss, u.ru_inblock);"
                             "sys.exit(r.returncode)", *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak, read = next(((int(line.split()[1]) / 1024, int(line.split()[2]))
                       for line in result.stdout.splitlines() if line.startswith("RUSAGE")), (0, 0))
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, peak, result.stdout + result.stderr, read


def next_night(trust: Path, manifest: dict, seed: int = 7) -> dt.date:
    """Write each school's next export: the last ten school days again (1 % of them amended) and a new day.
    The manifest moves on to it, so the next call writes the night after."""
    rng = random.Random(seed)
    as_of = dt.date.fromisoformat(manifest["as_of"])
    days = [d for d in school_days(academic_year_start(as_of)) if d > as_of]
    new_day = days[0]
    extract_date = new_day + dt.timedelta(days=1)
    amend = {"/": "L", "\\": "L", "N": "I", "O": "I", "I": "M", "L": "/"}
    for urn, school in manifest["schools"].items():
        old = trust / school["extract_folder"]
        new = old.parent / extract_date.isoformat()
        new.mkdir(parents=True, exist_ok=True)
        for name in ("pupils.csv", "enrolments.csv"):
            shutil.copyfile(old / name, new / name)
        with open(old / "marks.csv", newline="") as f:
            rows = list(csv.reader(f))
        header, rows = rows[0], rows[1:]
        recent_days = sorted({r[2] for r in rows})[-WINDOW_SCHOOL_DAYS:]
        window = [r for r in rows if r[2] >= recent_days[0]]
        last_day = [r for r in rows if r[2] == recent_days[-1]]
        for r in window:
            if rng.random() < 0.01 and r[4] in amend:
                r[4] = amend[r[4]]
                r[5] = "5" if r[4] == "L" else ""
        fresh = [[r[0], r[1], new_day.isoformat(), r[3], "/" if r[3] == "AM" else "\\", "", ""] for r in last_day]
        with open(new / "marks.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(window + fresh)
        school["extract_folder"] = str(new.relative_to(trust))
    manifest["as_of"], manifest["extract_date"] = new_day.isoformat(), extract_date.isoformat()
    return extract_date


def dbt_run_results(var: Path) -> dict:
    """The latest dbt invocation's run_results.json under a trust's var folder."""
    return json.loads((var / "dbt" / "target" / "run_results.json").read_text())


def slowest_models(results: dict, n: int = 6) -> str:
    models = sorted((r for r in results["results"] if r["unique_id"].startswith("model.")),
                    key=lambda r: -r["execution_time"])[:n]
    return ", ".join(f"{r['unique_id'].rsplit('.', 1)[-1]} {r['execution_time']:.1f}" for r in models)


def dbt_breakdown(results: dict) -> tuple[float, float]:
    """(total elapsed, seconds spent in SQL) from dbt's run_results.json."""
    return results["elapsed_time"], sum(r["execution_time"] for r in results["results"])


def node_spans(results: dict) -> dict[str, tuple[float, float]]:
    """Each node's (start, end) as Unix times, from run_results.json's timings."""
    spans = {}
    for result in results["results"]:
        moments = [dt.datetime.fromisoformat(t[key].replace("Z", "+00:00")).timestamp()
                   for t in result["timing"] for key in ("started_at", "completed_at")]
        if moments:
            spans[result["unique_id"]] = (min(moments), max(moments))
    return spans


def node_name(unique_id: str) -> str:
    return unique_id.split(".")[2]


def dbt_running_alone(results: dict, n: int = 4) -> str:
    """When dbt ran one node at a time, from run_results.json: the seconds in which exactly one node
    (model, seed or test) was running, and the nodes that ran alone longest. With two cores and four
    threads, nothing else could use the other core then."""
    spans = node_spans(results)
    edges = sorted({moment for span in spans.values() for moment in span})
    alone: dict[str, float] = {}
    for start, end in zip(edges, edges[1:]):
        running = [node_name(uid) for uid, (s, e) in spans.items() if s <= start and e >= end]
        if len(running) == 1:
            alone[running[0]] = alone.get(running[0], 0) + end - start
    longest = [(name, s) for name, s in sorted(alone.items(), key=lambda item: -item[1])[:n] if s >= 0.05]
    return (f"{sum(alone.values()):.1f} s with one node running (" + ", ".join(f"{name} {s:.1f}" for name, s in longest)
            + ")")


def dbt_critical_path(var: Path, results: dict) -> str:
    """The chain of nodes that set the length of dbt's run, walked back from the node that ended last:
    before each, the latest to end of what it waited for, which under `dbt build` is its parents and
    their data tests (a model's children wait for its tests). A node off this chain could be faster
    without the run ending sooner; one on it shortens the run by its own seconds at most."""
    nodes = json.loads((var / "dbt" / "target" / "manifest.json").read_text())["nodes"]
    spans = {uid: span for uid, span in node_spans(results).items() if uid in nodes}
    tests_of: dict[str, list[str]] = {}
    for uid in spans:
        if uid.startswith("test."):
            for parent in nodes[uid]["depends_on"]["nodes"]:
                tests_of.setdefault(parent, []).append(uid)
    chain, node = [], max(spans, key=lambda uid: spans[uid][1])
    while node:
        chain.append(node)
        parents = [parent for parent in nodes[node]["depends_on"]["nodes"] if parent in spans]
        # A test waits for the models it tests, not for their other tests.
        waited_for = parents + ([] if node.startswith("test.") else [
            test for parent in parents for test in tests_of.get(parent, [])
            if node not in nodes[test]["depends_on"]["nodes"]])
        # dbt's timings are rounded, so a node may seem to start a moment before what it waited for ended;
        # a node already walked is not taken again, so that this slack cannot lead round in a circle.
        ended = [uid for uid in waited_for if spans[uid][1] <= spans[node][0] + 0.05 and uid not in chain]
        node = max(ended, key=lambda uid: spans[uid][1], default=None)
    chain.reverse()
    seconds = {uid: spans[uid][1] - spans[uid][0] for uid in chain}
    models = [uid for uid in chain if uid.startswith("model.")]
    tests = sum(seconds[uid] for uid in chain if uid.startswith("test."))
    waits = spans[chain[-1]][1] - spans[chain[0]][0] - sum(seconds.values())
    return (f"{len(models)} models {sum(seconds[uid] for uid in models):.1f} s, {len(chain) - len(models)} other "
            f"nodes (data tests {tests:.1f} s) and dbt's waits between them {waits:.1f} s: "
            + " > ".join(f"{node_name(uid)} {seconds[uid]:.1f}" for uid in models))


def dbt_report(var: Path, results: dict, its: str = "") -> str:
    """The lines a dbt run gets under a stage: its slowest models, when it ran one node at a time,
    and its critical path; ``its`` begins each line ("its " under the last of several nights)."""
    return (f"   {its}slowest models (s): {slowest_models(results)}\n"
            f"   {its}dbt ran {dbt_running_alone(results)}\n"
            f"   {its}dbt's critical path: {dbt_critical_path(var, results)}")


LATEST_RUN = f"(select run_id from dag_run where dag_id = '{DAG_ID}' order by id desc limit 1)"


class Sampler:
    """Calls ``sample`` every ``interval`` seconds in a thread of its own, from its making until ``stop``."""

    interval = 1.0

    def __init__(self):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


class CoreSamples(Sampler):
    """The machine's CPU ticks (cpu_ticks) sampled five times a second while a night runs, so that the
    cores busy while each of its tasks ran can be read off: a task that keeps one core of two busy is
    a chain of steps, which only running more of them side by side would shorten."""

    interval = 0.2

    def __init__(self):
        self.samples = [self._now()]
        super().__init__()

    @staticmethod
    def _now() -> tuple[float, int, int]:
        busy, _, _, total = cpu_ticks()
        return time.time(), busy, total

    def sample(self) -> None:
        self.samples.append(self._now())

    def stop(self) -> None:
        super().stop()
        self.samples.append(self._now())

    def cores_busy(self, spans: list[tuple[float, float]]) -> float:
        """The cores busy on average over these (start, end) spans (Unix times), the counts read
        between samples by linear interpolation."""
        moments, busy, total = (np.array(column, dtype=float) for column in zip(*self.samples))
        starts, ends = (np.array(column, dtype=float) for column in zip(*spans))
        busy_ticks = (np.interp(ends, moments, busy) - np.interp(starts, moments, busy)).sum()
        all_ticks = (np.interp(ends, moments, total) - np.interp(starts, moments, total)).sum()
        return busy_ticks / all_ticks * (os.cpu_count() or 1) if all_ticks else 0.0


@dataclasses.dataclass
class TaskSplit:
    """A night's seconds by task (its mapped instances summed) and by stage of the school tasks
    (summed from their XComs), and the machine's cores busy on average while each task's instances ran."""

    seconds: dict[str, float]
    stages: dict[str, float]
    cores: dict[str, float]

    def __str__(self) -> str:
        return (", ".join(f"{task} {seconds} ({self.cores[task]:.2f} cores busy)"
                          for task, seconds in sorted(self.seconds.items()))
                + " (ingest_school: " + ", ".join(f"{stage} {seconds}" for stage, seconds in self.stages.items()) + ")")


def airflow_breakdown(home: Path, cores: CoreSamples) -> TaskSplit:
    """The latest run's task split, from the Airflow metadata DB and the CPU samples taken while it ran."""
    conn = sqlite3.connect(home / "airflow.db")
    spans: dict[str, list[tuple[float, float]]] = {}
    for task, start, end in conn.execute(  # as Unix times: the DB keeps UTC
            "select task_id, (julianday(start_date) - 2440587.5) * 86400, (julianday(end_date) - 2440587.5) * 86400 "
            f"from task_instance where run_id = {LATEST_RUN} and start_date is not null and end_date is not null"):
        spans.setdefault(task, []).append((start, end))
    stages: dict[str, float] = {}
    for (value,) in conn.execute("select value from xcom where task_id = 'ingest_school' and key = 'return_value' "
                                 f"and run_id = {LATEST_RUN}"):
        for stage, seconds in json.loads(value)["seconds"].items():
            stages[stage] = stages.get(stage, 0) + seconds
    return TaskSplit({task: round(sum(end - start for start, end in task_spans), 1) for task, task_spans in spans.items()},
                     {stage: round(seconds, 1) for stage, seconds in stages.items()},
                     {task: cores.cores_busy(task_spans) for task, task_spans in spans.items()})


INGEST_CODE = """
import datetime as dt, json, sys
from concurrent.futures import ProcessPoolExecutor
from trust_attendance import nightly

def school(urn, d):
    return nightly.ingest_school(urn, d)['seconds']  # what the DAG's task runs, with each stage's seconds

if __name__ == '__main__':
    d, workers = dt.date.fromisoformat(sys.argv[1]), int(sys.argv[2])
    urns = nightly.prepare_warehouse()
    if workers == 1:
        results = [school(urn, d) for urn in urns]
    else:  # as Airflow runs the mapped per-school tasks side by side
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(school, urns, [d] * len(urns)))
    print('STAGES', json.dumps({k: sum(r[k] for r in results) for k in results[0]}))
"""


class Trust:
    """One generated trust with its own folder, database and Airflow home, taken through the stages."""

    def __init__(self, work: Path, url: str, n_schools: int, as_of: dt.date, history_years: int,
                 pupils_on_roll: int | None = None):
        self.work, self.url, self.checkpoints = work, url, Checkpoints(url)
        work.mkdir(parents=True, exist_ok=True)
        work.chmod(0o755)
        os.environ["TRUST_VAR_DIR"] = str(work)  # read by airflow_env() and by every child process
        t = time.perf_counter()
        self.manifest = generate_trust(work / "trust", n_schools=n_schools, seed=1, as_of=as_of,
                                       history_years=history_years, defects=False, progress=False,
                                       pupils_on_roll=pupils_on_roll)
        self.generate_s = time.perf_counter() - t
        self.marks = sum(s["marks"] for s in self.manifest["schools"].values())
        self.pupils = sum(s["pupils"] for s in self.manifest["schools"].values())
        self.pupils_on_roll = sum(s["pupils_on_roll"] for s in self.manifest["schools"].values())
        self.env = {**os.environ, "WAREHOUSE_URL": url, "TRUST_CONFIG": str(work / "trust" / "trust.yml"),
                    "PYTHONPATH": str(ROOT / "plugins")}

    def raw_copy(self, keyed: bool = False) -> float:
        """Seconds to COPY every school's marks.csv into a bare table: the baseline. ``keyed``: into a
        table with raw.register_marks' key and index instead, the floor for any load that ends there."""
        table = "bench_copy_keyed" if keyed else "bench_copy"
        with load.connect(self.url) as conn:
            if keyed:
                load.ensure_raw_schema(self.url)
                conn.execute(f"create table {table} (like raw.register_marks including all)")
                conn.execute(f"alter table {table} alter column extract_date set default current_date")
            else:
                conn.execute(f"create table {table} (school_urn text, pupil_id text, session_date date, session text,"
                             " mark text, minutes_late smallint, comment text)")
        self.checkpoints.settle()
        t = time.perf_counter()
        with load.connect(self.url) as conn:
            for school in self.manifest["schools"].values():
                with conn.cursor().copy(f"copy {table} (school_urn, pupil_id, session_date, session, mark, "
                                        "minutes_late, comment) from stdin (format csv, header true)") as copy:
                    with open(self.work / "trust" / school["extract_folder"] / "marks.csv", "rb") as f:
                        while chunk := f.read(1 << 20):
                            copy.write(chunk)
        seconds = time.perf_counter() - t
        with load.connect(self.url) as conn:
            conn.execute(f"drop table {table}")
        return seconds

    def ingest(self, workers: int = 1, url: str | None = None) -> tuple[float, float, dict]:
        """Parse + validate + load of every school, as the DAG's tasks do it, in ``workers`` processes."""
        env = self.env | ({"WAREHOUSE_URL": url} if url else {})
        self.checkpoints.settle(url)
        seconds, rss, out, self.checkpoints.own_read = timed_child(
            [sys.executable, "-c", INGEST_CODE, self.manifest["extract_date"], str(workers)], env)
        stages = json.loads(next(line for line in out.splitlines() if line.startswith("STAGES"))[7:])
        return seconds, rss, stages

    def rebuild(self) -> tuple[float, float]:
        from trust_attendance.warehouse import dbt_env

        dbt_cmd = [str(Path(sys.executable).with_name("dbt")), "build", "--full-refresh", "--project-dir",
                   str(ROOT / "dbt_project"), "--profiles-dir", str(ROOT / "dbt_project"),
                   "--target-path", str(self.work / "dbt" / "target"), "--log-path", str(self.work / "dbt" / "logs")]
        self.checkpoints.settle()
        seconds, rss, _, self.checkpoints.own_read = timed_child(dbt_cmd, {**self.env, **dbt_env(self.url)})
        return seconds, rss

    def night(self, extract_date: dt.date | None = None) -> tuple[dt.date, float, float, TaskSplit]:
        """The next night's exports, run end to end through the real DAG; with ``extract_date``,
        that night again (a re-run, as when a data team clears a night's run in Airflow)."""
        os.environ["TRUST_VAR_DIR"] = str(self.work)
        extract_date = extract_date or next_night(self.work / "trust", self.manifest)
        # Only the pipeline's settings: airflow_env sets AIRFLOW_HOME and its database together.
        aenv = airflow_env({key: self.env[key] for key in ("WAREHOUSE_URL", "TRUST_CONFIG")}
                           | {"TRUST_TASK_RETRIES": "0"})
        airflow(["db", "migrate"], aenv, capture=True).check_returncode()
        self.checkpoints.settle()
        cores = CoreSamples()
        try:
            seconds, rss, _, self.checkpoints.own_read = timed_child(
                airflow_command(["dags", "test", DAG_ID, extract_date.isoformat()]), aenv)
        finally:
            cores.stop()
        return extract_date, seconds, rss, airflow_breakdown(Path(aenv["AIRFLOW_HOME"]), cores)

    def rerun_under_scheduler(self, extract_date: dt.date, workers: int,
                              tuned: bool) -> tuple[float, float, TaskSplit]:
        """The night cleared and re-run as a deployment runs it: a scheduler whose LocalExecutor runs
        ``workers`` tasks at a time, each a process of its own, reporting to an API server. ``tuned``:
        with TASK_PROCESS_SETTINGS, else Airflow's defaults. Returns the seconds from the clear to the
        run's end (the scheduler and API server already up), the peak memory of the two servers' process
        trees (PSS, MB) and the task split."""
        port = free_port()
        aenv = airflow_env({key: self.env[key] for key in ("WAREHOUSE_URL", "TRUST_CONFIG")} | {
            "TRUST_TASK_RETRIES": "0",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(workers),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),  # shared by the two processes, kept nowhere
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the cleared night runs
        } | (TASK_PROCESS_SETTINGS if tuned else {}))
        for args in (["dags", "reserialize"], ["dags", "unpause", DAG_ID]):
            airflow(args, aenv, capture=True).check_returncode()
        logs = self.work / "scheduler_logs" / ("tuned" if tuned else "defaults")
        logs.mkdir(parents=True, exist_ok=True)
        home = Path(aenv["AIRFLOW_HOME"])
        log_files = [(logs / f"{name}.log").open("w") for name in ("api-server", "scheduler")]
        # Each in a session of its own, so that its workers can be stopped with it.
        servers = [subprocess.Popen(airflow_command(args), env=aenv, stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
                   for args, log_file in zip((["api-server", "--port", str(port)], ["scheduler"]), log_files)]
        peak, cores = PeakMemory({server.pid for server in servers}), CoreSamples()
        try:
            wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health").status == 200)
            wait_for(lambda: airflow(["jobs", "check", "--job-type", "SchedulerJob"], aenv, capture=True).returncode == 0)
            self.checkpoints.settle()
            started = time.perf_counter()
            day = extract_date.isoformat()
            airflow(["tasks", "clear", DAG_ID, "-s", day, "-e", day, "-y"], aenv, capture=True).check_returncode()
            wait_for(lambda: latest_run_state(home) in ("success", "failed"), timeout=3600)
            seconds = time.perf_counter() - started
        finally:
            peak.stop()
            cores.stop()
            for server in servers:
                server.terminate()
            for server, log_file in zip(servers, log_files):
                stop(server)
                log_file.close()
        if latest_run_state(home) != "success":
            raise SystemExit(f"the night under the scheduler failed: see {logs}")
        return seconds, peak.mb, airflow_breakdown(home, cores)


class PeakMemory(Sampler):
    """The peak, sampled once a second, of the memory held by processes and all their descendants,
    as PSS (each shared page divided among the processes sharing it), so that forked task processes
    sharing their parent's pages are not counted again in full as their RSS would be."""

    def __init__(self, roots: set[int]):
        self.roots, self.mb = roots, 0.0
        super().__init__()

    def sample(self) -> None:
        self.mb = max(self.mb, self._tree_pss_mb())

    def _tree_pss_mb(self) -> float:
        parents = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    # After the command's closing parenthesis: state, then the parent's pid.
                    parents[int(entry.name)] = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
        tree, grew = set(self.roots), True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= children
            grew = bool(children)
        pss_kb = 0
        for pid in tree:
            with contextlib.suppress(OSError):
                pss_kb += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                               if line.startswith("Pss:"))
        return pss_kb / 1024


def stop(server: subprocess.Popen) -> None:
    """Wait for a signalled Airflow server to exit, then stop its whole session. The scheduler's
    LocalExecutor waits for its workers to finish, and once (a large bench of `462dce6`) an idle
    worker never did: a minute after the signal the scheduler and its workers go too."""
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        print(f"   (an Airflow server, pid {server.pid}, still running a minute after the signal: stopped)")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # what is left of its session: workers, log server
    server.wait()


def wait_for(condition, timeout: float = 120) -> None:
    """Poll ``condition`` each second until it holds (errors count as not yet) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # the server is still starting
            pass
        time.sleep(1)
    raise SystemExit(f"gave up after {timeout:.0f} s waiting for {condition}")


def latest_run_state(home: Path) -> str:
    with sqlite3.connect(home / "airflow.db") as conn:
        return conn.execute(f"select state from dag_run where run_id = {LATEST_RUN}").fetchone()[0]


def tenth_of_history_as_of(as_of: dt.date, days_of_history: int) -> dt.date:
    """The date in as_of's academic year by which a school has a tenth of the main trust's school days."""
    days = school_days(academic_year_start(as_of))
    return days[max(0, min(len(days), days_of_history // 10) - 1)]


class Checkpoints:
    """Settles the server before each timed stage, and counts the checkpoints it then had to force.

    A night comes a day after the last load, when the server has long since written it out. So each
    stage starts after a CHECKPOINT, and its line says how long that took (what the stage before
    left to write) and how many checkpoints the stage's own WAL forced (PostgreSQL's max_wal_size):
    a stage slowed by its predecessor's writes can be told from one slow in itself. (In `3e3567a`'s
    large bench the night's load after the checks took 17.5 s, against 0.8 s in its re-run; in the
    first bench with this, the CHECKPOINT before the night took 0.1 s and that load 2.5 s.)
    The line also says what the stage read from and wrote to the machine's disks: reads are pages
    that neither PostgreSQL's buffers nor the operating system's cache held, so a stage slowed by
    a cold cache can be told from one slow in its own work. Of those reads, it says what the stage's
    own processes (Python, dbt, Airflow, GX: the files they import and open) read; the rest is the
    PostgreSQL server's, which runs outside the stage. It names the tables and indexes from which
    PostgreSQL read the most pages into its buffers (from the OS's cache or the disks; autovacuum's
    reads among them), so a stage's reads can be put to what it reads. And it says how many of the
    machine's cores were busy on average, and how many waited on the disks: a stage that keeps one
    core of two busy is a chain of steps one after another, which more cores would not shorten."""

    RELATION_READS = """
        select relid, schemaname || '.' || relname, heap_blks_read + coalesce(toast_blks_read, 0)
        from pg_statio_all_tables where schemaname not in ('pg_catalog', 'pg_toast', 'information_schema')
        union all
        -- an index named by its table, and dbt's hashed index names cut short
        select indexrelid, schemaname || '.' || relname || ' index '
               || case when indexrelname ~ '^[0-9a-f]{32}$' then left(indexrelname, 8) else indexrelname end,
               idx_blks_read
        from pg_statio_all_indexes where schemaname not in ('pg_catalog', 'pg_toast', 'information_schema')"""

    def __init__(self, url: str):
        self.url, self.requested, self.settle_s, self.disk = url, 0, 0.0, (0, 0)
        self.stage_url = url  # the database the stage works in: PostgreSQL counts reads per database
        self.own_read: int | None = None  # sectors the stage's own processes read from disk, if it ran in a child
        self.relation_reads: dict[int, int] = {}  # pages read into PostgreSQL's buffers by relation (OID)

    @staticmethod
    def _requested(conn) -> int:
        # PostgreSQL 17 moved the count from pg_stat_bgwriter to pg_stat_checkpointer.
        view, column = (("pg_stat_checkpointer", "num_requested") if conn.info.server_version >= 170000
                        else ("pg_stat_bgwriter", "checkpoints_req"))
        return conn.execute(f"select {column} from {view}").fetchone()[0]

    def settle(self, stage_url: str | None = None) -> None:
        """Before a stage; ``stage_url``: the database it works in, where not this one."""
        started = time.perf_counter()
        self.stage_url = stage_url or self.url
        with load.connect(self.url, autocommit=True) as conn:
            conn.execute("checkpoint")
            self.requested = self._requested(conn)
        with load.connect(self.stage_url, autocommit=True) as conn:
            self.relation_reads = {oid: n for oid, _, n in conn.execute(self.RELATION_READS).fetchall()}
        self.settle_s = time.perf_counter() - started
        self.disk, self.cpu, self.own_read = disk_sectors(), cpu_ticks(), None

    def forced(self) -> int:
        """Checkpoints requested since the last settle: the stage's WAL forced them."""
        with load.connect(self.url, autocommit=True) as conn:
            return self._requested(conn) - self.requested

    def note(self) -> str:
        """For the line of the stage timed since the last settle."""
        read, written = (now - before for now, before in zip(disk_sectors(), self.disk))
        own = "" if self.own_read is None else f" ({self.own_read * 512 / 2**20:,.0f} MB by its own processes)"
        return (f"(begun after a CHECKPOINT of {self.settle_s:.1f} s; its WAL forced {self.forced()} more; "
                f"{self.cores_busy()}; disks read {read * 512 / 2**20:,.0f} MB{own}, "
                f"written {written * 512 / 2**20:,.0f} MB; {self.relations_read()})")

    def cores_busy(self) -> str:
        """The machine's cores busy on average since the last settle (every process, the server's too),
        and those idle waiting on the disks; and, on a virtual machine whose host took a hundredth of a
        core or more, that."""
        *ticks, total = (now - before for now, before in zip(cpu_ticks(), self.cpu))
        cores = os.cpu_count() or 1
        busy, waiting, stolen = (n / total * cores if total else 0.0 for n in ticks)
        return (f"cores busy {busy:.2f} of {cores}, waiting on the disks {waiting:.2f}"
                + (f", taken by the host {stolen:.2f}" if stolen >= 0.005 else ""))

    def relations_read(self) -> str:
        """What PostgreSQL read into its buffers since the last settle (in 8 kB pages, its default), and from
        which relations most."""
        with load.connect(self.stage_url, autocommit=True) as conn:
            now = conn.execute(self.RELATION_READS).fetchall()
        # By OID: a relation made since the settle (a full refresh makes every model again) counts from zero.
        blocks = [(name, n - self.relation_reads.get(oid, 0)) for oid, name, n in now]
        most = sorted((item for item in blocks if item[1] >= 128), key=lambda item: -item[1])[:3]  # >= 1 MB
        return (f"PostgreSQL read {sum(n for _, n in blocks) * 8 / 1024:,.0f} MB into its buffers"
                + (", most from " + ", ".join(f"{name} {n * 8 / 1024:,.0f}" for name, n in most) + " MB" if most else ""))


def disk_sectors() -> tuple[int, int]:
    """Sectors read and written so far by the machine's disks (Linux; loop and RAM devices left out,
    as what they carry is counted on the disk beneath or is memory)."""
    read = written = 0
    for stat in Path("/sys/block").glob("*/stat"):
        if not stat.parent.name.startswith(("loop", "ram", "zram")):
            fields = stat.read_text().split()
            read, written = read + int(fields[2]), written + int(fields[6])
    return read, written


def cpu_ticks() -> tuple[int, int, int, int]:
    """The machine's CPU time so far in clock ticks, summed over its cores (Linux's /proc/stat): busy
    (user, nice, system, interrupts), idle waiting on the disks (iowait), taken by a virtual machine's
    host (steal), and in all."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(ticks) for ticks in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    busy = user + nice + system + irq + softirq
    return busy, iowait, steal, busy + idle + iowait + steal


def new_database(server_url: str, name: str) -> str:
    with load.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server_url: str, name: str) -> float:
    """Drop a database; return the GB it held."""
    with load.connect(server_url, autocommit=True) as conn:
        size = conn.execute("select pg_database_size(%s)", (name,)).fetchone()[0]
        conn.execute(f'drop database "{name}"')
    return size / 2**30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=PRESETS, default="medium")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 20),
                        help="the last school day of history; the night is the next (a later one in the year "
                             "shows what the year's length costs; one in the future skips the scheduler runs)")
    parser.add_argument("--nights", type=int, default=1,
                        help="nights through the DAG, each the school day after the last; from the "
                             f"{WINDOW_SCHOOL_DAYS + 1}th on, a night's re-sent window lies wholly in marks earlier "
                             "nights appended, as a trust's does two weeks after its history came in")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark folder")
    args = parser.parse_args()
    n_schools = PRESETS[args.preset]

    (ROOT / "var").mkdir(exist_ok=True)  # a fresh clone has none yet
    root = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root=root / "pg", port=free_port())
    server_url = server.start()
    try:
        pupils_on_roll = PRESET_PUPILS_ON_ROLL.get(args.preset)
        trust = Trust(root / "full", server_url, n_schools, args.as_of, history_years=2, pupils_on_roll=pupils_on_roll)
        days_of_history = len({d for d in school_days(academic_year_start(args.as_of) - 1)}) + len(
            [d for d in school_days(academic_year_start(args.as_of)) if d <= args.as_of])
        print(f"trust: {n_schools} schools, {trust.pupils_on_roll:,} pupils on roll ({trust.pupils:,} with last year's "
              f"leavers), {trust.marks:,} marks over two academic years "
              f"({days_of_history} school days; generated in {trust.generate_s:.0f} s)")

        # 1. Ingest throughput vs raw COPY (same rows, same server, same run).
        copy_s = trust.raw_copy()
        copy_note = trust.checkpoints.note()
        ingest_s, ingest_rss, stages = trust.ingest()
        rows = trust.marks
        print(f"\n1. ingest: raw COPY {copy_s:.1f} s ({rows / copy_s:,.0f} rows/s) {copy_note}; parse + validate + load "
              f"{ingest_s:.1f} s ({rows / ingest_s:,.0f} rows/s) {trust.checkpoints.note()} -> ratio "
              f"{copy_s / ingest_s:.3f} (target >= 0.5)")
        keyed_s = trust.raw_copy(keyed=True)
        print(f"   floor: COPY into a table with raw.register_marks' primary key and index, nothing else, "
              f"{keyed_s:.1f} s ({rows / keyed_s:,.0f} rows/s) {trust.checkpoints.note()} -> ratio "
              f"{copy_s / keyed_s:.3f}; the pipeline reaches {keyed_s / ingest_s:.2f} of it")
        print("   stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
              + f" (Python/GX start-up is the rest: {ingest_s - sum(stages.values()):.1f} s)")
        workers = os.cpu_count() or 2
        parallel_url = new_database(server_url, "parallel_ingest")
        parallel_s, parallel_rss, _ = trust.ingest(workers, parallel_url)
        parallel_note = trust.checkpoints.note()
        # A second copy of the raw marks that no deployment has: left in place, it would take the
        # operating system's cache from the warehouse's later stages.
        parallel_gb = drop_database(server_url, "parallel_ingest")
        print(f"   the same with {workers} schools at a time (Airflow's mapped tasks side by side): {parallel_s:.1f} s "
              f"({rows / parallel_s:,.0f} rows/s) -> ratio {copy_s / parallel_s:.3f}; peak RSS per process "
              f"{parallel_rss:.0f} MB {parallel_note}; its database ({parallel_gb:.1f} GB) then dropped")

        # 2. Full rebuild from raw.
        rebuild_s, rebuild_rss = trust.rebuild()
        dbt_results = dbt_run_results(trust.work)
        elapsed, sql = dbt_breakdown(dbt_results)
        print(f"\n2. full rebuild (dbt build --full-refresh): {rebuild_s:.1f} s (target <= 600 s); "
              f"dbt's own run {elapsed:.1f} s (SQL summed over its threads {sql:.1f} s), "
              f"dbt start-up/parse {rebuild_s - elapsed:.1f} s {trust.checkpoints.note()}")
        print(dbt_report(trust.work, dbt_results))

        # 3. One incremental night through the real DAG, and the same night on a tenth of the history.
        extract_date, night_s, night_rss, split = trust.night()
        dbt_results = dbt_run_results(trust.work)
        elapsed, sql = dbt_breakdown(dbt_results)
        print(f"\n3. incremental night ({extract_date}: a new day per school + 1 % of ten days amended), "
              f"airflow dags test end to end: {night_s:.1f} s (target <= 120 s) {trust.checkpoints.note()}")
        print(f"   task seconds: {split}")
        print(f"   in dbt: {elapsed:.1f} s (SQL summed over its threads: {sql:.1f} s); Airflow start-up and scheduling "
              f"{night_s - sum(split.seconds.values()):.1f} s")
        print(dbt_report(trust.work, dbt_results))
        _, rerun_s, _, rerun = trust.night(extract_date)
        print(f"   the same night re-run (every school's batch replaced, nothing new): {rerun_s:.1f} s "
              f"(dbt_build {rerun.seconds.get('dbt_build')} s against {split.seconds.get('dbt_build')} s) "
              f"{trust.checkpoints.note()}")
        print(f"   its task seconds: {rerun}")
        # Airflow 3's scheduler leaves a run dated in the future waiting (`airflow dags test` runs it).
        scheduler_modes = (False, True) if extract_date <= dt.date.today() else ()
        if not scheduler_modes:
            print(f"   not re-run by a scheduler: it runs no night dated in the future ({extract_date})")
        for tuned in scheduler_modes:
            scheduler_s, scheduler_mb, scheduler_split = trust.rerun_under_scheduler(
                extract_date, workers, tuned)
            print(f"   the same night re-run by a scheduler, LocalExecutor, {workers} tasks at a time, "
                  f"{'TASK_PROCESS_SETTINGS' if tuned else 'Airflow defaults'}: {scheduler_s:.1f} s "
                  f"from the clear to the run's end; the scheduler, API server and their workers and tasks "
                  f"held at most {scheduler_mb:.0f} MB (PSS) {trust.checkpoints.note()}")
            print(f"   its task seconds: {scheduler_split}")
        small_as_of = tenth_of_history_as_of(args.as_of, days_of_history)
        small = Trust(root / "tenth", new_database(server_url, "tenth"), n_schools, small_as_of, history_years=1,
                      pupils_on_roll=pupils_on_roll)
        small.ingest()
        small.rebuild()
        small_date, small_night_s, _, small_split = small.night()
        print(f"   the same night on a tenth of the history (same schools, registers from September to {small_as_of}, "
              f"{small.marks:,} marks = {small.marks / rows:.2f} of the history): {small_night_s:.1f} s "
              f"(dbt_build {small_split.seconds.get('dbt_build')} s) -> full history / tenth = {night_s / small_night_s:.2f} "
              f"(target <= 2) {small.checkpoints.note()}")
        if args.nights > 1:
            # The first night comes straight after the rebuild, which wrote the marks in pupil order: its reads
            # of recent marks find them spread through every page. Later nights append theirs in date order.
            later = [trust.night() for _ in range(args.nights - 1)]
            last_date, last_s, _, last_split = later[-1]
            dbt_results = dbt_run_results(trust.work)
            print(f"   {len(later)} more nights, each the next school day, through the DAG: "
                  + ", ".join(f"{seconds:.1f}" for _, seconds, *_ in later) + " s (their dbt_build "
                  + ", ".join(f"{night_split.seconds.get('dbt_build')}" for *_, night_split in later) + " s)")
            print(f"   the last of them ({last_date}, night {args.nights}): {last_s:.1f} s (target <= 120 s) "
                  f"{trust.checkpoints.note()}")
            print(f"   its task seconds: {last_split}")
            print(dbt_report(trust.work, dbt_results, "its "))
            night_rss = max(night_rss, *(rss for _, _, rss, *_ in later))

        print(f"\n4. peak RSS: ingest process {ingest_rss:.0f} MB, dbt rebuild {rebuild_rss:.0f} MB, "
              f"nightly DAG run {night_rss:.0f} MB (target <= 1024 MB each)")
        print("\n5. where the time goes: see the stage, task and SQL splits above.")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
