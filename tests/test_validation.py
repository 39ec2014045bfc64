"""Parsing and the GX suites catch each defect, naming school, file, line and rule."""
from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import handbuilt
from trust_attendance.sources import LandedBatch
from trust_attendance.validate import staged_marks_table, validate_batch

EXTRACT_DATE = dt.date(2026, 9, 19)


@pytest.fixture
def batch(tmp_path, database_url) -> LandedBatch:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "trust.yml").write_text("schools: []\n")
    handbuilt.write_school(trust, EXTRACT_DATE)
    folder = tmp_path / "landing"
    shutil.copytree(trust / "drop" / handbuilt.URN / EXTRACT_DATE.isoformat(), folder)
    return LandedBatch(handbuilt.URN, EXTRACT_DATE, folder)


def _edit(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def _staged_marks(url: str, batch: LandedBatch, expression: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL(f"select {expression} from {{}}").format(staged_marks_table(batch))).fetchone()[0]


def _critical(report) -> list[str]:
    return [f.message() for f in report.critical()]


def test_clean_batch_passes(batch, database_url):
    report, frames = validate_batch(batch, database_url)
    assert report.passed, _critical(report)
    assert report.findings == []
    assert report.staged_marks == 40 and _staged_marks(database_url, batch, "count(*)") == 40
    assert Path(report.data_docs).exists()


def test_retired_code_after_2024_is_critical_with_its_line(batch, database_url):
    _edit(batch.file("marks.csv"), 3, ",PM,\\,", ",PM,H,")  # line 3 = second mark of HB-1
    report, _ = validate_batch(batch, database_url)
    assert not report.passed
    [message] = _critical(report)
    assert message.startswith(f"school {handbuilt.URN}, marks.csv, line 3: marks from 19 August 2024 use the 2024")
    assert "'H'" in message


def test_unknown_code_duplicate_and_wrong_school_each_caught(batch, database_url):
    marks = batch.file("marks.csv")
    _edit(marks, 2, ",AM,/,", ",AM,Q9,")
    _edit(marks, 5, f"{handbuilt.URN},", "123456,")
    lines = marks.read_text().splitlines()
    marks.write_text("\n".join(lines + [lines[10]]) + "\n")  # line 42 duplicates line 11
    report, _ = validate_batch(batch, database_url)
    messages = " | ".join(_critical(report))
    assert "line 2: marks from 19 August 2024" in messages and "'Q9'" in messages
    assert "line 5: the file belongs to the school it was pulled for" in messages
    assert "at most one mark per pupil per session" in messages and "11" in messages and "42" in messages


def test_missing_mark_is_a_warning_and_the_batch_still_passes(batch, database_url):
    _edit(batch.file("marks.csv"), 6, ",AM,/,", ",AM,-,")
    report, frames = validate_batch(batch, database_url)
    assert report.passed
    blank, incomplete = report.warnings()  # the file line, and the register view of the same gap
    assert "line 6: every session has a mark" in blank.message()
    assert incomplete.values == ["2026-09-09 AM HB-1 (2A)"]
    assert _staged_marks(database_url, batch, "count(*) - count(mark)") == 1


def test_future_date_and_mark_outside_enrolment_are_critical(batch, database_url):
    _edit(batch.file("marks.csv"), 41, "2026-09-18", "2026-09-19")  # the extract's own day: not yet happened
    _edit(batch.file("enrolments.csv"), 2, "2025-09-03,,C", "2025-09-03,2026-09-10,C")  # HB-1 left on the 10th
    report, _ = validate_batch(batch, database_url)
    messages = " | ".join(_critical(report))
    assert "line 41: session dates fall within the extract's academic years and are not in the future" in messages
    assert "marks fall inside one of the pupil's enrolments" in messages


def test_pupil_checks(batch, database_url):
    _edit(batch.file("pupils.csv"), 2, ",2,2A,", ",15,2A,")
    _edit(batch.file("pupils.csv"), 3, "Y,Y,Y,N,N", "Y,Y,Y,Z,N")
    report, _ = validate_batch(batch, database_url)
    messages = " | ".join(_critical(report))
    assert "pupils.csv, line 2: year group is a national curriculum year" in messages
    assert "pupils.csv, line 3: SEN provision is N (none), K (SEN support) or E (EHC plan)" in messages


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_bom_crlf_and_windows_1252_names_are_read(batch, database_url, encoding):
    pupils = batch.file("pupils.csv")
    text = pupils.read_text().replace("Lovelace", "Lovelacé").replace("\n", "\r\n")
    pupils.write_bytes(text.encode(encoding))
    report, frames = validate_batch(batch, database_url)
    assert report.passed, _critical(report)
    assert "Lovelacé" in set(frames["pupils.csv"]["legal_surname"])


def test_unreadable_files_are_refused_before_gx(batch, database_url):
    marks = batch.file("marks.csv")
    marks.write_text(marks.read_text().replace("minutes_late,", ""))  # header lacks a column
    report, _ = validate_batch(batch, database_url)
    [message] = _critical(report)
    assert message == (f"school {handbuilt.URN}, marks.csv, line 1: header does not match the export layout: "
                       "missing column(s) minutes_late [parse]")


def test_a_pupil_with_no_mark_for_an_open_session_is_listed(batch, database_url):
    marks = batch.file("marks.csv")
    lines = marks.read_text().splitlines()
    marks.write_text("\n".join(lines[:6] + lines[7:]) + "\n")  # drop line 7: HB-1, 9 September, PM
    report, _ = validate_batch(batch, database_url)
    assert report.passed
    [warning] = report.warnings()
    assert warning.rule == "every pupil on roll has a mark for every session the school was open"
    assert warning.values == ["2026-09-09 PM HB-1 (2A)"] and warning.count == 1


def test_small_files_unchanged_since_a_checked_batch_keep_its_findings(batch, database_url, tmp_path):
    """A school re-sends its pupils and enrolments every night, mostly byte for byte: GX checks a
    file again only when something its checks depend on changed, and the findings of the batch
    that was checked stand, lines and all."""
    _edit(batch.file("pupils.csv"), 2, ",F,WBRI,", ",U,WBRI,")  # HB-1's sex: a warning
    first, _ = validate_batch(batch, database_url)
    [warning] = first.warnings()
    assert warning.file == "pupils.csv" and warning.lines == [2] and first.small_files_checked_on == {}

    next_night = LandedBatch(batch.school_urn, EXTRACT_DATE + dt.timedelta(days=1), tmp_path / "next")
    shutil.copytree(batch.folder, next_night.folder)  # the same files a night later
    second, _ = validate_batch(next_night, database_url)
    checked_on = EXTRACT_DATE.isoformat()
    assert second.small_files_checked_on == {"pupils.csv": checked_on, "enrolments.csv": checked_on}
    assert [f.message() for f in second.findings] == [warning.message()]
    validations = Path(second.data_docs).parent / "validations"  # validations/<suite>/.../<batch>.html
    suites_rendered = {page.relative_to(validations).parts[0] for page in validations.glob("**/*.html")}
    assert suites_rendered == {"register_marks", "register_completeness"}  # GX ran the marks' suites only

    _edit(next_night.file("enrolments.csv"), 3, "2025-09-03,,C", "2025-09-03,,X")  # HB-2: no such status
    third, _ = validate_batch(next_night, database_url)
    assert third.small_files_checked_on == {"pupils.csv": checked_on}  # the pupils' findings still stand
    assert {(f.file, f.severity) for f in third.findings} == {("pupils.csv", "warning"), ("enrolments.csv", "critical")}

    _edit(next_night.file("pupils.csv"), 2, ",U,WBRI,", ",F,WBRI,")  # the school corrects the pupil
    fourth, _ = validate_batch(next_night, database_url)
    assert fourth.small_files_checked_on == {}  # enrolments are checked against the pupils: both again
    assert [f.file for f in fourth.findings] == ["enrolments.csv"]


def test_what_a_small_files_checks_depend_on(batch):
    from trust_attendance.validate import small_file_key, suite_parameters

    tonight = suite_parameters(batch.school_urn, EXTRACT_DATE)
    pupils, enrolments = (small_file_key(batch, name, tonight) for name in ("pupils.csv", "enrolments.csv"))
    # The dates bound the marks only: a later night's parameters leave the keys as they were.
    later = suite_parameters(batch.school_urn, EXTRACT_DATE + dt.timedelta(days=1))
    assert (small_file_key(batch, "pupils.csv", later), small_file_key(batch, "enrolments.csv", later)) == (pupils, enrolments)
    assert small_file_key(batch, "pupils.csv", tonight | {"school_urn": ["100001"]}) != pupils  # the school is checked
    batch.file("enrolments.csv").write_text(batch.file("enrolments.csv").read_text() + "\n")
    assert small_file_key(batch, "enrolments.csv", tonight) != enrolments
    assert small_file_key(batch, "pupils.csv", tonight) == pupils
    batch.file("pupils.csv").write_text(batch.file("pupils.csv").read_text() + "\n")
    assert small_file_key(batch, "pupils.csv", tonight) != pupils


def test_data_docs_show_a_failures_counts_and_values(batch, database_url):
    """The suites run with GX's BOOLEAN_ONLY result and only failures run again for their details:
    the batch's Data Docs show those details, not the bare pass/fail of the first run."""
    _edit(batch.file("marks.csv"), 2, ",AM,/,", ",AM,Q9,")
    report, _ = validate_batch(batch, database_url)
    assert not report.passed
    [page] = (Path(report.data_docs).parent / "validations" / "register_marks").glob("**/*.html")
    html = page.read_text()
    assert "Q9" in html  # the failing value, from the rerun's SUMMARY result
    assert "unexpected" in html.lower()


def test_the_preloads_warm_up_leaves_no_trace_in_a_batch(batch, database_url, tmp_path, monkeypatch):
    """The warm-up a task-forking process runs once (trust_attendance.preload) checks a made-up
    pupil file for school 000000: nothing of it may be written to disk or reach a real batch's
    findings or Data Docs."""
    from trust_attendance.validate import warm_up

    monkeypatch.setenv("TRUST_VAR_DIR", str(tmp_path / "var"))
    warm_up()
    assert not (tmp_path / "var").exists()
    # and the process is left to fork without the monitor thread GX's progress bar starts
    assert "tqdm_monitor" not in {thread.name for thread in threading.enumerate() if thread.is_alive()}
    _edit(batch.file("pupils.csv"), 2, ",F,WBRI,", ",U,WBRI,")  # HB-1's sex: a warning
    report, _ = validate_batch(batch, database_url)
    assert [(f.school_urn, f.file, f.lines) for f in report.findings] == [(handbuilt.URN, "pupils.csv", [2])]
    site = Path(report.data_docs).parent
    pages = [page.read_text() for page in site.glob("**/*.html")]
    assert pages and not any("000000" in page for page in pages)
    assert len(list((site / "validations" / "pupils").glob("**/*.html"))) == 1  # this batch's pupils only
