"""Local clock in the leg's own zone (Nairobi UTC+3, New York with DST) and the holiday calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from features.calendar import cyclic, with_local_time
from features.holidays import easter_sunday, kenya_holidays, us_federal_holidays
from features.legs import zones_of
from features.spec import FeatureSpec

NAIROBI, NEW_YORK = "Africa/Nairobi", "America/New_York"
NIGHT, MORNING_RUSH, MIDDAY, EVENING_RUSH, EVENING = range(5)

# (UTC start, zone) -> (local date, hour, minute of day, ISO weekday, weekend, holiday, band)
CASES = [
    # Nairobi is UTC+3 all year: Saturday 21:30 UTC is already Sunday locally
    ((2024, 3, 9, 21, 30), NAIROBI, (date(2024, 3, 10), 0, 30, 7, 1, 0, NIGHT)),
    # New York springs forward on 2024-03-10 at 02:00 local: EST (UTC-5) before, EDT (UTC-4) after
    ((2024, 3, 10, 6, 30), NEW_YORK, (date(2024, 3, 10), 1, 90, 7, 1, 0, NIGHT)),
    ((2024, 3, 10, 7, 30), NEW_YORK, (date(2024, 3, 10), 3, 210, 7, 1, 0, NIGHT)),
    ((2024, 3, 11, 12, 15), NEW_YORK, (date(2024, 3, 11), 8, 495, 1, 0, 0, MORNING_RUSH)),
    # Independence Day, a Thursday, reads as a Sunday (the day type of holidays, FeatureSpec.holiday_weekday)
    ((2024, 7, 4, 16, 0), NEW_YORK, (date(2024, 7, 4), 12, 720, 7, 1, 1, MIDDAY)),
    # the same instant is Jamhuri Day in Nairobi but still 11 December in New York
    ((2024, 12, 11, 21, 30), NAIROBI, (date(2024, 12, 12), 0, 30, 7, 1, 1, NIGHT)),
    ((2024, 12, 11, 21, 30), NEW_YORK, (date(2024, 12, 11), 16, 990, 3, 0, 0, EVENING_RUSH)),
    ((2024, 12, 11, 17, 5), NAIROBI, (date(2024, 12, 11), 20, 1205, 3, 0, 0, EVENING)),
]


def _local_clock(cases: list) -> pl.DataFrame:
    legs = pl.DataFrame(
        {
            "start_ts": [datetime(*utc, tzinfo=UTC) for utc, _, _ in cases],
            "tz": [zone for _, zone, _ in cases],
        },
        schema={"start_ts": pl.Datetime("us", "UTC"), "tz": pl.String},
    )
    return with_local_time(legs.lazy(), zones_of(legs.lazy()), FeatureSpec()).collect()


def test_local_clock_in_two_zones_with_dst() -> None:
    out = _local_clock(CASES)
    columns = [
        "local_date",
        "local_hour",
        "minute_of_day",
        "weekday",
        "is_weekend",
        "is_holiday",
        "hour_band",
    ]
    got = list(out.select(columns).iter_rows())
    assert got == [expected for _, _, expected in CASES]


def test_rows_keep_their_order_and_a_single_zone_works() -> None:
    out = _local_clock(CASES[3:5])
    assert out["local_hour"].to_list() == [8, 12]


def test_cyclic_encoding_known_angles() -> None:
    frame = pl.DataFrame({"minute": [0, 360, 720, 1080]})
    sin, cos = cyclic("minute", 1440)
    values = frame.select(sin.alias("s"), cos.alias("c"))
    assert values["s"].to_list() == pytest.approx([0, 1, 0, -1], abs=1e-12)
    assert values["c"].to_list() == pytest.approx([1, 0, -1, 0], abs=1e-12)


def test_default_band_of_each_hour() -> None:
    expected = (
        [NIGHT] * 6 + [MORNING_RUSH] * 4 + [MIDDAY] * 6 + [EVENING_RUSH] * 4 + [EVENING] * 2 + [NIGHT] * 2
    )
    assert FeatureSpec().band_of_hour() == expected


@pytest.mark.parametrize(
    ("year", "easter"), [(2019, date(2019, 4, 21)), (2024, date(2024, 3, 31)), (2025, date(2025, 4, 20))]
)
def test_easter_known_answers(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_us_federal_holidays_2024_and_an_observed_day() -> None:
    assert us_federal_holidays(2024) == [
        date(2024, 1, 1),
        date(2024, 1, 15),
        date(2024, 2, 19),
        date(2024, 5, 27),
        date(2024, 6, 19),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 10, 14),
        date(2024, 11, 11),
        date(2024, 11, 28),
        date(2024, 12, 25),
    ]
    # 4 July 2026 is a Saturday: observed on Friday 3 July
    assert date(2026, 7, 3) in us_federal_holidays(2026)


def test_kenya_holidays_2019_and_a_sunday_moved_to_monday() -> None:
    assert kenya_holidays(2019) == [
        date(2019, 1, 1),
        date(2019, 4, 19),
        date(2019, 4, 22),
        date(2019, 5, 1),
        date(2019, 6, 1),
        date(2019, 10, 20),
        date(2019, 10, 21),
        date(2019, 12, 12),
        date(2019, 12, 25),
        date(2019, 12, 26),
    ]
    # Madaraka Day 2025 is a Sunday
    assert date(2025, 6, 2) in kenya_holidays(2025)


def test_zones_of_a_small_frame_and_a_lazy_query_agree() -> None:
    frame = pl.DataFrame({"tz": ["Europe/Paris", None, "Africa/Nairobi", "Europe/Paris"]})
    assert zones_of(frame) == zones_of(frame.lazy()) == ["Africa/Nairobi", "Europe/Paris"]


def test_holidays_can_keep_their_calendar_weekday() -> None:
    spec = FeatureSpec(holiday_weekday=None)
    legs = pl.DataFrame(
        {"start_ts": [datetime(2024, 7, 4, 16, 0, tzinfo=UTC)], "tz": [NEW_YORK]},
        schema={"start_ts": pl.Datetime("us", "UTC"), "tz": pl.String},
    )
    out = with_local_time(legs.lazy(), [NEW_YORK], spec).collect()
    assert out.select("weekday", "is_weekend", "is_holiday").row(0) == (4, 0, 1)
