"""Secrets the pipeline reads from the environment are registered with Airflow's
log masker, so a deployed task's log shows *** wherever one would appear.

(`airflow dags test` prints task logs without Airflow's masking, so the DAG-run
check in test_bad_input_corpus.py proves the pipeline itself never writes a
secret; this proves the second line of defence.)"""
from __future__ import annotations

import uuid

import airflow.sdk  # noqa: F401 - as inside a task: the masker is only used under Airflow
from airflow.sdk._shared.secrets_masker import redact

from trust_attendance import publish, vendor_api, warehouse
from trust_attendance.config import School


def test_database_password_api_token_and_smtp_password_are_masked(monkeypatch):
    password, token, smtp_password = (f"{kind}-{uuid.uuid4().hex}" for kind in ("db", "token", "smtp"))
    monkeypatch.setenv("WAREHOUSE_URL", f"postgresql://loader:{password}@db.example.org:5432/warehouse")
    monkeypatch.setenv("MIS_TOKEN", token)
    monkeypatch.setenv("SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("SMTP_PASSWORD", smtp_password)
    line = f"connecting with {password}, Bearer {token}, smtp login {smtp_password}"
    assert redact(line) == line  # nothing is masked before the pipeline reads them

    warehouse.warehouse_url()
    vendor_api._token(School("900001", "A school", "primary", "999", {"type": "vendor_api", "token_env": "MIS_TOKEN"}))
    publish.smtp_settings()

    masked = redact(line)
    assert password not in masked and token not in masked and smtp_password not in masked
    assert masked.startswith("connecting with ***")
