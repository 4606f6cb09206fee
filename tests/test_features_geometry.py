"""Straight-line distance and bearing: cardinal directions and a published known answer."""

from __future__ import annotations

import math

import polars as pl
import pytest

from data_contracts.geo import EARTH_RADIUS_KM
from features.geometry import bearing_deg, haversine_km

# Land's End -> John o' Groats (movable-type.co.uk): 968.9 km, initial bearing 009°07'11"
LANDS_END = (50.06639, -5.71472)
JOHN_O_GROATS = (58.64389, -3.07)


def _legs(pairs: list[tuple[tuple[float, float], tuple[float, float]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "lat1": [a[0] for a, _ in pairs],
            "lng1": [a[1] for a, _ in pairs],
            "lat2": [b[0] for _, b in pairs],
            "lng2": [b[1] for _, b in pairs],
        }
    )


def test_one_degree_along_the_equator_and_a_meridian() -> None:
    one_degree_km = 2 * math.pi * EARTH_RADIUS_KM / 360  # 111.19508 km
    frame = _legs([((0, 0), (0, 1)), ((0, 0), (1, 0)), ((0, 0), (0, -1)), ((0, 0), (-1, 0))])
    km = frame.select(haversine_km("lat1", "lng1", "lat2", "lng2")).to_series().to_list()
    assert km == pytest.approx([one_degree_km] * 4, rel=1e-12)
    assert one_degree_km == pytest.approx(111.19508, abs=1e-5)
    bearings = frame.select(bearing_deg("lat1", "lng1", "lat2", "lng2")).to_series().to_list()
    assert bearings == pytest.approx([90.0, 0.0, 270.0, 180.0], abs=1e-9)


def test_lands_end_to_john_o_groats() -> None:
    frame = _legs([(LANDS_END, JOHN_O_GROATS), (JOHN_O_GROATS, JOHN_O_GROATS)])
    km = frame.select(haversine_km("lat1", "lng1", "lat2", "lng2")).to_series().to_list()
    bearing = frame.select(bearing_deg("lat1", "lng1", "lat2", "lng2")).to_series().to_list()
    assert km[0] == pytest.approx(968.9, abs=0.1)
    assert bearing[0] == pytest.approx(9 + 7 / 60 + 11 / 3600, abs=1e-3)
    # a point to itself: zero distance, bearing defined as 0
    assert km[1] == 0.0
    assert bearing[1] == 0.0
