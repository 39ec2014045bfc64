"""Least privilege: each role connects and can read exactly what it should."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

import handbuilt
from trust_attendance import nightly
from trust_attendance.demo import generate_trust
from trust_attendance.paths import var_dir
from trust_attendance.warehouse import grant_school_reader, run_dbt

AS_OF = dt.date(2026, 10, 9)
RUN_DATE = AS_OF + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def warehouse(module_database_url, postgres_server):
    trust_dir = var_dir() / "access_trust"
    generate_trust(trust_dir, n_schools=1, seed=4, as_of=AS_OF, history_years=1, progress=False)
    handbuilt.write_school(trust_dir, RUN_DATE)
    mp = pytest.MonkeyPatch()
    mp.setenv("TRUST_CONFIG", str(trust_dir / "trust.yml"))
    mp.setenv("WAREHOUSE_URL", module_database_url)
    for urn in nightly.prepare_warehouse():
        nightly.ingest_school(urn, RUN_DATE)
    run_dbt(["build", "--resource-type", "seed", "--resource-type", "model"], url=module_database_url)
    admin = sa.create_engine(module_database_url, isolation_level="AUTOCOMMIT")
    suffix = uuid.uuid4().hex[:6]
    users = {}
    with admin.connect() as conn:
        for name, group in (("bi", "trust_bi_reader"), ("school", None), ("loader", "trust_loader"),
                            ("names", "trust_identified_reader")):
            user, password = f"test_{name}_{suffix}", uuid.uuid4().hex
            conn.execute(sa.text(f"create role {user} login password '{password}'"))
            if group:
                conn.execute(sa.text(f"grant {group} to {user}"))
            users[name] = module_database_url.replace(
                module_database_url.split("@")[0], f"postgresql://{user}:{password}")
    grant_school_reader(users["school"].split("//")[1].split(":")[0], [handbuilt.URN], url=module_database_url)
    yield users, admin
    with admin.connect() as conn:
        for url in users.values():
            user = url.split("//")[1].split(":")[0]
            conn.execute(sa.text(f"reassign owned by {user} to current_user; drop owned by {user}; drop role {user}"))
    mp.undo()


def _can(url: str, sql: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql)).all()
        return True
    except sa.exc.ProgrammingError as exc:
        assert "permission denied" in str(exc)
        return False
    finally:
        engine.dispose()


def _rows(url: str, sql: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def test_bi_reader_reads_marts_only_and_no_names(warehouse):
    users, _ = warehouse
    bi = users["bi"]
    schools = {r[0] for r in _rows(bi, "select distinct school_urn from marts.fct_pupil_attendance")}
    assert len(schools) == 2  # every school
    assert _can(bi, "select * from marts.rpt_absence_by_group_weekly limit 1")
    assert not _can(bi, "select * from marts.dim_pupils limit 1")  # pseudonymous by default
    for table in ("raw.register_marks", "raw.pupils", "staging.stg_mis__pupils", "intermediate.int_pupils__current"):
        assert not _can(bi, f"select * from {table} limit 1"), table


def test_school_reader_sees_only_its_own_school(warehouse):
    users, admin = warehouse
    school = users["school"]
    for table in ("fct_pupil_attendance", "fct_session_marks", "fct_watch_list", "dim_pupils"):
        seen = {r[0] for r in _rows(school, f"select distinct school_urn from marts.{table}")}
        assert seen == {handbuilt.URN}, table
    names = {r[0] for r in _rows(school, "select legal_surname from marts.dim_pupils")}
    assert names == {"Lovelace", "Turing"}
    with admin.connect() as conn:  # the rows are there: the policy, not the data, hides them
        assert conn.execute(sa.text("select count(distinct school_urn) from marts.dim_pupils")).scalar() == 2
    assert not _can(school, "select * from security.school_readers")
    assert not _can(school, "select * from marts.rpt_pupil_premium_gap limit 1")
    assert not _can(school, "select * from raw.register_marks limit 1")


def test_loader_writes_raw_but_reads_no_marts(warehouse):
    users, _ = warehouse
    loader = users["loader"]
    engine = sa.create_engine(loader)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into raw.schools values ('123456', 'Loader test', 'primary', '880')"))
        conn.execute(sa.text("delete from raw.schools where school_urn = '123456'"))
    engine.dispose()
    assert not _can(loader, "select * from marts.fct_pupil_attendance limit 1")


def test_identified_reader_sees_names_for_every_school(warehouse):
    users, _ = warehouse
    assert len(_rows(users["names"], "select distinct school_urn from marts.dim_pupils")) == 2
