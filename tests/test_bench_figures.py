"""The bench's own arithmetic (benchmarks/nightly_bench.py, which `make test` does not run), on small
made-up dbt and CPU records: the figures it prints for where a night's time goes must be right too."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("nightly_bench", ROOT / "benchmarks" / "nightly_bench.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["nightly_bench"] = bench  # its dataclass looks its module up there
spec.loader.exec_module(bench)

T0 = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone.utc)


def _moment(seconds: float) -> str:
    """A time ``seconds`` after T0, as dbt's run_results.json writes it."""
    return (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _result(unique_id: str, start: float, end: float) -> dict:
    return {"unique_id": unique_id, "timing": [{"name": "execute", "started_at": _moment(start),
                                                "completed_at": _moment(end)}]}


def test_dbt_critical_path_walks_back_through_what_each_node_waited_for(tmp_path):
    # model a, then its two tests in the same moment (2.00-2.03 s), then model b (a's child) and
    # b's test; model c runs beside them all and waits for nothing.
    depends = {"model.p.a": [], "model.p.b": ["model.p.a"], "model.p.c": [],
               "test.p.a_1": ["model.p.a"], "test.p.a_2": ["model.p.a"], "test.p.b_1": ["model.p.b"]}
    spans = {"model.p.a": (0.0, 2.0), "test.p.a_1": (2.0, 2.03), "test.p.a_2": (2.0, 2.03),
             "model.p.c": (0.0, 3.0), "model.p.b": (2.03, 5.0), "test.p.b_1": (5.0, 5.2)}
    target = tmp_path / "dbt" / "target"
    target.mkdir(parents=True)
    (target / "manifest.json").write_text(json.dumps(
        {"nodes": {uid: {"depends_on": {"nodes": parents}} for uid, parents in depends.items()}}))
    results = {"results": [_result(uid, *span) for uid, span in spans.items()]}

    # Each test waited for model a only: with each waiting for the other too, and both ending within
    # dbt's rounding of the other's start, the walk once went back and forth between them for ever.
    printed = []
    walk = threading.Thread(target=lambda: printed.append(bench.dbt_critical_path(tmp_path, results)), daemon=True)
    walk.start()
    walk.join(10)
    assert not walk.is_alive(), "the walk did not end"

    # From b_1 (ended last, 5.2 s) back: b, then one of a's tests (b waited for them), then a.
    # Models: a 2.0 s + b (2.03 to 5.0) 2.97 s = 4.97 s; tests: 0.03 + 0.2 = 0.23 s;
    # waits: the chain's 5.2 s less its nodes' 2.0 + 0.03 + 2.97 + 0.2 = 5.2 s, so 0.0 s. c is off it.
    assert printed == ["2 models 5.0 s, 2 other nodes (data tests 0.2 s) and dbt's waits between them 0.0 s: "
                       "a 2.0 > b 3.0"]


def test_cores_busy_reads_the_cpu_samples_over_a_tasks_spans(monkeypatch):
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    samples = bench.CoreSamples.__new__(bench.CoreSamples)  # the samples alone, no sampling thread
    # (Unix time, busy ticks, all ticks) summed over two cores: half busy for 10 s, then a quarter.
    samples.samples = [(0.0, 0, 0), (10.0, 100, 200), (20.0, 150, 400)]
    # 100 of 200 ticks busy = half of the two cores = 1.00 core
    assert samples.cores_busy([(0.0, 10.0)]) == 1.0
    # 50 of 200 = 0.50 core
    assert samples.cores_busy([(10.0, 20.0)]) == 0.5
    # 5 s to 15 s, read between samples: busy 125 - 50 = 75 of 300 - 100 = 200 ticks -> 0.75 core
    assert samples.cores_busy([(5.0, 15.0)]) == 0.75
    # two instances of a task: (100 + 50) of (200 + 200) ticks -> 0.75 core
    assert samples.cores_busy([(0.0, 10.0), (10.0, 20.0)]) == 0.75
