from __future__ import annotations

import datetime as dt

from trust_attendance.codes import CODES_2024_IN_FORCE_FROM, code_table, codes_valid_between
from trust_attendance.school_calendar import academic_year_start, school_days


def test_2024_code_set_replaces_retired_codes():
    after = set(codes_valid_between(CODES_2024_IN_FORCE_FROM, dt.date.max))
    before = set(codes_valid_between(dt.date.min, CODES_2024_IN_FORCE_FROM))
    assert {"J1", "C1", "C2", "K", "Q", "Y1", "Y7"} <= after
    assert not {"H", "F", "J", "Y"} & after
    assert {"H", "F", "J", "Y"} <= before
    assert not {"J1", "C2", "K", "Q"} & before


def test_every_code_of_the_rules_doc_is_in_the_seed_with_its_category():
    # Rules doc, "National codes in force from 19 August 2024".
    expected = {
        "/": "present", "\\": "present", "L": "present", "K": "attending_elsewhere",
        "V": "approved_educational_activity", "P": "approved_educational_activity",
        "W": "approved_educational_activity", "B": "approved_educational_activity",
        "C1": "authorised_absence", "M": "authorised_absence", "J1": "authorised_absence", "S": "authorised_absence",
        "C2": "authorised_absence", "C": "authorised_absence", "T": "authorised_absence", "R": "authorised_absence",
        "I": "authorised_absence", "E": "authorised_absence", "G": "unauthorised_absence",
        "N": "unauthorised_absence", "O": "unauthorised_absence", "U": "unauthorised_absence",
        "D": "not_counted", "X": "not_counted", "Q": "not_counted", "Z": "not_counted", "#": "not_counted",
        **{f"Y{i}": "not_counted" for i in range(1, 8)},
    }
    day = dt.date(2025, 1, 6)
    in_force = {c.code: c for c in code_table() if c.valid_on(day)}
    assert {code: c.category for code, c in in_force.items()} == expected
    assert all(c.counts_as_possible == (c.category != "not_counted") for c in in_force.values())


def test_historic_codes_keep_their_meaning():
    on = lambda code, day: next(c for c in code_table() if c.code == code and c.valid_on(day))  # noqa: E731
    assert on("J", dt.date(2023, 5, 1)).category == "approved_educational_activity"
    assert on("H", dt.date(2023, 5, 1)).category == "authorised_absence"
    assert on("X", dt.date(2021, 1, 11)).counts_as_possible  # COVID non-attendance, 2020/21
    assert not on("X", dt.date(2023, 1, 9)).counts_as_possible


def test_school_calendar_has_about_190_weekdays_and_keeps_holidays():
    for year in (2024, 2025, 2026):
        days = school_days(year)
        assert 185 <= len(days) <= 195
        assert all(d.weekday() < 5 for d in days)
        assert all(academic_year_start(d) == year for d in days)
        assert dt.date(year, 12, 25) not in days
        assert not any(d.month == 8 for d in days)
    # October half-term week of 2026 (26-30 October) is a holiday.
    assert not any(dt.date(2026, 10, 26) <= d <= dt.date(2026, 10, 30) for d in school_days(2026))
