"""The /eta answer's arithmetic: supported levels, arrival clocks (two implementations agree)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import TypeAdapter

from serving import intervals
from serving.errors import InvalidRequest
from serving.schemas import LegEta

TAUS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


@pytest.mark.parametrize(
    ("quantiles", "widest"), [(TAUS, 0.9), ([0.1, 0.5, 0.9], 0.8), ([0.025, 0.5, 0.975], 0.95)]
)
def test_the_widest_supported_level(quantiles, widest) -> None:
    assert intervals.supported_level(quantiles) == widest


def test_levels_beyond_the_trained_quantiles_are_refused_by_index() -> None:
    intervals.check_levels([0.5, 0.8, 0.9], TAUS)
    with pytest.raises(InvalidRequest) as info:
        intervals.check_levels([0.8, 0.91], TAUS)
    assert info.value.loc == ("levels", 1)
    with pytest.raises(InvalidRequest) as info:
        intervals.check_levels([0.95], TAUS, loc=("confidence",), indexed=False)
    assert info.value.loc == ("confidence",)


def test_arrival_is_whole_seconds_on_the_zones_clock() -> None:
    departure = datetime(2026, 1, 20, 6, 30, 0, 400_000, tzinfo=UTC)
    assert (
        intervals.arrival(departure, 599.7, ZoneInfo("Africa/Nairobi")).isoformat()
        == "2026-01-20T09:40:00+03:00"
    )


@pytest.mark.parametrize("python_max", [0, 10_000])
def test_local_clocks_agree_between_polars_and_datetime(monkeypatch, python_max: int) -> None:
    rng = np.random.default_rng(0)
    zones = [
        "Africa/Nairobi",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "UTC",
        "Australia/Lord_Howe",
    ]
    epoch = rng.integers(1_760_000_000, 1_800_000_000, size=(len(zones) * 20, 5))
    rows = [zones[i % len(zones)] for i in range(len(epoch))]
    monkeypatch.setattr(intervals, "PYTHON_CLOCKS_MAX", python_max)
    text = intervals.local_iso(epoch, rows)
    expected = [
        [datetime.fromtimestamp(int(s), ZoneInfo(z)).isoformat() for s in row]
        for row, z in zip(epoch, rows, strict=True)
    ]
    assert text.tolist() == expected


def test_the_legs_answer_is_ordered_and_monotone() -> None:
    q = np.array([[300.0, 320.0, 400.0, 500.0, 620.0, 800.0, 900.0]])
    (leg,) = json.loads(
        intervals.legs_json(q, TAUS, [0.9, 0.5], np.array([1_768_890_600.0]), ["Africa/Nairobi"], ["x"])
    )
    assert leg["median_s"] == 500.0
    assert [(i["level"], i["lower_s"], i["upper_s"]) for i in leg["intervals"]] == [
        (0.9, 300.0, 900.0),
        (0.5, 400.0, 620.0),
    ]
    assert leg["median_arrival"] == "2026-01-20T09:38:20+03:00"
    assert leg["intervals"][0]["latest_arrival"] == "2026-01-20T09:45:00+03:00"  # 06:30 UTC + 900 s


def test_the_dict_and_column_writers_give_the_same_bytes(monkeypatch) -> None:
    """A few legs are written through dicts, a batch through polars columns: same JSON, schema-valid."""
    rng = np.random.default_rng(5)
    n = 300
    q = np.sort(rng.uniform(30, 5000, size=(n, len(TAUS))), axis=1)
    q[0] = [60.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]  # whole seconds and ties
    zones = [("Africa/Nairobi", "Europe/Berlin", "Australia/Lord_Howe")[i % 3] for i in range(n)]
    departures = 1_760_000_000 + rng.uniform(0, 4e7, size=n)  # across DST changes
    leg_ids = [None if i % 7 == 0 else f"leg-{i}" for i in range(n)]
    written = {}
    for path, limit in (("dicts", n), ("columns", 0)):
        monkeypatch.setattr(intervals, "PYTHON_LEGS_MAX", limit)
        written[path] = intervals.legs_json(q, TAUS, [0.8, 0.5, 0.9], departures, zones, leg_ids)
    assert written["dicts"] == written["columns"]
    legs = TypeAdapter(list[LegEta]).validate_json(written["columns"])
    assert [leg.leg_id for leg in legs] == leg_ids
    for leg, row, start, zone in zip(legs, q, departures, zones, strict=True):
        assert leg.quantiles_s == [round(v, 1) for v in row]
        assert [i.level for i in leg.intervals] == [0.8, 0.5, 0.9]
        ninety = leg.intervals[2]
        assert (ninety.lower_s, ninety.upper_s) == (round(row[0], 1), round(row[-1], 1))
        expected = datetime.fromtimestamp(round(start + round(row[-1], 1)), ZoneInfo(zone))
        assert ninety.latest_arrival == expected
        assert ninety.latest_arrival.utcoffset() == expected.utcoffset()
