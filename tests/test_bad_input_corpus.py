"""The bad-input corpus (tests/bad_input_corpus/<kind>/): every kind, in one real
nightly DAG run beside a good school. Each bad batch gets a clear error naming
school, file and row or element and the rule; is quarantined with its original
files kept; loads nothing; and the good school loads completely."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import uuid
from urllib.parse import unquote, urlsplit
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

import handbuilt
from fake_mis_api import FakeMisApi, Faults
from trust_attendance.cli import airflow, airflow_env
from trust_attendance.paths import var_dir

CORPUS = Path(__file__).parent / "bad_input_corpus"
KINDS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
EXTRACT_DATE = dt.date(2026, 9, 19)
API_TOKEN = f"corpus-token-{uuid.uuid4().hex}"  # distinctive, so any leak of it is found

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(module_database_url):
    trust = var_dir() / "corpus_trust"
    (trust).mkdir(parents=True, exist_ok=True)
    (trust / "trust.yml").write_text("trust_name: Corpus test\noutputs: {quarantine_dir: quarantine, landing_dir: landing, outbox_dir: outbox}\nschools: []\n")
    handbuilt.write_school(trust, EXTRACT_DATE)
    config = yaml.safe_load((trust / "trust.yml").read_text())
    servers = []
    for kind in KINDS:
        expected = json.loads((CORPUS / kind / "expected.json").read_text())
        urn = expected["urn"]
        school = {"urn": urn, "name": kind.replace("_", " ").capitalize(), "phase": "primary", "la_code": "999",
                  "lead_contacts": [f"lead@{kind}.example.org"]}
        if "source" in expected:
            server = FakeMisApi.from_export(CORPUS / kind, school_id=f"S{urn}", per_page=25,
                                            faults=Faults(**expected["source"]), token=API_TOKEN)
            servers.append(server)
            school["source"] = {"type": "vendor_api", "base_url": server.start(), "school_id": server.school_id,
                                "token_env": "CORPUS_API_TOKEN", "max_attempts": 3, "backoff_seconds": 0.01}
        else:
            shutil.copytree(CORPUS / kind, trust / "drop" / urn / EXTRACT_DATE.isoformat(),
                            ignore=shutil.ignore_patterns("expected.json"))
            school["source"] = {"type": "csv_drop", "path": f"drop/{urn}"}
        config["schools"].append(school)
    (trust / "trust.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = airflow_env({"WAREHOUSE_URL": module_database_url, "TRUST_CONFIG": str(trust / "trust.yml"),
                       "CORPUS_API_TOKEN": API_TOKEN, "TRUST_TASK_RETRIES": "0"})
    airflow(["db", "migrate"], env)
    # Failing extracts fail their tasks: the run as a whole need not succeed.
    run = airflow(["dags", "test", "nightly_attendance", EXTRACT_DATE.isoformat()], env, capture=True)
    for server in servers:
        server.stop()
    (var_dir() / "corpus_run.log").write_text(run.stdout + run.stderr)
    engine = sa.create_engine(module_database_url)
    yield trust, engine
    engine.dispose()


def test_no_secret_in_task_logs_or_output_files(night, module_database_url):
    # The run read a database password (WAREHOUSE_URL) and an API token (env var), failed
    # tasks with tracebacks and wrote Data Docs, quarantine copies, emails and dbt logs.
    password = urlsplit(module_database_url).password
    secrets = {"database password": unquote(password), "API token": API_TOKEN}
    task_logs = (var_dir() / "corpus_run.log").read_text()  # `airflow dags test` writes task logs to its output
    assert len(password) >= 16 and "quarantined for" in task_logs and "Traceback" in task_logs
    warehouse_files = var_dir() / "warehouse"  # the cluster itself, which holds the password's hash
    searched = [path for path in var_dir().rglob("*") if path.is_file() and warehouse_files not in path.parents]
    leaks = [(name, str(path.relative_to(var_dir()))) for path in searched for name, secret in secrets.items()
             if secret.encode() in path.read_bytes()]
    assert not leaks


def test_the_good_school_loads_completely(night):
    _, engine = night
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.register_marks where school_urn = :u"),
                            {"u": handbuilt.URN}).scalar() == 40
        assert conn.execute(sa.text("select count(*) from marts.fct_pupil_attendance where school_urn = :u"),
                            {"u": handbuilt.URN}).scalar() == 2


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_bad_input(night, kind):
    trust, engine = night
    expected = json.loads((CORPUS / kind / "expected.json").read_text())
    urn = expected["urn"]
    with engine.connect() as conn:
        status, reason = conn.execute(sa.text(
            "select status, reason from raw.load_batches where school_urn = :u and extract_date = :d"),
            {"u": urn, "d": EXTRACT_DATE}).one()
        loaded = conn.execute(sa.text("select count(*) from raw.register_marks where school_urn = :u"), {"u": urn}).scalar()
    assert status == expected["outcome"]
    if status == "loaded":
        assert loaded == 40
        return
    assert loaded == 0
    if status == "extract_failed":
        assert f"school {urn}" in reason["error"] and expected["where"] in reason["error"]
        assert expected["rule"] in reason["error"]
        return
    messages = [f["message"] + " " + " ".join(f["values"]) for f in reason["findings"] if f["severity"] == "critical"]
    assert any(m.startswith(f"school {urn}, {expected['file']}") and expected["where"] in m and expected["rule"] in m
               for m in messages), messages
    # The original is kept, byte for byte, beside the reasons.
    quarantined = trust / "quarantine" / urn / EXTRACT_DATE.isoformat()
    assert json.loads((quarantined / "reason.json").read_text())["passed"] is False
    if "source" not in expected:
        for original in (CORPUS / kind).rglob("*"):
            if original.is_file() and original.name != "expected.json":
                kept = quarantined / original.relative_to(CORPUS / kind)
                assert hashlib.sha256(kept.read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()
    else:
        assert (quarantined / "api" / "students" / "page-00001.json").exists()
