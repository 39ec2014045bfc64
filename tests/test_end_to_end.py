"""The spine, end to end: the real nightly DAG (`airflow dags test`) on a tiny
generated trust plus a hand-built school, against a real PostgreSQL."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from fractions import Fraction
from pathlib import Path

import pytest
import sqlalchemy as sa

import handbuilt
from checksums import table_checksums
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
    return table_checksums(conn, ["raw.register_marks", "raw.pupils", "raw.enrolments", "marts.fct_pupil_attendance",
                                  "marts.fct_session_marks", "marts.dim_pupils"])


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


def test_hand_built_school_weekly_group_figures(tiny_trust):
    _, _, engine = tiny_trust
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            """
            select academic_week_number, population, dimension, dimension_value, enrolments,
                   persistent_absence_enrolments, severe_absence_enrolments, week_attendance_rate,
                   year_to_date_attendance_rate
            from marts.rpt_absence_by_group_weekly
            where academic_year = 2026 and scope = 'school' and school_urn = :u
            """), {"u": handbuilt.URN}).mappings().all()
    school = {(r["academic_week_number"], r["population"], r["dimension"], r["dimension_value"]): r for r in rows}
    # Week 3 (Mon 14 September; 1 September 2026 is in week 1, Mon 31 August to Sun 6 September).
    # HB-1 that week: days 6-10, 9 possible (D is not), 6 attended; to date 19 possible, 16 attended,
    # absence 3/19 = 15.8 % -> PA, not SA. HB-2: 10 possible, 8 attended; to date 20, 18, 2/20 = 10 % -> PA.
    # Both are Year 2 (statutory school age) and pupil premium.
    for population in ("whole_school", "statutory_school_age"):
        week_3 = school[(3, population, "pupil_premium", "PP")]
        assert (week_3["enrolments"], week_3["persistent_absence_enrolments"], week_3["severe_absence_enrolments"]) \
            == (2, 2, 0)
        assert Fraction(week_3["week_attendance_rate"]).limit_denominator(1000) == Fraction(6 + 8, 9 + 10)
        assert Fraction(week_3["year_to_date_attendance_rate"]).limit_denominator(1000) == Fraction(16 + 18, 19 + 20)
        # Week 2 (days 1-5): all 20 sessions present; to date nobody is persistently absent yet.
        week_2 = school[(2, population, "all_pupils", "All pupils")]
        assert (week_2["enrolments"], week_2["persistent_absence_enrolments"], week_2["week_attendance_rate"]) \
            == (2, 0, 1)
    assert (3, "whole_school", "pupil_premium", "Non-PP") not in school  # no group without pupils
    assert school[(3, "whole_school", "year_group", "Year 2")]["enrolments"] == 2
    # The trust's counts are its schools' summed: every school reports the all-pupils group.
    with engine.connect() as conn:
        unmatched = conn.execute(sa.text(
            """
            select count(*) from (
                select academic_year, academic_week_number, population, sum(enrolments) as enrolments,
                       sum(persistent_absence_enrolments) as persistent_absence_enrolments
                from marts.rpt_absence_by_group_weekly where scope = 'school' and dimension = 'all_pupils'
                group by academic_year, academic_week_number, population
                except
                select academic_year, academic_week_number, population, enrolments, persistent_absence_enrolments
                from marts.rpt_absence_by_group_weekly where scope = 'trust' and dimension = 'all_pupils'
            ) as differing
            """)).scalar()
    assert unmatched == 0


def test_summary_and_watch_list(tiny_trust):
    trust_dir, _, engine = tiny_trust
    figures = summary(EXTRACT_DATE, str(engine.url.render_as_string(hide_password=False)))
    assert figures["schools_loaded"] == 2 and figures["schools"] == 3
    assert 0.80 < float(figures["attendance_rate"]) < 0.99
    watch_list = trust_dir / "outbox" / EXTRACT_DATE.isoformat() / handbuilt.URN / f"watch_lists_{handbuilt.URN}_{EXTRACT_DATE}.csv"
    rows = {r["pupil_name"]: r for r in csv.DictReader(watch_list.open())}
    assert set(rows) == {"Ada Lovelace", "Alan Turing"}  # both persistently absent
    assert rows["Ada Lovelace"]["days_missed"] == "1.5"  # 3 sessions missed = 1.5 days
    assert "PA" in rows["Alan Turing"]["lists"].split("; ")


def test_running_the_same_night_again_changes_nothing(tiny_trust):
    trust_dir, _, engine = tiny_trust
    with engine.connect() as conn:
        before = _table_checksums(conn)
    _run(trust_dir, str(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        after = _table_checksums(conn)
    assert after == before


def _independent_figures(trust_dir: Path, manifest: dict, urn: str) -> dict:
    """The school's figures recomputed in pandas from the CSV it sent, with the code seed."""
    import pandas as pd

    from trust_attendance.codes import code_table

    marks = pd.read_csv(trust_dir / manifest["schools"][urn]["extract_folder"] / "marks.csv", dtype=str,
                        keep_default_na=False)
    marks["date"] = pd.to_datetime(marks["session_date"]).dt.date
    category = {}
    for code in code_table():
        category[code.code] = code  # all demo dates are after August 2024: one meaning per code
    marks["category"] = marks["mark"].map(lambda m: category[m].category if m in category else None)
    marks["possible"] = marks["mark"].map(lambda m: m in category and category[m].counts_as_possible)
    marks["attended"] = marks["category"].isin(["present", "approved_educational_activity", "attending_elsewhere"])
    marks["absent"] = marks["category"].isin(["authorised_absence", "unauthorised_absence"])
    marks["unauthorised"] = marks["category"] == "unauthorised_absence"
    per_pupil = marks.groupby("pupil_id").agg(possible=("possible", "sum"), attended=("attended", "sum"),
                                              absent=("absent", "sum"))
    # School weeks: weeks (Monday start) with at least one possible session at this school.
    marks["week"] = pd.to_datetime(marks["session_date"]).dt.to_period("W-SUN").dt.start_time.dt.date
    school_weeks = sorted(marks.loc[marks["possible"], "week"].unique())
    last_ten = set(school_weeks[-10:])
    unauthorised_10 = marks[marks["week"].isin(last_ten) & marks["unauthorised"]].groupby("pupil_id").size()
    return {
        "per_pupil": per_pupil,
        "school_attendance": per_pupil["attended"].sum() / per_pupil["possible"].sum(),
        "unauthorised_10_weeks": unauthorised_10,
        "blank_marks": int((marks["mark"] == "").sum()),
        "codes": marks.loc[marks["mark"] != "", "mark"].value_counts().to_dict(),
    }


