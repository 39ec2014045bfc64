"""Synthetic demo trust: schools, pupils and registers that behave like real ones.

Every name, UPN and date of birth is invented. Figures are calibrated to the
national ones in the rules doc (absence ~7 %, PA ~20 %, SA ~2 %, a visible
pupil premium gap) through per-pupil absence propensities. Output is the CSV
export drop the ``csv_drop`` source reads, plus a trust config and a manifest
of what was written (counts the tests check against). Deterministic for a
given seed and as-of date; files are streamed school by school so memory
stays flat however large the trust.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from .codes import code_table
from .export_layout import ATTAINMENT_COLUMNS, ENROLMENT_COLUMNS, MARK_COLUMNS, PUPIL_COLUMNS
from .school_calendar import academic_year_start, school_days
from .paths import var_dir

PRESETS = {"tiny": 2, "small": 4, "default": 6, "medium": 20, "large": 100}
# Pupils on roll a preset aims at, where the schools' usual sizes would give another
# number: the largest MATs have about 100 schools and 80,000 pupils.
PRESET_PUPILS_ON_ROLL = {"large": 80_000}

FORENAMES = (
    "Amelia Olivia Isla Ava Mia Ivy Lily Freya Zoë Aisha Maryam Siobhán Chloé Ella Grace Sophia Evie Willow "
    "Noah Oliver George Arthur Leo Harry Oscar Muhammad Jack Charlie Jacob Tomás Alfie Finley Archie Yusuf "
    "Kacper Oskar Ibrahim Theo Rory Dylan Reuben Kai Ethan Zara Hana Priya Amara Niamh Aoife Elif"
).split()
SURNAMES = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Wright Robinson Khan Thompson Evans Walker "
    "White Roberts Green Hall Wood Jackson Clarke Hussain Ahmed Kowalski Nowak O'Neill O'Brien Murphy Begum "
    "Ali Singh Okafor Mensah Adeyemi Chen Nguyen Hughes Edwards Lewis Harris Martin Cooper Ward Morris Bailey"
).split()
# DfE main ethnicity codes with rough national shares.
ETHNICITIES = {
    "WBRI": 0.62, "WIRI": 0.003, "WOTH": 0.07, "MWBC": 0.02, "MWBA": 0.01, "MWAS": 0.02, "MOTH": 0.025,
    "AIND": 0.035, "APKN": 0.045, "ABAN": 0.02, "AOTH": 0.02, "BCRB": 0.01, "BAFR": 0.04, "BOTH": 0.005,
    "CHNE": 0.005, "OOTH": 0.02, "REFU": 0.032,
}
SCHOOL_STEMS = (
    "Oakfield Riverside Hillcrest Meadowbank Ashgrove Brookside Elmwood Kingsway Fairfield Highfield Larkrise "
    "Millbrook Northgate Orchard Parkside Redwood Southfields Thornbury Westmoor Willowbank"
).split()
PHASE_CYCLE = ("primary", "secondary", "primary", "special", "primary", "secondary")
PHASE_YEAR_GROUPS = {
    "primary": ["R", "1", "2", "3", "4", "5", "6"],
    "secondary": ["7", "8", "9", "10", "11", "12", "13"],
    "special": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14"],
}
# Mean session absence by phase (rules doc: primary 5.5, secondary 8.9, special 13.0 %).
PHASE_ABSENCE = {"primary": 0.031, "secondary": 0.05, "special": 0.075}
# Absence codes for a day off, for ordinary pupils and for the severely absent.
EPISODE_CODES = ("I", "O", "G", "N", "C", "E", "R", "M")
EPISODE_WEIGHTS = np.array([0.66, 0.09, 0.07, 0.04, 0.03, 0.01, 0.02, 0.08])
SEVERE_CODES = ("O", "I", "N", "C2", "E")
SEVERE_WEIGHTS = np.array([0.5, 0.28, 0.08, 0.1, 0.04])
# Progress 8 is not published for the 2024/25 and 2025/26 cohorts (rules doc, "Attainment link").
NO_PROGRESS_8_YEARS = {2024, 2025}
INVALID_CODE = "H"  # retired in August 2024: invalid on any later date


NON_NUMERIC_YEAR_GROUPS = {"N1": -2, "N2": -1, "R": 0}


def year_group_number(year_group: str) -> int:
    """National curriculum year as a number (nursery and reception at or below 0)."""
    return NON_NUMERIC_YEAR_GROUPS[year_group] if year_group in NON_NUMERIC_YEAR_GROUPS else int(year_group)


@dataclass
class SchoolPlan:
    urn: str
    name: str
    phase: str
    la_code: str
    pupils_per_year: int
    forms_per_year: int
    year_groups: tuple[str, ...]


def plan_schools(n_schools: int, rng: np.random.Generator, school_rngs: list[np.random.Generator],
                 pupils_on_roll: int | None = None) -> list[SchoolPlan]:
    """The trust's schools; with ``pupils_on_roll``, cohorts scaled so the trust has about that many.
    Whether a secondary has a sixth form is drawn from that school's own generator (its first draw)."""
    drawn = []
    for i in range(n_schools):
        phase = PHASE_CYCLE[i % len(PHASE_CYCLE)]
        stem = SCHOOL_STEMS[i % len(SCHOOL_STEMS)] + (f" {i // len(SCHOOL_STEMS) + 1}" if i >= len(SCHOOL_STEMS) else "")
        if phase == "primary":
            per_year, name = int(rng.integers(30, 61)), f"{stem} Primary Academy"
        elif phase == "secondary":
            per_year, name = int(rng.integers(150, 221)), f"{stem} Academy"
        else:
            per_year, name = int(rng.integers(8, 13)), f"{stem} School"
        year_groups = tuple(PHASE_YEAR_GROUPS[phase])
        if phase == "secondary" and school_rngs[i].random() < 0.5:
            year_groups = year_groups[:5]  # 11-16 school, no sixth form
        drawn.append((phase, name, per_year, year_groups))
    scale = 1.0
    if pupils_on_roll:
        # Pupils on roll come to about 0.97 of size x year groups (measured on the large preset:
        # cohorts are drawn at 0.85-1.05 of the school's size, some pupils join and some leave).
        scale = pupils_on_roll / sum(per_year * len(groups) * 0.97 for _, _, per_year, groups in drawn)
    plans = []
    for i, (phase, name, per_year, year_groups) in enumerate(drawn):
        per_year = max(3, round(per_year * scale))
        forms = 1 if phase == "special" else max(1, round(per_year / 30))
        plans.append(SchoolPlan(f"{900001 + i}", name, phase, f"{880 + i % 5}", per_year, forms, year_groups))
    return plans


