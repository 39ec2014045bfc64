"""Common Transfer File (DfE CTF XML): attendance history of pupils who join.

A CTF carries, per pupil, ``<Attendance><YearData>`` with the previous
school's session totals and optionally ``<AttendSessions>``: a start date and
one mark per session, AM then PM, for each calendar day (``#`` on days the
school did not meet). Files are parsed with defusedxml (no DTDs, no entity
expansion) and refused above a size limit; every problem names the file and
the element.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_CTF_BYTES = 20 * 1024 * 1024
YEAR_COLUMNS = ["school_urn", "upn", "source_urn", "source_la", "source_estab", "academic_year",
                "sessions_possible", "sessions_attended", "sessions_authorised", "sessions_unauthorised", "file"]
MARK_COLUMNS = ["school_urn", "upn", "source_urn", "session_date", "session", "mark", "file"]


class CtfError(ValueError):
    def __init__(self, file: str, element: str, problem: str):
        super().__init__(f"{file}, element {element}: {problem}")
        self.file, self.element, self.problem = file, element, problem


@dataclass
class CtfContent:
    years: list[list]
    marks: list[list]


def _text(node, path: str, file: str, where: str, required: bool = True) -> str | None:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        if required:
            raise CtfError(file, f"{where}/{path}", "missing or empty")
        return None
    return found.text.strip()


def _int(node, path: str, file: str, where: str) -> int:
    value = _text(node, path, file, where)
    if not value.isdigit():
        raise CtfError(file, f"{where}/{path}", f"not a whole number: {value!r}")
    return int(value)


def parse_ctf(path: Path, school_urn: str) -> CtfContent:
    """Parse one CTF for the receiving school; raise CtfError naming the element at fault."""
    name = path.name
    size = path.stat().st_size
    if size > MAX_CTF_BYTES:
        raise CtfError(name, "CTfile", f"file is {size:,} bytes, over the {MAX_CTF_BYTES:,}-byte limit")
    try:
        root = SafeET.parse(path, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException as exc:
        raise CtfError(name, "CTfile", f"refused unsafe XML ({type(exc).__name__}: DTDs and entities are not allowed)") from None
    except SafeET.ParseError as exc:
        raise CtfError(name, f"line {exc.position[0]}", f"malformed XML ({exc})") from None
    if root.tag != "CTfile":
        raise CtfError(name, root.tag, "not a Common Transfer File (root element should be CTfile)")
    source = root.find("Header/SourceSchool")
    if source is None:
        raise CtfError(name, "Header/SourceSchool", "missing")
    source_urn = _text(source, "URN", name, "Header/SourceSchool", required=False) or ""
    source_la = _text(source, "LEA", name, "Header/SourceSchool")
    source_estab = _text(source, "Estab", name, "Header/SourceSchool")
    years, marks = [], []
    for n, pupil in enumerate(root.findall("CTFpupilData/Pupil"), start=1):
        where = f"CTFpupilData/Pupil[{n}]"
        upn = _text(pupil, "UPN", name, where)
        for m, year in enumerate(pupil.findall("Attendance/YearData"), start=1):
            at = f"{where}/Attendance/YearData[{m}]"
            academic_year = _int(year, "Year", name, at)
            totals = {key: _int(year, tag, name, at) for key, tag in (
                ("possible", "SessionsPossible"), ("attended", "SessionsAttended"),
                ("authorised", "SessionsAuthorised"), ("unauthorised", "SessionsUnauthorised"))}
            if totals["attended"] + totals["authorised"] + totals["unauthorised"] > totals["possible"]:
                raise CtfError(name, at, "attended + authorised + unauthorised sessions exceed possible sessions")
            years.append([school_urn, upn, source_urn, source_la, source_estab, academic_year, totals["possible"],
                          totals["attended"], totals["authorised"], totals["unauthorised"], name])
            sessions = year.find("AttendSessions")
            if sessions is None:
                continue
            start_text = _text(sessions, "AttendanceStartDate", name, f"{at}/AttendSessions")
            try:
                start = dt.date.fromisoformat(start_text[:10])
            except ValueError:
                raise CtfError(name, f"{at}/AttendSessions/AttendanceStartDate", f"not a date: {start_text!r}") from None
            codes = _text(sessions, "AttendanceMarks", name, f"{at}/AttendSessions") or ""
            for i, mark in enumerate(codes):
                if mark == "#":
                    continue  # the school did not meet
                day = start + dt.timedelta(days=i // 2)
                marks.append([school_urn, upn, source_urn, day.isoformat(), "AM" if i % 2 == 0 else "PM",
                              "" if mark == "-" else mark, name])
    return CtfContent(years, marks)
