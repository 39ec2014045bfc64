"""A hand-built school whose figures are worked out by hand in the tests.

School 900999 has two pupils and ten school days, Monday 7 to Friday 18
September 2026 (20 sessions each):

Pupil HB-1 ("Ada Lovelace"):
  days 1-6  /  \\      12 present
  day 7     L  \\       2 present (L is present, and a late)
  day 8     V  V       2 approved educational activity (counts as attendance)
  day 9     I  I       2 authorised absence
  day 10    O  D       1 unauthorised absence; D (dual registered) is not possible
  possible = 20 - 1 (D) = 19; attended = 12 + 2 + 2 = 16; absent = 2 + 1 = 3
  attendance = 16/19 = 84.21 %; absence = 3/19 = 15.79 % -> PA (>= 10 %), not SA (< 50 %)

Pupil HB-2 ("Alan Turing"):
  days 1-9  /  \\      18 present
  day 10    I  I       2 authorised absence
  possible = 20; absence = 2/20 = exactly 10 % -> PA (the threshold is inclusive)
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from trust_attendance.export_layout import ENROLMENT_COLUMNS, MARK_COLUMNS, PUPIL_COLUMNS

URN = "900999"
DAYS = [dt.date(2026, 9, 7) + dt.timedelta(days=i) for i in range(12) if (dt.date(2026, 9, 7) + dt.timedelta(days=i)).weekday() < 5]
MARKS = {
    "HB-1": [("/", "\\")] * 6 + [("L", "\\"), ("V", "V"), ("I", "I"), ("O", "D")],
    "HB-2": [("/", "\\")] * 9 + [("I", "I")],
}
NAMES = {"HB-1": ("Ada", "Lovelace"), "HB-2": ("Alan", "Turing")}


def write_school(trust_dir: Path, extract_date: dt.date) -> None:
    folder = trust_dir / "drop" / URN / extract_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(MARK_COLUMNS)]
    for pupil, pairs in MARKS.items():
        for day, (am, pm) in zip(DAYS, pairs, strict=True):
            minutes = "5" if am == "L" else ""
            rows.append(f"{URN},{pupil},{day},AM,{am},{minutes},")
            rows.append(f"{URN},{pupil},{day},PM,{pm},,")
    (folder / "marks.csv").write_text("\n".join(rows) + "\n")
    pupils = [",".join(PUPIL_COLUMNS)]
    for pupil, (forename, surname) in NAMES.items():
        pupils.append(f"{URN},{pupil},X99999926001{pupil[-1]},{forename},{surname},2019-10-0{pupil[-1]},F,WBRI,2,2A,"
                      "Y,Y,Y,N,N,N,N,N,N")
    (folder / "pupils.csv").write_text("\n".join(pupils) + "\n")
    enrolments = [",".join(ENROLMENT_COLUMNS)] + [f"{URN},{p},2025-09-03,,C" for p in MARKS]
    (folder / "enrolments.csv").write_text("\n".join(enrolments) + "\n")
    config_path = trust_dir / "trust.yml"
    config = yaml.safe_load(config_path.read_text())
    config["schools"] = [s for s in config["schools"] if s["urn"] != URN] + [{
        "urn": URN, "name": "Hand-built Test Primary", "phase": "primary", "la_code": "999",
        "source": {"type": "csv_drop", "path": f"drop/{URN}"},
        "lead_contacts": ["lead@hand-built.example.org"],
    }]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
