"""School calendars: which days a school meets, by academic year."""
from __future__ import annotations

import datetime as dt


def academic_year_start(day: dt.date) -> int:
    """The calendar year an academic year starts in (1 Sep to 31 Aug)."""
    return day.year if day.month >= 9 else day.year - 1


def academic_year_label(start_year: int) -> str:
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def _monday_of_week(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _first_weekday_on_or_after(day: dt.date, weekday: int) -> dt.date:
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def _easter(year: int) -> dt.date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    return dt.date(year, month, (h + l_ - 7 * m + 114) % 31 + 1)


def school_days(start_year: int) -> list[dt.date]:
    """Weekdays a typical English school meets in an academic year.

    Three terms with half-terms, Christmas and Easter holidays and the May
    bank holiday, giving about 190 days (380 sessions), as the 2024
    regulations require.
    """
    y0, y1 = start_year, start_year + 1
    easter = _easter(y1)
    terms = [
        (dt.date(y0, 9, 3), dt.date(y0, 12, 19)),
        (_first_weekday_on_or_after(dt.date(y1, 1, 5), 0), easter - dt.timedelta(days=3)),
        (easter + dt.timedelta(days=15), dt.date(y1, 7, 22)),
    ]
    half_terms = [_monday_of_week(dt.date(y0, 10, 27)), _monday_of_week(dt.date(y1, 2, 16)),
                  _monday_of_week(dt.date(y1, 5, 28))]
    holidays = {h + dt.timedelta(days=i) for h in half_terms for i in range(5)}
    holidays.add(_first_weekday_on_or_after(dt.date(y1, 5, 1), 0))  # early May bank holiday
    days = []
    for start, end in terms:
        day = start
        while day <= end:
            if day.weekday() < 5 and day not in holidays:
                days.append(day)
            day += dt.timedelta(days=1)
    return days
