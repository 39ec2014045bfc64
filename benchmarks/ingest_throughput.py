"""Ingest throughput: parse + validate (GX) + load, against a raw COPY of the same rows.

Generates a trust, then, in one run on one PostgreSQL:
  baseline  - COPY every school's marks.csv into a bare table (no parsing, no checks)
  pipeline  - each school's nightly task (nightly.ingest_school): extract (landing copy), validate
              (parse, GX), load (history merge, begun beside GX's checks)
and prints rows/s for both, their ratio (target >= 0.5), seconds per stage and peak RSS.

    PYTHONPATH=plugins .venv/bin/python benchmarks/ingest_throughput.py --schools 20
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from trust_attendance import load, nightly  # noqa: E402
from trust_attendance.config import load_trust_config  # noqa: E402
from trust_attendance.demo import generate_trust  # noqa: E402
from trust_attendance.warehouse import EmbeddedPostgres, free_port  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 7, 17))
    parser.add_argument("--history-years", type=int, default=1)
    parser.add_argument("--url", help="an existing PostgreSQL (default: a temporary embedded one)")
    args = parser.parse_args()

    var = Path(__file__).resolve().parents[1] / "var"
    var.mkdir(exist_ok=True)  # a fresh clone has none yet
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=var))
    work.chmod(0o755)
    os.environ["TRUST_VAR_DIR"] = str(work)
    server = None
    url = args.url
    if not url:
        server = EmbeddedPostgres(root=work / "pg", port=free_port())
        url = server.start()
    try:
        started = time.perf_counter()
        manifest = generate_trust(work / "trust", n_schools=args.schools, seed=1, as_of=args.as_of,
                                  history_years=args.history_years, defects=False, progress=False)
        generate_s = time.perf_counter() - started
        rows = sum(s["marks"] for s in manifest["schools"].values())
        config = load_trust_config(work / "trust" / "trust.yml")
        extract_date = dt.date.fromisoformat(manifest["extract_date"])

        with load.connect(url) as conn:
            conn.execute("create table bench_copy (school_urn text, pupil_id text, session_date date, session text,"
                         " mark text, minutes_late smallint, comment text)")
        started = time.perf_counter()
        with load.connect(url) as conn:
            for school in config.schools:
                with conn.cursor().copy("copy bench_copy from stdin (format csv, header true)") as copy:
                    with open(work / "trust" / manifest["schools"][school.urn]["extract_folder"] / "marks.csv", "rb") as f:
                        while chunk := f.read(1 << 20):
                            copy.write(chunk)
        baseline_s = time.perf_counter() - started

        os.environ.update(TRUST_CONFIG=str(work / "trust" / "trust.yml"), WAREHOUSE_URL=url)
        nightly.prepare_warehouse()
        stages = {}
        started = time.perf_counter()
        for school in config.schools:
            outcome = nightly.ingest_school(school.urn, extract_date)  # what the DAG's task runs
            assert outcome["loaded"], outcome
            for stage, seconds in outcome["seconds"].items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        pipeline_s = time.perf_counter() - started

        print(f"trust: {args.schools} schools, {rows:,} marks (generated in {generate_s:.1f} s)")
        print(f"baseline raw COPY : {baseline_s:8.2f} s  {rows / baseline_s:12,.0f} rows/s")
        print(f"pipeline          : {pipeline_s:8.2f} s  {rows / pipeline_s:12,.0f} rows/s")
        print(f"  of which        : " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
        print(f"throughput ratio (pipeline / raw COPY): {baseline_s / pipeline_s:.3f}   (target >= 0.5)")
        print(f"peak RSS: {peak_rss_mb():.0f} MB")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
