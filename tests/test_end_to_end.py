"""The spine, end to end: the real nightly DAG (`airflow dags test`) on a tiny
generated trust plus a hand-built school, against a real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from fractions import Fraction
from pathlib import Path

import pytest
import sqlalchemy as sa

import handbuilt
from trust_attendance.cli import airflow_env, run_nightly_dag, summary
from trust_attendance.demo import generate_trust
from trust_attendance.paths import var_dir

AS_OF = dt.date(2026, 11, 20)
EXTRACT_DATE = AS_OF + dt.timedelta(days=1)

pytestmark = pytest.mark.slow


def _run(trust_dir: Path, url: str) -> None:
    env = airflow_env({"WAREHOUSE_URL": url, "TRUST_CONFIG": str(trust_dir / "trust.yml")})
    run_nightly_dag(EXTRACT_DATE, env)


def _table_checksums(conn) -> dict[str, str]:
    """An order-independent fingerprint of every table the pipeline writes."""
    tables = ["raw.register_marks", "raw.pupils", "raw.enrolments", "marts.fct_pupil_attendance",
              "marts.fct_session_marks", "marts.dim_pupils"]
    sums = {}
    for table in tables:
        columns = "seen_at" if table == "raw.register_marks" else None
        select = f"select * from {table}" if not columns else (
            "select school_urn, pupil_id, session_date, session, mark, minutes_late, comment, extract_date "
            "from raw.register_marks")
        sums[table] = conn.execute(sa.text(
            f"select md5(string_agg(t::text, '|' order by t::text)) from ({select}) as t")).scalar()
    return sums


@pytest.fixture(scope="module")
def tiny_trust(module_database_url):
    trust_dir = var_dir() / "tiny_trust"
    manifest = generate_trust(trust_dir, n_schools=2, seed=7, as_of=AS_OF, history_years=1, progress=False)
    handbuilt.write_school(trust_dir, EXTRACT_DATE)
    _run(trust_dir, module_database_url)
    engine = sa.create_engine(module_database_url)
    yield trust_dir, manifest, engine
    engine.dispose()


def test_every_generated_mark_of_a_passing_school_is_loaded(tiny_trust):
    trust_dir, manifest, engine = tiny_trust
    passing_urn = next(urn for urn, s in manifest["schools"].items() if "invalid_code" not in s)
    with engine.connect() as conn:
        marks = conn.execute(sa.text("select count(*) from raw.register_marks where school_urn = :u"),
                             {"u": passing_urn}).scalar()
        pupils = conn.execute(sa.text("select count(*) from raw.pupils where school_urn = :u"),
                              {"u": passing_urn}).scalar()
        status = conn.execute(sa.text("select status from raw.load_batches where school_urn = :u"),
                              {"u": passing_urn}).scalar()
    assert marks == manifest["schools"][passing_urn]["marks"]
    assert pupils == manifest["schools"][passing_urn]["pupils"]
    assert status == "loaded"


def test_a_school_with_an_invalid_code_is_quarantined_and_the_others_load(tiny_trust):
    trust_dir, manifest, engine = tiny_trust
    bad_urn, bad = next((urn, s) for urn, s in manifest["schools"].items() if "invalid_code" in s)
    with engine.connect() as conn:
        loaded_rows = conn.execute(sa.text("select count(*) from raw.register_marks where school_urn = :u"),
                                   {"u": bad_urn}).scalar()
        status, reason = conn.execute(sa.text("select status, reason from raw.load_batches where school_urn = :u"),
                                      {"u": bad_urn}).one()
        loaded_schools = conn.execute(sa.text(
            "select count(*) from raw.load_batches where status = 'loaded'")).scalar()
    assert loaded_rows == 0
    assert status == "quarantined"
    assert loaded_schools == 2  # the other generated school and the hand-built one
    messages = " ".join(f["message"] for f in reason["findings"])
    assert f"school {bad_urn}, marks.csv, line {bad['invalid_code']['line']}" in messages
    assert "'H'" in messages
    # The original file is kept, byte for byte, beside the reasons.
    quarantined = trust_dir / "quarantine" / bad_urn / EXTRACT_DATE.isoformat()
    original = trust_dir / bad["extract_folder"] / "marks.csv"
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(quarantined / "marks.csv") == digest(original)
    assert json.loads((quarantined / "reason.json").read_text())["passed"] is False


def test_hand_built_pupils_match_hand_computed_figures(tiny_trust):
    _, _, engine = tiny_trust
    with engine.connect() as conn:
        rows = {r.pupil_id: r for r in conn.execute(sa.text(
            """
            select p.pupil_id, a.possible_sessions, a.attended_sessions, a.absence_sessions,
                   a.authorised_absence_sessions, a.unauthorised_absence_sessions, a.late_sessions,
                   a.attendance_rate, a.absence_rate, a.is_persistent_absence, a.is_severe_absence, a.attendance_band
            from marts.fct_pupil_attendance a join marts.dim_pupils p using (pupil_key)
            where a.school_urn = :u
            """), {"u": handbuilt.URN})}
    ada, alan = rows["HB-1"], rows["HB-2"]
    # HB-1: possible 20 - 1 (D) = 19; attended 12 + 2 (L day) + 2 (V) = 16; absent 2 (I) + 1 (O) = 3.
    assert (ada.possible_sessions, ada.attended_sessions, ada.absence_sessions) == (19, 16, 3)
    assert (ada.authorised_absence_sessions, ada.unauthorised_absence_sessions, ada.late_sessions) == (2, 1, 1)
    assert Fraction(ada.attendance_rate).limit_denominator(1000) == Fraction(16, 19)  # 84.21 %
    assert Fraction(ada.absence_rate).limit_denominator(1000) == Fraction(3, 19)  # 15.79 %
    assert round(float(ada.attendance_rate) * 100, 1) == 84.2
    assert ada.is_persistent_absence and not ada.is_severe_absence
    assert ada.attendance_band == "50-90"
    # HB-2: 2 absent of 20 possible = exactly 10 % -> persistent absence; attendance 18/20 = 90 %.
    assert (alan.possible_sessions, alan.absence_sessions) == (20, 2)
    assert alan.is_persistent_absence and not alan.is_severe_absence
    assert alan.attendance_band == "90-92"


def test_summary_and_watch_list(tiny_trust):
    trust_dir, _, engine = tiny_trust
    figures = summary(EXTRACT_DATE, str(engine.url.render_as_string(hide_password=False)))
    assert figures["schools_loaded"] == 2 and figures["schools"] == 3
    assert 0.80 < float(figures["attendance_rate"]) < 0.99
    watch_list = trust_dir / "outbox" / EXTRACT_DATE.isoformat() / handbuilt.URN / f"watch_list_{handbuilt.URN}_{EXTRACT_DATE}.csv"
    text = watch_list.read_text()
    assert "Ada Lovelace" in text and "Alan Turing" in text
    assert "1.5" in text.splitlines()[1]  # HB-1 missed 3 sessions = 1.5 days


def test_running_the_same_night_again_changes_nothing(tiny_trust):
    trust_dir, _, engine = tiny_trust
    with engine.connect() as conn:
        before = _table_checksums(conn)
    _run(trust_dir, str(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        after = _table_checksums(conn)
    assert after == before
