"""Default public-holiday calendars for the zones the product serves, generated from the statutory rules.

The spec stores the resulting dates (zone -> dates), so a trained model carries the exact calendar it saw.
Only rule-based holidays are listed: lunar ones (Eid al-Fitr in Kenya) need an explicit date per year;
add them to `FeatureSpec.holidays` when a zone needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

DEFAULT_YEARS = range(2015, 2031)
MONDAY, THURSDAY = 0, 3  # date.weekday() numbering
SATURDAY, SUNDAY = 5, 6


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    day = (h + el - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) given weekday of a month; n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def us_federal_holidays(year: int) -> list[date]:
    """US federal holidays of a year, with the Friday/Monday observed day of fixed dates on weekends."""
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    if year >= 2021:
        fixed.append(date(year, 6, 19))
    observed = []
    for day in fixed:
        if day.weekday() == SATURDAY:
            observed.append(day - timedelta(days=1))
        elif day.weekday() == SUNDAY:
            observed.append(day + timedelta(days=1))
    floating = [
        nth_weekday(year, 1, MONDAY, 3),  # Martin Luther King Jr. Day
        nth_weekday(year, 2, MONDAY, 3),  # Washington's Birthday
        nth_weekday(year, 5, MONDAY, -1),  # Memorial Day
        nth_weekday(year, 9, MONDAY, 1),  # Labor Day
        nth_weekday(year, 10, MONDAY, 2),  # Columbus Day
        nth_weekday(year, 11, THURSDAY, 4),  # Thanksgiving
    ]
    return sorted({*fixed, *observed, *floating})


def kenya_holidays(year: int) -> list[date]:
    """Kenyan public holidays with a fixed or Easter-based date; a Sunday holiday moves to Monday too."""
    easter = easter_sunday(year)
    fixed = [
        date(year, 1, 1),  # New Year
        date(year, 5, 1),  # Labour Day
        date(year, 6, 1),  # Madaraka Day
        date(year, 10, 20),  # Mashujaa Day
        date(year, 12, 12),  # Jamhuri Day
        date(year, 12, 25),  # Christmas
        date(year, 12, 26),  # Boxing Day
    ]
    observed = [day + timedelta(days=1) for day in fixed if day.weekday() == SUNDAY]
    return sorted({*fixed, *observed, easter - timedelta(days=2), easter + timedelta(days=1)})


def default_holidays(years: Iterable[int] = DEFAULT_YEARS) -> dict[str, tuple[date, ...]]:
    """Zone -> holiday dates for the default zones (New York: US federal; Nairobi: Kenya)."""
    years = list(years)
    return {
        "America/New_York": tuple(day for year in years for day in us_federal_holidays(year)),
        "Africa/Nairobi": tuple(day for year in years for day in kenya_holidays(year)),
    }
