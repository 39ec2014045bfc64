"""The attendance-code table, read from the dbt seed so Python and SQL agree."""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .paths import CODE_SEED

# The 2024 code set came into force on this date (Education (Pupil Registration)
# (England) Regulations 2024); validation splits a batch's marks at it.
CODES_2024_IN_FORCE_FROM = dt.date(2024, 8, 19)


@dataclass(frozen=True)
class AttendanceCode:
    code: str
    category: str
    counts_as_possible: bool
    valid_from: dt.date
    valid_to: dt.date | None  # exclusive

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


@lru_cache(maxsize=4)
def code_table(path: Path = CODE_SEED) -> tuple[AttendanceCode, ...]:
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(
            AttendanceCode(
                code=row["attendance_code"],
                category=row["category"],
                counts_as_possible=row["counts_as_possible"] == "true",
                valid_from=dt.date.fromisoformat(row["valid_from"]),
                valid_to=dt.date.fromisoformat(row["valid_to"]) if row["valid_to"] else None,
            )
            for row in csv.DictReader(f)
        )


def codes_valid_between(start: dt.date, end: dt.date) -> list[str]:
    """Codes valid on at least one day of [start, end)."""
    return sorted(
        {c.code for c in code_table() if c.valid_from < end and (c.valid_to is None or c.valid_to > start)}
    )
