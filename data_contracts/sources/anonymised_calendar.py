"""Dates for sources that publish only a day of month and a weekday (month and year anonymised).

A row is placed in the first reference month where its day exists and falls on its weekday; a row that
fits none gets a null date, so its start_ts is null and the contract quarantines it (unparseable_timestamp).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence

import polars as pl

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_starts(months: str | Sequence[str]) -> tuple[dt.date, ...]:
    """'2019-08' or a sequence of them -> the first day of each month; raise on a malformed month."""
    names = [months] if isinstance(months, str) else list(months)
    if not names:
        raise ValueError("at least one reference month ('YYYY-MM') is needed")
    starts = []
    for name in names:
        match = _MONTH.match(name.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"reference month must look like '2019-08', got {name!r}")
        starts.append(dt.date(int(match.group(1)), int(match.group(2)), 1))
    return tuple(starts)


def iso_weekday_from_sunday_first(weekday: pl.Expr) -> pl.Expr:
    """Weekday numbered Sunday = 1 .. Saturday = 7 -> ISO numbering Monday = 1 .. Sunday = 7."""
    return pl.when(weekday.is_between(1, 7)).then((weekday + 5) % 7 + 1)


def date_from_day_and_weekday(day: pl.Expr, iso_weekday: pl.Expr, months: Sequence[dt.date]) -> pl.Expr:
    """The date of `day` in the first of `months` where it exists and falls on `iso_weekday` (Mo = 1)."""
    candidates = []
    for start in months:
        days_in_month = calendar.monthrange(start.year, start.month)[1]
        date = pl.lit(start) + pl.duration(days=day - 1)
        fits = day.is_between(1, days_in_month) & (date.dt.weekday() == iso_weekday)
        candidates.append(pl.when(fits).then(date))
    return pl.coalesce(candidates).cast(pl.Date)
