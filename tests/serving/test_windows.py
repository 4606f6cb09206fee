"""Delivery windows: slot rounding on the customer's clock, known answers including DST and midnight."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from serving.windows import ceil_to_slot, floor_to_slot, slot_window

NAIROBI, BERLIN = ZoneInfo("Africa/Nairobi"), ZoneInfo("Europe/Berlin")


def nbo(hour: int, minute: int, second: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 2, day, hour, minute, second, tzinfo=NAIROBI)


@pytest.mark.parametrize(
    ("lower", "upper", "slot", "expected"),
    [
        (nbo(14, 22, 10), nbo(14, 38, 59), 15, ("14:15", "14:45")),
        (nbo(14, 15), nbo(14, 45), 15, ("14:15", "14:45")),  # on the grid: unchanged
        (nbo(14, 15), nbo(14, 45, 1), 15, ("14:15", "15:00")),  # one second over: next slot
        (nbo(14, 22), nbo(14, 38), 30, ("14:00", "15:00")),
        (nbo(9, 1), nbo(9, 2), 5, ("09:00", "09:05")),
        (nbo(14, 15), nbo(14, 15), 15, ("14:15", "14:30")),  # a point still shows one slot
    ],
)
def test_rounds_outward_to_the_slot_grid(lower, upper, slot, expected) -> None:
    window = slot_window(lower, upper, slot, NAIROBI)
    assert (window.clock(window.start), window.clock(window.end)) == expected
    assert window.start <= lower
    assert window.end >= upper
    assert window.text() == f"arrives between {expected[0]} and {expected[1]}"


def test_a_window_across_midnight_names_both_days() -> None:
    window = slot_window(nbo(23, 50), nbo(0, 20, day=3), 15, NAIROBI)
    assert window.text() == "arrives between 23:45 on 2 Feb and 00:30 on 3 Feb"


def test_a_window_ending_at_midnight_reads_as_one_day() -> None:
    assert slot_window(nbo(23, 40), nbo(23, 59), 15, NAIROBI).text() == "arrives between 23:30 and 00:00"


def test_the_window_is_on_the_customers_clock_whatever_the_input_offset() -> None:
    lower = datetime(2026, 2, 2, 11, 22, tzinfo=UTC)  # 14:22 in Nairobi
    window = slot_window(lower, lower.replace(minute=38), 15, NAIROBI)
    assert window.start.isoformat() == "2026-02-02T14:15:00+03:00"


def test_spring_forward_skips_the_missing_boundaries() -> None:
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC
    before_jump = datetime(2026, 3, 29, 0, 50, tzinfo=UTC)  # 01:50 CET
    assert ceil_to_slot(before_jump, 15, BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    after_jump = datetime(2026, 3, 29, 1, 10, tzinfo=UTC)  # 03:10 CEST
    assert floor_to_slot(after_jump, 120, BERLIN) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET


def test_fall_back_uses_the_repeated_hour() -> None:
    # Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET at 01:00 UTC; 02:00-03:00 happens twice
    # (compared in UTC: Python never calls a time in the repeated hour equal to one in another zone)
    first_pass = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    ceiling = ceil_to_slot(first_pass, 30, BERLIN)
    assert ceiling.astimezone(UTC) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert ceiling.isoformat() == "2026-10-25T02:00:00+01:00"
    second_pass = datetime(2026, 10, 25, 1, 20, tzinfo=UTC)  # 02:20 CET
    assert floor_to_slot(second_pass, 30, BERLIN).astimezone(UTC) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    window = slot_window(first_pass, second_pass, 30, BERLIN)
    assert (window.start.isoformat(), window.end.isoformat()) == (
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    )


@pytest.mark.parametrize("slot", [1, 5, 15, 60, 240])
@pytest.mark.parametrize("zone", ["Africa/Nairobi", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_floor_and_ceil_bracket_every_moment_on_boundaries(slot: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    for minutes in range(0, 3 * 24 * 60, 97):
        moment = datetime(2026, 3, 28, tzinfo=UTC).timestamp() + minutes * 60 + 17
        instant = datetime.fromtimestamp(moment, tz=UTC)
        lo, hi = floor_to_slot(instant, slot, tz), ceil_to_slot(instant, slot, tz)
        assert lo.astimezone(UTC) <= instant <= hi.astimezone(UTC)
        for edge in (lo, hi):
            local = edge.astimezone(tz)
            assert (local.hour * 60 + local.minute) % slot == 0
            assert local.second == 0


@pytest.mark.parametrize(
    ("zone", "lower_utc", "upper_utc", "expected"),
    [
        # clocks go back: New York 2026-11-01 02:00 EDT -> 01:00 EST at 06:00 UTC (01:30 happens twice)
        (
            "America/New_York",
            (2026, 11, 1, 5, 30),
            (2026, 11, 1, 6, 20),
            "arrives between 01:30 EDT and 01:30 EST",
        ),
        # London 2026-10-25 02:00 BST -> 01:00 GMT at 01:00 UTC
        (
            "Europe/London",
            (2026, 10, 25, 0, 30),
            (2026, 10, 25, 1, 20),
            "arrives between 01:30 BST and 01:30 GMT",
        ),
        # Sydney 2026-04-05 03:00 AEDT -> 02:00 AEST at 16:00 UTC the day before
        (
            "Australia/Sydney",
            (2026, 4, 4, 15, 30),
            (2026, 4, 4, 16, 20),
            "arrives between 02:30 AEDT and 02:30 AEST",
        ),
        # clocks go forward: New York 2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC
        (
            "America/New_York",
            (2026, 3, 8, 6, 40),
            (2026, 3, 8, 7, 10),
            "arrives between 01:30 EST and 03:15 EDT",
        ),
        (
            "Europe/London",
            (2026, 3, 29, 0, 40),
            (2026, 3, 29, 1, 10),
            "arrives between 00:30 GMT and 02:15 BST",
        ),
        (
            "Australia/Sydney",
            (2026, 10, 3, 15, 40),
            (2026, 10, 3, 16, 10),
            "arrives between 01:30 AEST and 03:15 AEDT",
        ),
        # a window inside one hour that happens twice is named too, even with one offset
        (
            "America/New_York",
            (2026, 11, 1, 5, 5),
            (2026, 11, 1, 5, 20),
            "arrives between 01:00 EDT and 01:30 EDT",
        ),
        # an ordinary window is not
        ("America/New_York", (2026, 11, 2, 5, 5), (2026, 11, 2, 5, 20), "arrives between 00:00 and 00:30"),
    ],
)
def test_clock_texts_are_unambiguous_across_clock_changes(zone, lower_utc, upper_utc, expected) -> None:
    window = slot_window(
        datetime(*lower_utc, tzinfo=UTC),
        datetime(*upper_utc, tzinfo=UTC),
        15 if "15" in expected else 30,
        ZoneInfo(zone),
    )
    assert window.text() == expected
