"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per use.

Everything runs against the project's embedded PostgreSQL (the same code path
as `make demo`), started on a free port under a temporary folder, so tests
never touch a developer's own warehouse or `var/`.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from trust_attendance.paths import PROJECT_ROOT
from trust_attendance.warehouse import EmbeddedPostgres, free_port


@pytest.fixture(scope="session", autouse=True)
def isolated_var_dir() -> Path:
    """Point every run-time folder (landing, quarantine, Airflow home, Data Docs) at a fresh folder.

    It lives under the project's git-ignored var/ rather than pytest's private
    temp dirs: as root, PostgreSQL runs as another user, who must be able to reach it.
    """
    var = PROJECT_ROOT / "var" / "tests" / uuid.uuid4().hex[:8]
    var.mkdir(parents=True, mode=0o755)
    os.environ["TRUST_VAR_DIR"] = str(var)
    os.environ.pop("WAREHOUSE_URL", None)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    yield var
    shutil.rmtree(var, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(isolated_var_dir) -> EmbeddedPostgres:
    server = EmbeddedPostgres(root=isolated_var_dir / "warehouse", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server) -> str:
    """A new, empty database on the session's server; dropped afterwards."""
    yield from _fresh_database(postgres_server)


@pytest.fixture(scope="module")
def module_database_url(postgres_server) -> str:
    yield from _fresh_database(postgres_server)


def _fresh_database(server: EmbeddedPostgres):
    name = f"test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives restarts
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = server.url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    sa.create_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()