def test_marts_agree_with_figures_computed_independently_in_python(tiny_trust):
    trust_dir, manifest, engine = tiny_trust
    urn = next(urn for urn, s in manifest["schools"].items() if "invalid_code" not in s)
    expected = _independent_figures(trust_dir, manifest, urn)
    with engine.connect() as conn:
        marts = {r.pupil_id: r for r in conn.execute(sa.text(
            """
            select p.pupil_id, a.possible_sessions, a.attended_sessions, a.absence_sessions,
                   a.is_persistent_absence, a.is_severe_absence, w.unauthorised_sessions_10_school_weeks
            from marts.fct_pupil_attendance a
            join marts.dim_pupils p using (pupil_key)
            join marts.fct_watch_list w using (pupil_key)
            where a.school_urn = :u
            """), {"u": urn})}
        school_rate = conn.execute(sa.text(
            "select sum(attended_sessions)::numeric / sum(possible_sessions) from marts.fct_pupil_attendance "
            "where school_urn = :u"), {"u": urn}).scalar()
        blank = conn.execute(sa.text(
            "select count(*) from marts.fct_missing_marks where school_urn = :u and missing_kind = 'blank mark'"),
            {"u": urn}).scalar()
        codes = dict(conn.execute(sa.text(
            "select attendance_code, marks from marts.rpt_marks_by_code "
            "where scope = 'school' and school_urn = :u and attendance_code <> '(missing)'"), {"u": urn}).all())
    per_pupil = expected["per_pupil"]
    assert set(marts) == set(per_pupil.index)
    for pupil_id, row in per_pupil.iterrows():
        mart = marts[pupil_id]
        assert (mart.possible_sessions, mart.attended_sessions, mart.absence_sessions) == (
            row["possible"], row["attended"], row["absent"]), pupil_id
        assert mart.is_persistent_absence == (row["possible"] > 0 and row["absent"] * 10 >= row["possible"])
        assert mart.is_severe_absence == (row["possible"] > 0 and row["absent"] * 2 >= row["possible"])
        assert mart.unauthorised_sessions_10_school_weeks == expected["unauthorised_10_weeks"].get(pupil_id, 0)
    assert float(school_rate) == pytest.approx(expected["school_attendance"], abs=1e-12)
    assert blank == expected["blank_marks"] == manifest["schools"][urn]["missing_marks"]["count"]
    assert codes == expected["codes"]
