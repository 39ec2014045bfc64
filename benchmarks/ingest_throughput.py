"""Ingest throughput: parse + validate (GX) + load, against a raw COPY of the same rows.

Generates a trust, then, in one run on one PostgreSQL:
  baseline  - COPY every school's marks.csv into a bare table (no parsing, no checks)
  pipeline  - the nightly steps per school: extract (landing copy), validate (parse, GX), load (COPY + history merge)
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

from trust_attendance import load  # noqa: E402
from trust_attendance.config import load_trust_config  # noqa: E402
from trust_attendance.demo import generate_trust  # noqa: E402
from trust_attendance.sources import extract  # noqa: E402
from trust_attendance.validate import validate_batch  # noqa: E402
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

        load.ensure_raw_schema(url)
        stages = {"extract": 0.0, "validate": 0.0, "load": 0.0}
        validate_batch  # GX import cost is paid once, on the first school, as in a worker
        started = time.perf_counter()
        for school in config.schools:
            t = time.perf_counter()
            batch = extract(school, extract_date, config.landing_dir)
            stages["extract"] += time.perf_counter() - t
            t = time.perf_counter()
            report, frames = validate_batch(batch, url)
            assert report.passed, [f.message() for f in report.critical()]
            load.write_validated(batch, frames)
            del frames
            stages["validate"] += time.perf_counter() - t
            t = time.perf_counter()
            load.load_batch(url, batch, report)
            stages["load"] += time.perf_counter() - t
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
