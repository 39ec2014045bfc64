"""Register amendments: every version is kept, the marts use the latest, re-runs
replace, and two nights in order give the same marts as the later night alone."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

import handbuilt
from trust_attendance import nightly
from trust_attendance.cli import airflow_env, run_dag
from trust_attendance.paths import DBT_PROJECT_DIR, var_dir
from trust_attendance.warehouse import dbt_env, run_dbt

NIGHT_1 = dt.date(2026, 9, 19)   # registers to Friday 18 September
NIGHT_2 = dt.date(2026, 9, 22)   # registers to Monday 21 September
NIGHT_3 = dt.date(2026, 9, 23)   # registers to Tuesday 22 September


def _write_nights(trust: Path) -> None:
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "trust.yml").write_text("trust_name: Amendments test\nschools: []\n")
    handbuilt.write_school(trust, NIGHT_1)
    handbuilt.write_school(trust, NIGHT_2)
    marks = trust / "drop" / handbuilt.URN / NIGHT_2.isoformat() / "marks.csv"
    lines = marks.read_text().splitlines()
    # HB-1's O on Friday 18 September AM is resolved to I (illness) by the next night.
    [i] = [n for n, line in enumerate(lines) if line.startswith(f"{handbuilt.URN},HB-1,2026-09-18,AM,O")]
    lines[i] = lines[i].replace(",AM,O,", ",AM,I,")
    # Monday 21 September is a new day of marks.
    lines += [f"{handbuilt.URN},{pupil},2026-09-21,{s},{m},," for pupil in handbuilt.MARKS
              for s, m in (("AM", "/"), ("PM", "\\"))]
    marks.write_text("\n".join(lines) + "\n")


def _night(url: str, extract_date: dt.date) -> None:
    nightly.prepare_warehouse()
    assert nightly.ingest_school(handbuilt.URN, extract_date)["loaded"] is not None
    # Only the models and seeds the assertions read: the incremental path of fct_session_marks included.
    run_dbt(["build", "--select", *INCREMENTAL_SELECTION, "--resource-type", "seed", "--resource-type", "model"], url=url)


INCREMENTAL_SELECTION = ["+fct_session_marks", "+fct_register_amendments", "+dim_pupils", "+fct_pupil_attendance_periods",
                         "+int_pupil_weeks", "+int_school_session_codes", "+int_absence_by_group_weekly",
                         "+rpt_pupil_premium_gap", "+fct_pupil_attendance", "+fct_watch_list", "+fct_missing_marks", "+rpt_register_quality",
                         "+rpt_absence_by_group_weekly"]


def _full_refresh(url: str) -> None:
    """Rebuild what _night builds from scratch, to compare with what the nights built incrementally."""
    run_dbt(["build", "--full-refresh", "--select", *INCREMENTAL_SELECTION, "--resource-type", "seed",
             "--resource-type", "model"], url=url)


def _without_weekly_group_marts(models: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """All but the weekly group figures, which keep the form group a week was built with (README)."""
    weekly = ("intermediate.int_absence_by_group_weekly", "marts.rpt_absence_by_group_weekly")
    return {table: rows for table, rows in models.items() if table not in weekly}


def test_unit_tests_on_a_built_warehouse(trust, database_url, monkeypatch):
    # The nightly build leaves the unit tests out (dbt_project/selectors.yml): they run here, after
    # a build, as those that mock an incremental model's existing rows need the model built first.
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    _night(database_url, NIGHT_1)
    result = run_dbt(["test", "--select", "test_type:unit"], url=database_url)
    done = re.search(r"Done\. PASS=(\d+) WARN=\d+ ERROR=(\d+) SKIP=\d+ NO-OP=\d+ TOTAL=(\d+)", result.stdout)
    # everything ran and passed: every unit test in the project and the on-run-start hooks (which dbt counts too)
    unit_tests = [test["name"] for path in (DBT_PROJECT_DIR / "models").glob("*/_*.yml")
                  for test in yaml.safe_load(path.read_text()).get("unit_tests", [])]
    hooks = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["on-run-start"]
    assert len(unit_tests) >= 8 and all(name in result.stdout for name in unit_tests)
    assert done and done[2] == "0" and done[1] == done[3] == str(len(unit_tests) + len(hooks))


def _incremental_models(conn) -> dict[str, list[tuple]]:
    """The incremental models' rows, and those of the marts summed from them, as a night builds
    them on top of earlier nights (all but session_marks_built_at and built_at, which say when the row was computed)."""
    rows = {}
    for table in ("intermediate.int_pupil_weeks", "intermediate.int_pupil_academic_years__sessions",
                  "marts.fct_pupil_attendance_periods",
                  "intermediate.int_school_session_codes", "intermediate.int_absence_by_group_weekly",
                  "marts.rpt_pupil_premium_gap", "marts.fct_register_amendments", "marts.fct_pupil_attendance",
                  "marts.fct_watch_list", "marts.fct_missing_marks", "intermediate.int_register_sessions",
                  "marts.rpt_register_quality", "marts.rpt_absence_by_group_weekly"):
        result = conn.execute(sa.text(f"select * from {table}"))
        keep = [i for i, column in enumerate(result.keys()) if column not in ("session_marks_built_at", "built_at")]
        rows[table] = sorted((tuple(row[i] for i in keep) for row in result), key=repr)
    return rows


def _current_marks(conn) -> list[tuple]:
    return conn.execute(sa.text(
        "select p.pupil_id, m.session_date, m.session_name, m.attendance_code, m.is_absent, m.is_unauthorised_absence "
        "from marts.fct_session_marks m join marts.dim_pupils p using (pupil_key) order by 1, 2, 3")).all()


@pytest.fixture
def trust(monkeypatch):
    trust = var_dir() / "amendments_trust"
    _write_nights(trust)
    monkeypatch.setenv("TRUST_CONFIG", str(trust / "trust.yml"))
    return trust


def test_amendments_are_kept_and_the_latest_wins(trust, database_url, postgres_server, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    _night(database_url, NIGHT_1)
    _night(database_url, NIGHT_2)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text(
            "select mark, extract_date from raw.register_marks where pupil_id = 'HB-1' "
            "and session_date = '2026-09-18' and session = 'AM' order by extract_date")).all()
        assert versions == [("O", NIGHT_1), ("I", NIGHT_2)]
        # Night 2 stored only what changed: 1 amended mark + 4 new marks (2 pupils x 2 sessions).
        added = conn.execute(sa.text(
            "select mark_versions_added from raw.load_batches where extract_date = :d"), {"d": NIGHT_2}).scalar()
        assert added == 5
        amendments = conn.execute(sa.text(
            "select previous_attendance_code, amended_attendance_code, amended_in_extract_date "
            "from marts.fct_register_amendments")).all()
        assert amendments == [("O", "I", NIGHT_2)]
        current = {(r[0], str(r[1]), r[2]): r for r in _current_marks(conn)}
        ada = current[("HB-1", "2026-09-18", "AM")]
        assert ada.attendance_code == "I" and ada.is_absent and not ada.is_unauthorised_absence
        assert ("HB-2", "2026-09-21", "PM") in current
        before_rerun = _current_marks(conn)
    # Re-running night 2 replaces it: nothing doubles.
    _night(database_url, NIGHT_2)
    with engine.connect() as conn:
        assert _current_marks(conn) == before_rerun
        assert conn.execute(sa.text("select count(*) from raw.register_marks")).scalar() == 40 + 5
        incremental = _incremental_models(conn)
    # HB-1's amended Friday and the new Monday are in the periods and running totals night 2 rebuilt.
    weeks = {(r[0], str(r[3])) for r in incremental["intermediate.int_pupil_weeks"]}  # pupil_key, week_start_date
    assert len({pupil for pupil, _ in weeks}) == 2
    assert {week for _, week in weeks} >= {"2026-09-14", "2026-09-21"}
    # The later night alone gives the same current marks as both nights in order.
    admin = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("create database amendments_one_go"))
    one_go = postgres_server.url.rsplit("/", 1)[0] + "/amendments_one_go"
    try:
        monkeypatch.setenv("WAREHOUSE_URL", one_go)
        _night(one_go, NIGHT_2)
        with sa.create_engine(one_go).connect() as conn:
            assert _current_marks(conn) == before_rerun
            # The incremental models, built night by night, equal a build from scratch (all but the
            # amendment log: night 2 alone amends nothing).
            one_go_models = _incremental_models(conn)
            assert one_go_models.pop("marts.fct_register_amendments") == []
            assert one_go_models == {k: v for k, v in incremental.items() if k != "marts.fct_register_amendments"}
    finally:
        sa.create_engine(one_go).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text("drop database amendments_one_go with (force)"))
    # The school withdraws the amendment and night 2 is re-run with its corrected export:
    # the O comes back, in the marks and in the incremental models built on them.
    marks = trust / "drop" / handbuilt.URN / NIGHT_2.isoformat() / "marks.csv"
    marks.write_text(marks.read_text().replace(f"{handbuilt.URN},HB-1,2026-09-18,AM,I,", f"{handbuilt.URN},HB-1,2026-09-18,AM,O,"))
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    _night(database_url, NIGHT_2)
    with engine.connect() as conn:
        current = {(r[0], str(r[1]), r[2]): r for r in _current_marks(conn)}
        assert current[("HB-1", "2026-09-18", "AM")].attendance_code == "O"
        # HB-1's week of 14-18 September is / \, L \, V V, I I, O D: the only unauthorised
        # session is the O again (it was 0 while the amendment to I stood).
        week = conn.execute(sa.text(
            "select w.unauthorised_absence_sessions from intermediate.int_pupil_weeks w join marts.dim_pupils p "
            "using (pupil_key) where p.pupil_id = 'HB-1' and w.week_start_date = '2026-09-14'")).scalar()
        assert week == 1
        # The withdrawn amendment is gone from the log too.
        assert conn.execute(sa.text("select count(*) from marts.fct_register_amendments")).scalar() == 0
        after_withdrawal = _incremental_models(conn)
    # The log is empty now, yet the next build reads no batch again: the last build recorded the
    # newest batch it read (macros/register_rebuilds.sql), so the earliest batch to redo is none.
    # (Its watermark was once the latest amendment logged: here none, so every batch after each
    # school's first was read again, night after night, until one amended.)
    run_dbt(["compile", "--select", "fct_register_amendments"], url=database_url)
    [compiled] = (var_dir() / "dbt" / "target" / "compiled").rglob("fct_register_amendments.sql")
    assert "marks.extract_date >= cast(null as date)" in compiled.read_text()
    # What the nights built, each on the last, equals a full refresh of the same data.
    _full_refresh(database_url)
    with engine.connect() as conn:
        assert _incremental_models(conn) == after_withdrawal


def _session_marks(conn) -> list[tuple]:
    """fct_session_marks as the builds left it (all but built_at, which says when a row was computed)."""
    return conn.execute(sa.text(
        "select pupil_key, session_date, session_name, attendance_code, was_amended, latest_extract_date, loaded_at "
        "from marts.fct_session_marks order by 1, 2, 3")).all()


def test_rerun_of_an_older_night_that_withdraws_a_first_version(trust, database_url, monkeypatch):
    # HB-2's Monday 21 September AM is first seen as / in night 2 and amended to L in night 3.
    # Night 2 is then re-run with an export that has no mark for it yet: its only version left
    # is night 3's L, so it is no longer an amendment. The re-run's extract is older than the
    # mark's current version: only the mark's count of versions changes.
    night_3 = trust / "drop" / handbuilt.URN / NIGHT_3.isoformat()
    night_3.mkdir(parents=True)
    night_2 = trust / "drop" / handbuilt.URN / NIGHT_2.isoformat()
    for name in ("pupils.csv", "enrolments.csv"):
        (night_3 / name).write_text((night_2 / name).read_text())
    monday_am = f"{handbuilt.URN},HB-2,2026-09-21,AM,/,,"
    lines = (night_2 / "marks.csv").read_text().splitlines()
    lines = [line.replace(monday_am, f"{handbuilt.URN},HB-2,2026-09-21,AM,L,5,") for line in lines]
    lines += [f"{handbuilt.URN},{pupil},2026-09-22,{s},{m},," for pupil in handbuilt.MARKS
              for s, m in (("AM", "/"), ("PM", "\\"))]
    (night_3 / "marks.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    for night in (NIGHT_1, NIGHT_2, NIGHT_3):
        _night(database_url, night)
    engine = sa.create_engine(database_url)
    marked = ("select m.attendance_code, m.was_amended, m.latest_extract_date from marts.fct_session_marks m "
              "join marts.dim_pupils p using (pupil_key) where p.pupil_id = 'HB-2' "
              "and m.session_date = '2026-09-21' and m.session_name = 'AM'")
    with engine.connect() as conn:
        assert conn.execute(sa.text(marked)).one() == ("L", True, NIGHT_3)
        assert conn.execute(sa.text(
            "select count(*) from marts.fct_register_amendments where amended_attendance_code = 'L'")).scalar() == 1
    (night_2 / "marks.csv").write_text((night_2 / "marks.csv").read_text().replace(monday_am + "\n", ""))
    _night(database_url, NIGHT_2)
    with engine.connect() as conn:
        assert conn.execute(sa.text(marked)).one() == ("L", False, NIGHT_3)
        # Night 2's own amendment (HB-1's O resolved to I) stays; the / to L is gone.
        assert conn.execute(sa.text(
            "select previous_attendance_code, amended_attendance_code, amended_in_extract_date "
            "from marts.fct_register_amendments")).all() == [("O", "I", NIGHT_2)]
        rerun = _session_marks(conn), _incremental_models(conn)
    # What the nights and the re-run built, each on the last, equals a full refresh of the same data.
    _full_refresh(database_url)
    with engine.connect() as conn:
        assert (_session_marks(conn), _incremental_models(conn)) == rerun


def _missing_marks(conn) -> list[tuple]:
    return [tuple(row) for row in conn.execute(sa.text(
        "select p.pupil_id, cast(m.session_date as text), m.session_name, m.missing_kind, m.form_group "
        "from marts.fct_missing_marks m join marts.dim_pupils p using (pupil_key) order by 1, 2, 3"))]


def _registers_on_15_september_pm(conn) -> list[tuple]:
    return [tuple(row) for row in conn.execute(sa.text(
        "select form_group, pupils_expected, missing_marks from marts.rpt_register_quality "
        "where session_date = '2026-09-15' and session_name = 'PM' order by 1"))]


def _register_builds(conn) -> dict[str, tuple]:
    return {model: (built_at, as_of_date and str(as_of_date)) for model, built_at, as_of_date in conn.execute(sa.text(
        "select model, built_at, as_of_date from intermediate.register_mart_builds"))}


def test_missing_marks_follow_each_night(trust, database_url, monkeypatch):
    night_1, night_2 = (trust / "drop" / handbuilt.URN / night.isoformat() for night in (NIGHT_1, NIGHT_2))
    hb2_pupil = next(line for line in (night_1 / "pupils.csv").read_text().splitlines() if ",HB-2," in line)
    for night in (night_1, night_2):
        marks = (night / "marks.csv").read_text()
        # HB-1 has no mark on Monday 14 September PM; HB-2's Tuesday 15 September PM is blank.
        marks = marks.replace(f"{handbuilt.URN},HB-1,2026-09-14,PM,\\,,\n", "")
        marks = marks.replace(f"{handbuilt.URN},HB-2,2026-09-15,PM,\\,,", f"{handbuilt.URN},HB-2,2026-09-15,PM,,,")
        # HB-3 joins on Monday 14 September; the school records marks for them from Wednesday 16.
        marks += "".join(f"{handbuilt.URN},HB-3,{day},{s},{m},,\n" for day in ("2026-09-16", "2026-09-17", "2026-09-18")
                         for s, m in (("AM", "/"), ("PM", "\\")))
        (night / "marks.csv").write_text(marks)
        with open(night / "pupils.csv", "a") as f:
            f.write(hb2_pupil.replace(",HB-2,", ",HB-3,").replace("X999999260012", "X999999260013") + "\n")
        with open(night / "enrolments.csv", "a") as f:
            f.write(f"{handbuilt.URN},HB-3,2026-09-14,,C\n")
    # Night 1 also has HB-2's Thursday 17 September AM blank; night 2 fills it in.
    marks_1 = night_1 / "marks.csv"
    marks_1.write_text(marks_1.read_text().replace(f"{handbuilt.URN},HB-2,2026-09-17,AM,/,,", f"{handbuilt.URN},HB-2,2026-09-17,AM,,,"))
    # Night 2: HB-1's new Monday PM is blank and HB-3 has Monday's marks; HB-3's admission is
    # corrected to Friday 11 September (a session whose marks did not change), and HB-2
    # moves from form 2A to 2B. HB-1's V on Wednesday 16 September PM is amended to a blank: a
    # session open before and after the night (HB-2's unchanged mark), redone for HB-1 alone.
    marks_2 = night_2 / "marks.csv"
    marks_2.write_text(marks_2.read_text().replace(f"{handbuilt.URN},HB-1,2026-09-21,PM,\\,,", f"{handbuilt.URN},HB-1,2026-09-21,PM,,,")
                       .replace(f"{handbuilt.URN},HB-1,2026-09-16,PM,V,,", f"{handbuilt.URN},HB-1,2026-09-16,PM,,,")
                       + f"{handbuilt.URN},HB-3,2026-09-21,AM,/,,\n{handbuilt.URN},HB-3,2026-09-21,PM,\\,,\n")
    enrolments_2 = night_2 / "enrolments.csv"
    enrolments_2.write_text(enrolments_2.read_text().replace(",HB-3,2026-09-14,", ",HB-3,2026-09-11,"))
    pupils_2 = night_2 / "pupils.csv"
    pupils_2.write_text("\n".join(line.replace(",2,2A,", ",2,2B,") if ",HB-2," in line else line
                                  for line in pupils_2.read_text().splitlines()) + "\n")
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    engine = sa.create_engine(database_url)
    _night(database_url, NIGHT_1)
    with engine.connect() as conn:
        assert _missing_marks(conn) == [
            ("HB-1", "2026-09-14", "PM", "no mark recorded", "2A"),
            ("HB-2", "2026-09-15", "PM", "blank mark", "2A"),
            ("HB-2", "2026-09-17", "AM", "blank mark", "2A"),
            # on roll from Monday 14, marked from Wednesday 16: 2 days x 2 sessions
            ("HB-3", "2026-09-14", "AM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-14", "PM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-15", "AM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-15", "PM", "no mark recorded", "2A"),
        ]
        # Register 2A on 15 September PM: HB-1's mark, HB-2's blank and HB-3 unmarked: 3 expected
        # (2 marks + 1 not recorded), 2 missing (1 blank + 1 not recorded).
        assert _registers_on_15_september_pm(conn) == [("2A", 3, 2)]
        # Each register mart records its build, as at Friday 18: the next night's scope starts there,
        # whether or not the build left rows (a school with complete registers has no missing marks).
        # (The amendment log records one too, with no as-at date: tested with the amendments.)
        builds_1 = _register_builds(conn)
        assert {model: as_of for model, (_, as_of) in builds_1.items()} == {
            "fct_missing_marks": "2026-09-18", "int_register_sessions": "2026-09-18", "fct_register_amendments": None}
    _night(database_url, NIGHT_2)
    with engine.connect() as conn:
        night_2_rows = _missing_marks(conn)
        assert night_2_rows == [
            ("HB-1", "2026-09-14", "PM", "no mark recorded", "2A"),
            ("HB-1", "2026-09-16", "PM", "blank mark", "2A"),  # amended from V
            ("HB-1", "2026-09-21", "PM", "blank mark", "2A"),
            ("HB-2", "2026-09-15", "PM", "blank mark", "2B"),  # moved form; the filled-in 17th is gone
            # on roll from Friday 11 now: 3 days x 2 sessions before Wednesday 16
            ("HB-3", "2026-09-11", "AM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-11", "PM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-14", "AM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-14", "PM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-15", "AM", "no mark recorded", "2A"),
            ("HB-3", "2026-09-15", "PM", "no mark recorded", "2A"),
        ]
        # HB-2 moved to 2B: 2A keeps HB-1's mark and HB-3 unmarked (2 expected, 1 missing);
        # 2B has HB-2's blank (1 expected, 1 missing).
        assert _registers_on_15_september_pm(conn) == [("2A", 2, 1), ("2B", 1, 1)]
        builds_2 = _register_builds(conn)
        assert {model: as_of for model, (_, as_of) in builds_2.items()} == {
            "fct_missing_marks": "2026-09-21", "int_register_sessions": "2026-09-21", "fct_register_amendments": None}
        assert all(builds_2[model][0] > builds_1[model][0] for model in builds_1)
        incremental = _incremental_models(conn)
    # What the two nights built, each on the last, equals a full refresh of the same data.
    _full_refresh(database_url)
    with engine.connect() as conn:
        assert _missing_marks(conn) == night_2_rows
        assert _without_weekly_group_marts(_incremental_models(conn)) == _without_weekly_group_marts(incremental)


def test_retention_purges_marks_older_than_three_academic_years_and_records_it(database_url):
    from trust_attendance import load

    load.ensure_raw_schema(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        for day in ("2022-08-31", "2022-09-01", "2025-10-01"):
            conn.execute(sa.text("insert into raw.register_marks (school_urn, pupil_id, session_date, session, mark, "
                                 "extract_date) values ('900999', 'HB-1', :d, 'AM', '/', '2025-10-02')"), {"d": day})
    # On 1 November 2025 (academic year 2025/26) three years back is 1 September 2022: 2022-08-31 goes.
    purged = load.purge_expired(database_url, dt.date(2025, 11, 1), retention_years=3)
    assert purged == {"raw.register_marks": 1, "raw.transfer_marks": 0}
    with engine.connect() as conn:
        left = [str(d) for d in conn.execute(sa.text("select session_date from raw.register_marks order by 1")).scalars()]
        log = conn.execute(sa.text("select table_name, cutoff_date, rows_purged from raw.purge_log "
                                   "where table_name = 'raw.register_marks'")).one()
    assert left == ["2022-09-01", "2025-10-01"]
    assert (log.cutoff_date, log.rows_purged) == (dt.date(2022, 9, 1), 1)


PUPIL_LEVEL_TABLES = ("marts.fct_session_marks", "intermediate.int_pupil_weeks", "intermediate.int_pupil_academic_years__marked",
                      "intermediate.int_pupil_academic_years__sessions",
                      "marts.fct_pupil_attendance", "marts.fct_pupil_attendance_periods")


def test_retention_takes_purged_marks_out_of_the_marts(trust, database_url, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    monkeypatch.delenv("RETENTION_YEARS", raising=False)  # the DAG's run inherits the environment
    # Besides its September 2026 registers, the first night re-sends a day of the year before (2025/26).
    marks = trust / "drop" / handbuilt.URN / NIGHT_1.isoformat() / "marks.csv"
    marks.write_text(marks.read_text() + "".join(f"{handbuilt.URN},{pupil},2026-06-15,{session},{mark},,\n"
                                                 for pupil in handbuilt.MARKS for session, mark in (("AM", "/"), ("PM", "\\"))))
    _night(database_url, NIGHT_1)
    engine = sa.create_engine(database_url)

    def rows_by_year() -> dict[str, dict[int, int]]:
        with engine.connect() as conn:
            return {table: dict(conn.execute(sa.text(f"select academic_year, count(*) from {table} group by 1")).all())
                    for table in PUPIL_LEVEL_TABLES}

    before = rows_by_year()
    assert all(set(years) == {2025, 2026} for years in before.values()), before
    # The retention DAG, run for 2 September 2029 (academic year 2029/30): three years back is
    # 1 September 2026, so the June 2026 day goes (two sessions for each pupil) and September 2026 stays.
    run_dag("retention", dt.date(2029, 9, 2), airflow_env({"WAREHOUSE_URL": database_url,
                                                           "TRUST_CONFIG": str(trust / "trust.yml")}))
    with engine.connect() as conn:
        purged = conn.execute(sa.text("select rows_purged from raw.purge_log where table_name = 'raw.register_marks' "
                                      "and cutoff_date = '2026-09-01'")).scalar_one()
    assert purged == 2 * len(handbuilt.MARKS)
    assert rows_by_year() == {table: {2026: years[2026]} for table, years in before.items()}
    assert not nightly.rebuild_marts_after_purge({"raw.register_marks": 0, "raw.transfer_marks": 0})


def _set_friday_18(trust: Path, night: dt.date, codes: dict[str, tuple[str, str]]) -> None:
    marks = trust / "drop" / handbuilt.URN / night.isoformat() / "marks.csv"
    lines = marks.read_text().splitlines()
    for pupil, (am, pm) in codes.items():
        for session, code in (("AM", am), ("PM", pm)):
            [i] = [n for n, line in enumerate(lines) if line.startswith(f"{handbuilt.URN},{pupil},2026-09-18,{session},")]
            lines[i] = f"{handbuilt.URN},{pupil},2026-09-18,{session},{code},,"
    marks.write_text("\n".join(lines) + "\n")


# Friday 18 September, night 1 then night 2. An amendment that makes a day's last possible mark '#'
# closes the day (no possible session recorded at the school); one that makes a '#' present opens it.
OPEN_DAY_CLOSES = ({"HB-1": ("/", "#"), "HB-2": ("#", "#")}, {"HB-1": ("#", "#"), "HB-2": ("#", "#")})
CLOSED_DAY_OPENS = ({"HB-1": ("#", "#"), "HB-2": ("#", "#")}, {"HB-1": ("/", "#"), "HB-2": ("#", "#")})


def test_a_day_closed_by_an_amendment_leaves_the_amended_pupils_figures(trust, database_url, monkeypatch):
    for night, codes in zip((NIGHT_1, NIGHT_2), OPEN_DAY_CLOSES):
        _set_friday_18(trust, night, codes)
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    _night(database_url, NIGHT_1)
    _night(database_url, NIGHT_2)
    with sa.create_engine(database_url).connect() as conn:
        pupil = "(select pupil_key from marts.dim_pupils where pupil_id = 'HB-1')"
        year = conn.execute(sa.text(
            "select possible_sessions, attended_sessions, absence_sessions, is_persistent_absence "
            f"from marts.fct_pupil_attendance where pupil_key = {pupil}")).one()
        week = conn.execute(sa.text(
            "select possible_sessions, attended_sessions, period_end_date from marts.fct_pupil_attendance_periods "
            f"where pupil_key = {pupil} and period_type = 'week' and period_label = 'w/c 2026-09-14'")).one()
        stage = conn.execute(sa.text(
            f"select graduated_response_stage from marts.fct_watch_list where pupil_key = {pupil}")).scalar()
    # HB-1 to Monday 21 September: days 1-9 as in handbuilt (18 possible: 12 present, L \ 2,
    # V V 2, I I absent 2), Friday 18 '#' '#' (not possible), Monday 21 / \ (2 present):
    # possible 18 + 2 = 20, attended 12 + 2 + 2 + 2 = 18, absent 2 -> 2/20 = 10 %: PA.
    # Night 1's present Friday morning must not stay in the week: 21 possible, 2/21 = 9.5 %, not PA.
    assert tuple(year) == (20, 18, 2, True)
    assert stage == "Stage 4: persistent absence (<90%)"
    # The week of 14 September is Monday to Thursday: 4 days x 2 = 8 possible, 2 + 2 + 2 = 6 attended.
    assert tuple(week) == (8, 6, dt.date(2026, 9, 17))


def _close_monday_21_in_night_3(trust: Path) -> None:
    """Night 3 re-sends night 2 with Monday 21 September, so far the only day of its week, made
    '#' for both pupils: the school was closed after all."""
    night_2, night_3 = (trust / "drop" / handbuilt.URN / night.isoformat() for night in (NIGHT_2, NIGHT_3))
    shutil.rmtree(night_3, ignore_errors=True)  # another test's night 3
    shutil.copytree(night_2, night_3)
    marks = night_3 / "marks.csv"
    marks.write_text(re.sub(r",2026-09-21,(AM|PM),[^,]*,", r",2026-09-21,\1,#,", marks.read_text()))


def test_a_week_whose_only_open_day_closes_goes(trust, database_url, monkeypatch):
    _close_monday_21_in_night_3(trust)
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    for night in (NIGHT_1, NIGHT_2, NIGHT_3):
        _night(database_url, night)
    with sa.create_engine(database_url).connect() as conn:
        weeks = conn.execute(sa.text(
            "select count(*) from intermediate.int_pupil_weeks where week_start_date = '2026-09-21'")).scalar()
        years = conn.execute(sa.text(
            "select p.pupil_id, a.possible_sessions, a.attended_sessions, a.absence_sessions from marts.fct_pupil_attendance a "
            "join marts.dim_pupils p using (pupil_key) order by 1")).all()
        terms = conn.execute(sa.text(
            "select p.pupil_id, a.possible_sessions, a.attended_sessions, a.absence_sessions, a.period_end_date "
            "from marts.fct_pupil_attendance_periods a join marts.dim_pupils p using (pupil_key) "
            "where a.period_type = 'term' order by 1")).all()
        weeks_in_marts = conn.execute(sa.text(
            "select (select count(*) from marts.fct_pupil_attendance_periods where period_label = 'w/c 2026-09-21')"
            " + (select count(*) from marts.rpt_absence_by_group_weekly where week_start_date = '2026-09-21')")).scalar()
    assert weeks == 0 and weeks_in_marts == 0
    # HB-1: the ten days of handbuilt with Friday's O amended to I: possible 20 - 1 (D) = 19,
    # attended 12 + 2 + 2 = 16, absent 2 (I I) + 1 (I) = 3. HB-2: possible 20, attended 18,
    # absent 2. Monday's '#' adds no possible session; its week, stored by night 2 with 2
    # possible and 2 attended each, must not still count.
    assert [tuple(row) for row in years] == [("HB-1", 19, 16, 3), ("HB-2", 20, 18, 2)]
    # The autumn term holds the same ten days, ending on Friday 18 September.
    assert [tuple(row) for row in terms] == [("HB-1", 19, 16, 3, dt.date(2026, 9, 18)), ("HB-2", 20, 18, 2, dt.date(2026, 9, 18))]


@pytest.mark.parametrize("change", ["open_day_closes", "closed_day_opens", "week_goes"])
def test_a_day_that_opens_or_closes_is_redone_everywhere(trust, database_url, monkeypatch, change):
    if change == "week_goes":
        _close_monday_21_in_night_3(trust)
    else:
        for night, codes in zip((NIGHT_1, NIGHT_2), OPEN_DAY_CLOSES if change == "open_day_closes" else CLOSED_DAY_OPENS):
            _set_friday_18(trust, night, codes)
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    for night in (NIGHT_1, NIGHT_2, NIGHT_3) if change == "week_goes" else (NIGHT_1, NIGHT_2):
        _night(database_url, night)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        incremental = _incremental_models(conn)
    # What the nights built, each on the last, equals a full refresh of the same data, the weekly
    # group marts too (no pupil's characteristics change here). When Friday 18 opens or closes,
    # HB-2's marks do not change ('#' both nights): only the day's status tells the night to redo
    # their week (its last session date, 17 or 18 September) and their closed-day figures. When
    # the week of 21 September goes, it must go from the periods, their half-term and term
    # totals, and the weekly group marts, though no week of it is recomputed.
    _full_refresh(database_url)
    with engine.connect() as conn:
        assert _incremental_models(conn) == incremental


def test_an_amendment_to_last_academic_year_is_redone_in_that_year(trust, database_url, monkeypatch):
    # Both exports also carry Friday 17 July 2026, the last academic year's (2025/26). HB-1's O
    # that morning is resolved to I by night 2, which also adds Monday 21 September (2026/27), so
    # night 2 rewrites periods in both years. The periods' delete is bounded by the least academic
    # year the night rewrote (macros/incremental.sql): a bound from the wrong end would leave one
    # year's old rows beside their new ones.
    for night, am in ((NIGHT_1, "O"), (NIGHT_2, "I")):
        marks = trust / "drop" / handbuilt.URN / night.isoformat() / "marks.csv"
        marks.write_text(marks.read_text() + f"{handbuilt.URN},HB-1,2026-07-17,AM,{am},,\n"
                         f"{handbuilt.URN},HB-1,2026-07-17,PM,\\,,\n"
                         f"{handbuilt.URN},HB-2,2026-07-17,AM,/,,\n{handbuilt.URN},HB-2,2026-07-17,PM,\\,,\n")
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    _night(database_url, NIGHT_1)
    _night(database_url, NIGHT_2)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        last_year = conn.execute(sa.text(
            "select a.period_type, a.possible_sessions, a.attended_sessions, a.authorised_absence_sessions, "
            "a.unauthorised_absence_sessions from marts.fct_pupil_attendance_periods a join marts.dim_pupils p "
            "using (pupil_key) where p.pupil_id = 'HB-1' and a.academic_year = 2025 order by 1")).all()
        this_year_weeks = conn.execute(sa.text(
            "select count(*) from marts.fct_pupil_attendance_periods where academic_year = 2026 "
            "and period_type = 'week'")).scalar()
        incremental = _incremental_models(conn)
    # HB-1's only 2025/26 day is its week, half-term and term, once each: AM I (authorised) and
    # PM \ (present) -> possible 2, attended 1, authorised 1, unauthorised 0 (night 1's O gone).
    assert [tuple(row) for row in last_year] == [("half_term", 2, 1, 1, 0), ("term", 2, 1, 1, 0), ("week", 2, 1, 1, 0)]
    # 2026/27: weeks of 7, 14 and 21 September for two pupils, once each.
    assert this_year_weeks == 3 * 2
    _full_refresh(database_url)
    with engine.connect() as conn:
        assert _incremental_models(conn) == incremental


def test_a_delete_bounded_by_a_column_outside_the_unique_key_is_refused(database_url, tmp_path):
    # bounded_delete_insert deletes only rows at or above the new rows' least value of each
    # bounded column; that is safe only for a column of the unique key (a replaced row then has
    # the same value). A model bounded by another column must fail to build, not delete too little.
    # A project of its own holding the strategy's macro and two one-row models, each built twice
    # (the second build is the incremental one that calls the strategy).
    project = tmp_path / "bounded"
    (project / "macros").mkdir(parents=True)
    shutil.copy(DBT_PROJECT_DIR / "macros" / "incremental.sql", project / "macros")
    (project / "models").mkdir()
    (project / "dbt_project.yml").write_text(
        "name: bounded\nversion: '1.0.0'\nconfig-version: 2\nprofile: trust_attendance\n")
    for name, unique_key in (("bounded_within_key", "['pupil_key', 'academic_year']"), ("bounded_outside_key", "'pupil_key'")):
        (project / "models" / f"{name}.sql").write_text(
            f"{{{{ config(materialized='incremental', incremental_strategy='bounded_delete_insert', "
            f"unique_key={unique_key}, meta={{'bounded_by': ['academic_year']}}) }}}}\n"
            "select 1 as pupil_key, 2026 as academic_year\n")

    def build(model: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).with_name("dbt")), "run", "--select", model, "--project-dir", str(project),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
             "--log-path", str(tmp_path / "logs")],
            env={**os.environ, **dbt_env(database_url)}, capture_output=True, text=True)

    for model in ("bounded_within_key", "bounded_outside_key"):
        assert build(model).returncode == 0, model  # created: no delete yet
    assert build("bounded_within_key").returncode == 0
    refused = build("bounded_outside_key")
    assert refused.returncode != 0
    assert "bounded_by: academic_year is not in the unique key" in refused.stdout