def _form_name(phase: str, year_group: str, form_index: int) -> str:
    if phase == "secondary":
        return f"{year_group}{string.ascii_uppercase[form_index]}"
    if phase == "special":
        return ["Class Oak", "Class Ash", "Class Elm", "Class Yew", "Class Fir"][int(year_group) % 5]
    return f"{year_group}{'XYZ'[form_index]}"


def _year_start(start_year: int) -> dt.date:
    return dt.date(start_year, 9, 1)


def _year_end(start_year: int) -> dt.date:
    return dt.date(start_year + 1, 7, 22)


class _SchoolGenerator:
    """Pupils, enrolments and registers for one school."""

    def __init__(self, plan: SchoolPlan, rng: np.random.Generator, first_year: int, as_of: dt.date):
        self.plan, self.rng, self.first_year, self.as_of = plan, rng, first_year, as_of
        self.current_year = academic_year_start(as_of)
        self.year_groups = list(plan.year_groups)
        self.pupils: list[dict] = []
        self.enrolments: list[dict] = []
        self.propensity: list[float] = []
        self.late_propensity: list[float] = []
        self.special_pattern: list[str] = []
        # (pupil index, academic year) -> [possible sessions, absence sessions], for attainment.
        self.tally: dict[tuple[int, int], list[int]] = {}
        self.categories = {c.code: c for c in code_table() if c.valid_on(as_of)}

    def build_pupils(self) -> None:
        rng, plan = self.rng, self.plan
        n_groups = len(self.year_groups)
        # Every cohort on roll in any generated year, by its position now: position p < n_groups
        # is in year_groups[p] this year; p >= n_groups left at the end of an earlier year.
        years_back = self.current_year - self.first_year
        for position in range(n_groups + years_back):
            size = max(3, int(round(plan.pupils_per_year * rng.uniform(0.85, 1.05))))
            for _ in range(size):
                self._add_pupil(position, n_groups)
        # Mid-year joiners in every generated year.
        for year in range(self.first_year, self.current_year + 1):
            for _ in range(int(plan.pupils_per_year * n_groups * 0.03)):
                position = int(rng.integers(0, n_groups)) + (self.current_year - year)
                self._add_pupil(position, n_groups, joins_in=year)

    def _add_pupil(self, position: int, n_groups: int, joins_in: int | None = None) -> None:
        rng, plan = self.rng, self.plan
        seq = len(self.pupils) + 1
        entry_year = self.current_year - position  # the year the cohort started in the first year group
        if position < n_groups:
            year_group = self.year_groups[position]
            ref_year = self.current_year
        else:  # left at the end of the year when they were in the top year group
            year_group = self.year_groups[-1]
            ref_year = entry_year + n_groups - 1
        ncy = year_group_number(year_group)
        if joins_in is not None:
            admission = _year_start(joins_in) + dt.timedelta(days=int(rng.integers(20, 300)))
            if admission > self.as_of:
                return  # not joined yet
        else:
            admission = dt.date(entry_year, 9, 3)
        leaving = None
        if position >= n_groups:
            leaving = _year_end(ref_year)
        elif rng.random() < 0.03:  # leaves partway through the current or previous year
            leave_year = int(rng.integers(max(self.first_year, admission.year - (admission.month < 9)), self.current_year + 1))
            leaving = _year_start(leave_year) + dt.timedelta(days=int(rng.integers(40, 320)))
            if leaving <= admission or leaving > self.as_of:
                leaving = None
        birth_year_start = ref_year - 5 - ncy  # born 1 Sep of this year .. 31 Aug next
        dob = dt.date(birth_year_start, 9, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        pupil_premium = rng.random() < (0.24 if plan.phase == "primary" else 0.30 if plan.phase == "secondary" else 0.45)
        fsm = pupil_premium and rng.random() < 0.8
        looked_after = rng.random() < 0.01
        if plan.phase == "special":
            sen = "E" if rng.random() < 0.95 else "K"
        else:
            r = rng.random()
            sen = "E" if r < 0.03 else "K" if r < 0.16 else "N"
        form = _form_name(plan.phase, year_group, int(rng.integers(0, plan.forms_per_year)))
        pupil_id = f"{plan.urn}-{seq:05d}"
        # Synthetic UPN: check letter + LA + establishment + year allocated + serial (13 characters).
        upn = f"{'ABCDEFGHJKLMNPQRTUVWXYZ'[seq % 23]}{plan.la_code}{plan.urn[-4:]}{admission.year % 100:02d}{seq % 1000:03d}"
        self.pupils.append({
            "school_urn": plan.urn, "pupil_id": pupil_id, "upn": upn,
            "legal_forename": FORENAMES[int(rng.integers(len(FORENAMES)))],
            "legal_surname": SURNAMES[int(rng.integers(len(SURNAMES)))],
            "date_of_birth": dob.isoformat(), "sex": "F" if rng.random() < 0.49 else "M",
            "ethnicity": rng.choice(list(ETHNICITIES), p=np.array(list(ETHNICITIES.values())) / sum(ETHNICITIES.values())),
            "year_group": year_group, "form": form,
            "pupil_premium": pupil_premium, "fsm": fsm, "fsm6": pupil_premium,
            "sen_provision": sen, "eal": rng.random() < 0.2, "looked_after": looked_after,
            "previously_looked_after": (not looked_after) and rng.random() < 0.01,
            "child_in_need": rng.random() < 0.03, "child_protection_plan": rng.random() < 0.01,
        })
        dual = rng.random() < 0.004
        self.enrolments.append({
            "school_urn": plan.urn, "pupil_id": pupil_id, "admission_date": admission.isoformat(),
            "leaving_date": leaving.isoformat() if leaving else "", "enrolment_status": "M" if dual else "C",
        })
        # Session absence propensity: lognormal around the phase mean, raised for
        # disadvantage and SEN, plus a small severely absent group.
        base = PHASE_ABSENCE[plan.phase] * (1.55 if pupil_premium else 0.85) * {"N": 1.0, "K": 1.3, "E": 1.2}[sen]
        if ncy >= 10:
            base *= 1.25
        severe = rng.random() < (0.022 if plan.phase != "primary" else 0.01) * (1.8 if pupil_premium else 0.8)
        if severe:
            p = rng.uniform(0.5, 0.92)
        else:
            p = min(0.45, rng.lognormal(np.log(base) - 0.5 * 0.85**2, 0.85))
        self.propensity.append(p)
        self.late_propensity.append(0.12 if rng.random() < 0.05 else 0.01)
        pattern = "severe" if severe else ""
        if dual:
            pattern = "dual"
        elif plan.phase == "secondary" and rng.random() < 0.006:
            pattern = "alternative_provision"
        elif rng.random() < 0.002:
            pattern = "part_time"
        self.special_pattern.append(pattern)

    def marks(self, days: list[dt.date], closures: set[dt.date], trip_days: dict[str, set[dt.date]]):
        """Yield mark rows for the pupils on roll on ``days``."""
        rng = self.rng
        n = len(self.pupils)
        admissions = np.array([dt.date.fromisoformat(e["admission_date"]).toordinal() for e in self.enrolments])
        leavings = np.array([
            dt.date.fromisoformat(e["leaving_date"]).toordinal() if e["leaving_date"] else 10**7 for e in self.enrolments
        ])
        p = np.array(self.propensity)
        late = np.array(self.late_propensity)
        severe = np.array([s == "severe" for s in self.special_pattern])
        mean_episode = np.where(severe, 4.0, 1.6)
        start_prob = p / (mean_episode * (1 - p) + p)
        remaining = np.zeros(n, dtype=int)
        episode_code = np.empty(n, dtype=object)
        year_offset = {}
        for day in days:
            ordinal = day.toordinal()
            on_roll = (admissions <= ordinal) & (ordinal < leavings)
            if day in closures:
                for i in np.flatnonzero(on_roll):
                    for session in ("AM", "PM"):
                        yield self._row(i, day, session, "#")
                remaining[:] = 0
                continue
            starts = (remaining == 0) & (rng.random(n) < start_prob)
            if starts.any():
                idx = np.flatnonzero(starts)
                codes = np.where(
                    severe[idx],
                    rng.choice(SEVERE_CODES, size=idx.size, p=SEVERE_WEIGHTS),
                    rng.choice(EPISODE_CODES, size=idx.size, p=EPISODE_WEIGHTS),
                )
                lengths = np.where(codes == "G", 5, 1 + rng.geometric(1 / mean_episode[idx]) - 1)
                lengths = np.where(codes == "M", 1, np.maximum(lengths, 1))
                remaining[idx] = lengths
                episode_code[idx] = codes
            absent = remaining > 0
            draws = rng.random((n, 3))
            for i in np.flatnonzero(on_roll):
                pattern = self.special_pattern[i]
                year_group = self._year_group_in(i, day, year_offset)
                if pattern == "dual" and day.weekday() == 4:
                    am = pm = "D"
                elif pattern == "alternative_provision" and day.weekday() in (1, 3):
                    am = pm = "K"
                elif pattern == "part_time":
                    am, pm = ("/", "C2")
                elif absent[i]:
                    code = episode_code[i]
                    am = pm = code
                    if code == "M":  # appointments take a session, not a day
                        am, pm = ("M", "\\") if draws[i, 2] < 0.5 else ("/", "M")
                elif day in trip_days.get(year_group, ()):
                    am = pm = "V"
                else:
                    am, pm = "/", "\\"
                    if draws[i, 0] < late[i]:
                        am = "U" if draws[i, 1] < 0.12 else "L"
                for session, mark in (("AM", am), ("PM", pm)):
                    yield self._row(i, day, session, mark)
            remaining = np.maximum(remaining - 1, 0)

    def _year_group_in(self, i: int, day: dt.date, cache: dict) -> str:
        """Year group on ``day`` from the group recorded at extract or leaving time."""
        pupil = self.pupils[i]
        leaving = self.enrolments[i]["leaving_date"]
        ref_year = academic_year_start(dt.date.fromisoformat(leaving) - dt.timedelta(days=1)) if leaving else self.current_year
        key = (pupil["year_group"], ref_year - academic_year_start(day))
        if key not in cache:
            ncy = year_group_number(pupil["year_group"]) - key[1]
            cache[key] = {v: k for k, v in NON_NUMERIC_YEAR_GROUPS.items()}.get(ncy, str(ncy))
        return cache[key]

    def _row(self, i: int, day: dt.date, session: str, mark: str) -> list:
        code = self.categories.get(mark)
        if code is not None and code.counts_as_possible:
            tally = self.tally.setdefault((i, academic_year_start(day)), [0, 0])
            tally[0] += 1
            tally[1] += code.category in ("authorised_absence", "unauthorised_absence")
        minutes_late = ""
        comment = ""
        if mark in ("L", "U"):
            minutes_late = str(int(self.rng.integers(3, 15 if mark == "L" else 50)))
        elif mark == "M" and self.rng.random() < 0.3:
            comment = "Appointment, hospital"
        return [self.plan.urn, self.pupils[i]["pupil_id"], day.isoformat(), session, mark, minutes_late, comment]


    def write_transfer_files(self, folder: Path, limit: int = 5) -> int:
        """A Common Transfer File for each of the first few pupils who joined this year.

        Their previous school is synthetic (URN 1009xx); the history is last
        academic year's totals and, for the last week of it, the marks.
        """
        joiners = [i for i, e in enumerate(self.enrolments)
                   if academic_year_start(dt.date.fromisoformat(e["admission_date"])) == self.current_year
                   and e["admission_date"] > f"{self.current_year}-09-03"][:limit]
        if not joiners:
            return 0
        folder.mkdir(parents=True, exist_ok=True)
        previous_year = self.current_year - 1
        last_week = [d for d in school_days(previous_year)][-5:]
        start = last_week[0]
        for n, i in enumerate(joiners, start=1):
            pupil = self.pupils[i]
            possible = int(self.rng.integers(300, 381))
            absent = int(possible * min(0.6, self.propensity[i]))
            authorised = absent - absent // 4
            marks = []
            for offset in range((last_week[-1] - start).days + 1):
                day = start + dt.timedelta(days=offset)
                marks += ["/", "\\"] if day in last_week else ["#", "#"]
            urn = f"1009{n:02d}"
            (folder / f"CTF_{urn}_{self.plan.urn}_{pupil['pupil_id']}.xml").write_text(
                f"""<?xml version="1.0" encoding="UTF-8"?>
<CTfile>
  <Header>
    <DocumentName>Common Transfer File</DocumentName><CTFversion>25.0</CTFversion>
    <SourceSchool><LEA>{self.plan.la_code}</LEA><Estab>{urn[-4:]}</Estab><URN>{urn}</URN><SchoolName>Previous School {n}</SchoolName></SourceSchool>
    <DestSchool><LEA>{self.plan.la_code}</LEA><Estab>{self.plan.urn[-4:]}</Estab><URN>{self.plan.urn}</URN></DestSchool>
  </Header>
  <CTFpupilData>
    <Pupil>
      <UPN>{pupil['upn']}</UPN><Surname>{pupil['legal_surname']}</Surname><Forename>{pupil['legal_forename']}</Forename>
      <DOB>{pupil['date_of_birth']}</DOB><Gender>{pupil['sex']}</Gender>
      <Attendance>
        <YearData>
          <Year>{previous_year}</Year>
          <SessionsPossible>{possible}</SessionsPossible><SessionsAttended>{possible - absent}</SessionsAttended>
          <SessionsAuthorised>{authorised}</SessionsAuthorised><SessionsUnauthorised>{absent - authorised}</SessionsUnauthorised>
          <AttendSessions>
            <AttendanceStartDate>{start.isoformat()}</AttendanceStartDate>
            <AttendanceMarks>{''.join(marks)}</AttendanceMarks>
          </AttendSessions>
        </YearData>
      </Attendance>
    </Pupil>
  </CTFpupilData>
</CTfile>
""", encoding="utf-8")
        return len(joiners)

    def attainment(self):
        """KS2 and KS4 results for pupils who finished Year 6 or Year 11 in a generated year.

        Outcomes fall with that year's absence and with disadvantage, as in the
        national data (seed 001 shows P8 falling across attendance bands).
        """
        rng = self.rng
        for (i, year), (possible, absent) in sorted(self.tally.items()):
            if possible == 0 or year >= academic_year_start(self.as_of):
                continue  # results exist only for completed years
            year_group = self._year_group_in(i, dt.date(year + 1, 6, 1), {})
            if year_group not in ("6", "11"):
                continue
            absence = absent / possible
            pupil = self.pupils[i]
            disadvantage = 1.0 if pupil["pupil_premium"] else 0.0
            sen = {"N": 0.0, "K": 1.0, "E": 2.5}[pupil["sen_provision"]]
            row = {"school_urn": self.plan.urn, "pupil_id": pupil["pupil_id"], "academic_year": year,
                   "attainment_8": "", "progress_8": "", "english_maths_grade_4_plus": "",
                   "english_maths_grade_5_plus": "", "ks2_reading_writing_maths_expected": ""}
            if year_group == "11":
                a8 = float(np.clip(50 - 110 * (absence - 0.07) - 6 * disadvantage - 5 * sen + rng.normal(0, 11), 0, 90))
                row.update(key_stage="KS4", attainment_8=f"{a8:.1f}",
                           english_maths_grade_4_plus=bool(rng.random() < 1 / (1 + np.exp(-(a8 - 40) / 6))),
                           english_maths_grade_5_plus=bool(rng.random() < 1 / (1 + np.exp(-(a8 - 50) / 6))))
                if year not in NO_PROGRESS_8_YEARS:
                    row["progress_8"] = f"{(a8 - 46) / 10 + rng.normal(0, 0.4):.2f}"
            else:
                logit = 0.6 - 12 * (absence - 0.05) - 0.7 * disadvantage - 0.9 * sen
                row.update(key_stage="KS2", ks2_reading_writing_maths_expected=bool(rng.random() < 1 / (1 + np.exp(-logit))))
            yield row


def _csv_value(value) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _write_csv(path: Path, columns: list[str], rows) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row if isinstance(row, list) else [_csv_value(row[c]) for c in columns])
            count += 1
    return count


