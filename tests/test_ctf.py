"""Common Transfer Files: joiners' attendance history is parsed safely and loaded;
bad files are refused naming the file and element."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest
import sqlalchemy as sa

import handbuilt
from trust_attendance import load
from trust_attendance.ctf import MAX_CTF_BYTES
from trust_attendance.sources import LandedBatch
from trust_attendance.validate import validate_batch

EXTRACT_DATE = dt.date(2026, 9, 19)

# HB-1 joined from school 100999 with 2025/26 history: 10 sessions possible, 8 attended,
# 1 authorised, 1 unauthorised; marks from Monday 1 June 2026: Mon / \\, Tue I O,
# Wed-Thu present, Fri / \\; Sat and Sun '#' (the school did not meet).
GOOD_CTF = """<?xml version="1.0" encoding="UTF-8"?>
<CTfile>
  <Header>
    <DocumentName>Common Transfer File</DocumentName><CTFversion>25.0</CTFversion>
    <SourceSchool><LEA>881</LEA><Estab>2001</Estab><URN>100999</URN><SchoolName>Old School</SchoolName></SourceSchool>
    <DestSchool><LEA>999</LEA><Estab>9999</Estab><URN>900999</URN></DestSchool>
  </Header>
  <CTFpupilData>
    <Pupil>
      <UPN>X999999260011</UPN><Surname>Lovelace</Surname><Forename>Ada</Forename>
      <Attendance>
        <YearData>
          <Year>2025</Year>
          <SessionsPossible>10</SessionsPossible><SessionsAttended>8</SessionsAttended>
          <SessionsAuthorised>1</SessionsAuthorised><SessionsUnauthorised>1</SessionsUnauthorised>
          <AttendSessions>
            <AttendanceStartDate>2026-06-01</AttendanceStartDate>
            <AttendanceMarks>/\\IO/\\/\\/\\####</AttendanceMarks>
          </AttendSessions>
        </YearData>
      </Attendance>
    </Pupil>
  </CTFpupilData>
</CTfile>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<CTfile><Header>&lol3;</Header></CTfile>
"""


@pytest.fixture
def batch_with(tmp_path):
    def make(ctf_text: str | bytes) -> LandedBatch:
        trust = tmp_path / "trust"
        trust.mkdir(exist_ok=True)
        (trust / "trust.yml").write_text("schools: []\n")
        handbuilt.write_school(trust, EXTRACT_DATE)
        folder = tmp_path / "landing"
        shutil.copytree(trust / "drop" / handbuilt.URN / EXTRACT_DATE.isoformat(), folder, dirs_exist_ok=True)
        (folder / "ctf").mkdir(exist_ok=True)
        path = folder / "ctf" / "CTF_100999_900999.xml"
        path.write_bytes(ctf_text.encode() if isinstance(ctf_text, str) else ctf_text)
        return LandedBatch(handbuilt.URN, EXTRACT_DATE, folder)
    return make


def test_a_ctf_is_parsed_and_loaded(batch_with, database_url):
    batch = batch_with(GOOD_CTF)
    report, frames = validate_batch(batch, database_url)
    assert report.passed, [f.message() for f in report.critical()]
    years = frames["transfer_attendance.csv"]
    assert years[["upn", "source_urn", "academic_year", "sessions_possible", "sessions_attended"]].values.tolist() == [
        ["X999999260011", "100999", 2025, 10, 8]]
    marks = frames["transfer_marks.csv"]
    # 7 days x 2 sessions = 14 characters, of which the 4 '#' of the weekend are not sessions.
    assert len(marks) == 10
    assert marks.iloc[2][["session_date", "session", "mark"]].tolist() == ["2026-06-02", "AM", "I"]
    load.ensure_raw_schema(database_url)
    load.write_validated(batch, frames)
    with load.LoadBegun(database_url, batch, report.staged_marks) as begun:
        begun.commit(report)
    with sa.create_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.transfer_marks")).scalar() == 10
        assert conn.execute(sa.text("select sessions_unauthorised from raw.transfer_attendance")).scalar() == 1


@pytest.mark.parametrize("content, element, problem", [
    ("<CTfile><Header>", "line 1", "malformed XML"),
    (BILLION_LAUGHS, "CTfile", "refused unsafe XML"),
    (GOOD_CTF.replace("<SessionsPossible>10", "<SessionsPossible>9"), "CTFpupilData/Pupil[1]/Attendance/YearData[1]",
     "exceed possible sessions"),
    (GOOD_CTF.replace("<UPN>X999999260011</UPN>", ""), "CTFpupilData/Pupil[1]/UPN", "missing or empty"),
    (GOOD_CTF.replace("<AttendanceMarks>/\\IO", "<AttendanceMarks>/\\IH"), None, "transferred marks use codes valid on their date"),
])
def test_bad_ctfs_are_critical_naming_file_and_element(batch_with, database_url, content, element, problem):
    report, _ = validate_batch(batch_with(content), database_url)
    assert not report.passed
    [finding] = report.critical()
    assert finding.file == "ctf/CTF_100999_900999.xml"
    assert problem in finding.rule
    if element:
        assert finding.values == [element]


def test_an_oversized_ctf_is_refused_before_parsing(batch_with, database_url):
    report, _ = validate_batch(batch_with(b"<CTfile>" + b" " * (MAX_CTF_BYTES + 1) + b"</CTfile>"), database_url)
    [finding] = report.critical()
    assert "over the" in finding.rule and "byte limit" in finding.rule