def generate_trust(
    out_dir: Path,
    n_schools: int = PRESETS["default"],
    seed: int = 2026,
    as_of: dt.date | None = None,
    history_years: int = 2,
    defects: bool = True,
    progress: bool = True,
    pupils_on_roll: int | None = None,
) -> dict:
    """Write a demo trust under ``out_dir``; return its manifest.

    The export for each school is dated the day after ``as_of`` (the night's
    extract holds registers up to and including ``as_of``) and holds every
    generated academic year.
    """
    as_of = as_of or dt.date.today() - dt.timedelta(days=1)
    extract_date = as_of + dt.timedelta(days=1)
    out_dir = Path(out_dir).resolve()
    school_rngs = [np.random.default_rng(child_seed) for child_seed in np.random.SeedSequence(seed).spawn(n_schools)]
    plans = plan_schools(n_schools, np.random.default_rng(seed), school_rngs, pupils_on_roll)
    first_year = academic_year_start(as_of) - (history_years - 1)
    manifest = {"seed": seed, "as_of": as_of.isoformat(), "extract_date": extract_date.isoformat(),
                "first_academic_year": first_year, "schools": {}}
    bar = tqdm(total=n_schools, desc="Generating demo trust", unit="school", disable=not progress)
    defect_schools = {"missing_marks": plans[0].urn, "invalid_code": plans[-1].urn} if defects and n_schools >= 2 else {}
    for plan, rng in zip(plans, school_rngs):
        gen = _SchoolGenerator(plan, rng, first_year, as_of)
        gen.build_pupils()
        days, closures, trip_days = [], set(), {}
        for year in range(first_year, academic_year_start(as_of) + 1):
            year_days = [d for d in school_days(year) if d <= as_of]
            days += year_days
            if len(year_days) > 40:
                closures.add(year_days[int(rng.integers(20, len(year_days)))])  # e.g. a snow day or polling day
            for year_group in gen.year_groups:
                trip_days.setdefault(year_group, set()).update(
                    year_days[int(j)] for j in rng.integers(0, max(1, len(year_days)), size=min(2, len(year_days)))
                )
        folder = out_dir / "drop" / plan.urn / extract_date.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        marks_rows = gen.marks(days, closures, trip_days)
        injected = {}
        # Defects go on the last day the school was open: on a closure day every mark is '#'.
        last_open_day = max(d for d in days if d not in closures)
        if plan.urn == defect_schools.get("missing_marks"):
            marks_rows = _blank_register(marks_rows, last_open_day, gen, injected)
        if plan.urn == defect_schools.get("invalid_code"):
            marks_rows = _one_invalid_code(marks_rows, last_open_day, injected)
        n_marks = _write_csv(folder / "marks.csv", MARK_COLUMNS, marks_rows)
        n_pupils = _write_csv(folder / "pupils.csv", PUPIL_COLUMNS, gen.pupils)
        _write_csv(folder / "enrolments.csv", ENROLMENT_COLUMNS, gen.enrolments)
        n_results = _write_csv(folder / "attainment.csv", ATTAINMENT_COLUMNS, gen.attainment())
        n_transfers = gen.write_transfer_files(folder / "ctf")
        manifest["schools"][plan.urn] = {
            "name": plan.name, "phase": plan.phase, "pupils": n_pupils,
            "pupils_on_roll": sum(1 for e in gen.enrolments if not e["leaving_date"] or e["leaving_date"] > as_of.isoformat()),
            "marks": n_marks, "attainment_results": n_results,
            "transfer_files": n_transfers,
            "extract_folder": str(folder.relative_to(out_dir)), **injected,
        }
        bar.update(1)
    bar.close()
    config = {
        "trust_name": "Demo Learning Trust (synthetic)",
        "data_team_contacts": ["data.team@demo-trust.example.org"],
        "outputs": {"outbox_dir": "outbox", "landing_dir": "landing", "quarantine_dir": "quarantine"},
        "schools": [
            {
                "urn": p.urn, "name": p.name, "phase": p.phase, "la_code": p.la_code,
                "source": {"type": "csv_drop", "path": f"drop/{p.urn}"},
                "lead_contacts": [f"attendance.lead@{p.name.lower().replace(' ', '-')}.example.org"],
            }
            for p in plans
        ],
    }
    (out_dir / "trust.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _blank_register(rows, day: dt.date, gen: _SchoolGenerator, injected: dict):
    """Defect: one form's PM register on the last day was never taken (marks left blank)."""
    form = gen.pupils[0]["form"]
    in_form = {p["pupil_id"] for p in gen.pupils if p["form"] == form}
    blanked = 0
    for row in rows:
        if row[2] == day.isoformat() and row[3] == "PM" and row[1] in in_form and row[4] != "#":
            row = row[:4] + ["", "", ""]
            blanked += 1
        yield row
    injected["missing_marks"] = {"date": day.isoformat(), "session": "PM", "form": form, "count": blanked}


def _one_invalid_code(rows, day: dt.date, injected: dict):
    """Defect: a retired code entered after it was withdrawn."""
    done = False
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if not done and row[2] == day.isoformat() and row[4] in ("/", "\\"):
            row = row[:4] + [INVALID_CODE, "", ""]
            injected["invalid_code"] = {"pupil_id": row[1], "date": day.isoformat(), "code": INVALID_CODE, "line": line}
            done = True
        yield row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a synthetic demo trust (no real pupil data).")
    parser.add_argument("--out", type=Path, default=var_dir() / "demo", help="output folder")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--preset", choices=PRESETS, default="default")
    size.add_argument("--schools", type=int)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, help="last register date (default: yesterday)")
    parser.add_argument("--history-years", type=int, default=2, help="academic years of registers, current included")
    parser.add_argument("--no-defects", action="store_true", help="leave out the injected data defects")
    args = parser.parse_args(argv)
    manifest = generate_trust(
        args.out, n_schools=args.schools or PRESETS[args.preset], seed=args.seed, as_of=args.as_of,
        history_years=args.history_years, defects=not args.no_defects,
        pupils_on_roll=None if args.schools else PRESET_PUPILS_ON_ROLL.get(args.preset),
    )
    schools = manifest["schools"].values()
    print(f"Wrote {len(schools)} schools, {sum(s['pupils_on_roll'] for s in schools):,} pupils on roll "
          f"({sum(s['pupils'] for s in schools):,} with leavers), "
          f"{sum(s['marks'] for s in schools):,} marks to {args.out}")


if __name__ == "__main__":
    main()
