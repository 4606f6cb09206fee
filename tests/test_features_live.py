"""The live executor computes exactly what the polars executor computes: drawn legs (nulls in every optional
field, unseen cells and couriers, midnights and DST edges, several zones, the antimeridian, far-apart
endpoints), compared column by column; and the model predicts the same from either."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.aggregates import AggregateTable
from features.build import build_features
from features.live import LiveLegs, live_features
from features.spec import FeatureSpec

ZONES = ["Africa/Nairobi", "America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "UTC"]
# instants around DST changes and local midnights: New York 2024-03-10 07:00 UTC and 2024-11-03 06:00 UTC,
# London 2024-03-31 01:00 UTC, Sydney 2024-04-06 16:00 UTC, and a Nairobi midnight (21:00 UTC)
EDGES = [
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),
    datetime(2024, 11, 3, 6, 0, tzinfo=UTC),
    datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
    datetime(2024, 4, 6, 16, 0, tzinfo=UTC),
    datetime(2024, 3, 8, 21, 0, tzinfo=UTC),
    datetime(2024, 12, 25, 12, 0, tzinfo=UTC),  # a holiday in New York, London and Nairobi
]
NAIROBI = (-1.2864, 36.8172)


@pytest.fixture(scope="module")
def snapshot():
    from data_contracts.synthetic import simulate_trips

    spec = FeatureSpec()
    trips = simulate_trips(6000, seed=3, start=date(2024, 2, 20), days=14)
    return spec, AggregateTable.from_trips(trips, spec).freeze(date(2024, 3, 8)), trips


def _coordinate(draw, near: bool) -> tuple[float, float]:
    if near:
        return (
            NAIROBI[0] + draw(st.floats(-0.08, 0.08)),
            NAIROBI[1] + draw(st.floats(-0.08, 0.08)),
        )
    antimeridian = st.sampled_from([179.9999, -179.9999, 180.0, -180.0])
    return draw(st.floats(-89.9, 89.9)), draw(st.one_of(st.floats(-180.0, 180.0), antimeridian))


@st.composite
def legs(draw, couriers: list[str]):
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        near = draw(st.booleans()) or draw(st.booleans())
        o = _coordinate(draw, near)
        d = _coordinate(draw, near if draw(st.booleans()) else not near)
        edge = draw(st.sampled_from(EDGES))
        start = edge.timestamp() + draw(st.sampled_from([-1, 0, 1, 1799, 3600, 86_399]))
        rows.append(
            {
                "origin_lat": o[0],
                "origin_lng": o[1],
                "dest_lat": d[0],
                "dest_lng": d[1],
                "start_ts": datetime.fromtimestamp(start, UTC),
                "tz": draw(st.sampled_from(ZONES)),
                "courier_id": draw(st.sampled_from([None, "nobody-seen", *couriers])),
                "vehicle_type": draw(st.sampled_from([None, "motorbike", "van", "hovercraft"])),
                "road_distance_km": draw(st.one_of(st.none(), st.floats(0.0, 80.0))),
                "temperature_c": draw(st.one_of(st.none(), st.floats(-20.0, 45.0))),
                "precipitation_mm": draw(st.one_of(st.none(), st.floats(0.0, 30.0))),
            }
        )
    return pl.DataFrame(rows, schema_overrides={"start_ts": pl.Datetime("us", "UTC")})


def as_live(frame: pl.DataFrame) -> LiveLegs:
    def floats(name):
        return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    return LiveLegs(
        origin_lat=floats("origin_lat"),
        origin_lng=floats("origin_lng"),
        dest_lat=floats("dest_lat"),
        dest_lng=floats("dest_lng"),
        start_us=frame["start_ts"].dt.epoch("us").to_numpy(),
        tz=frame["tz"].to_list(),
        courier_id=frame["courier_id"].to_list(),
        vehicle_type=frame["vehicle_type"].to_list(),
        road_distance_km=floats("road_distance_km"),
        temperature_c=floats("temperature_c"),
        precipitation_mm=floats("precipitation_mm"),
    )


def assert_same_features(frame: pl.DataFrame, spec: FeatureSpec, frozen) -> None:
    expected = build_features(frame, frozen, spec)
    live = live_features(as_live(frame), frozen, spec)
    assert live.height == expected.height
    for name, dtype in {**spec.feature_dtypes(), **spec.context_dtypes()}.items():
        column = expected[name]
        if name == "trip_id":
            continue
        present = column.is_not_null().to_numpy()
        np.testing.assert_array_equal(live.present[name], present, err_msg=f"{name}: nulls differ")
        want = column.to_numpy()[present]
        got = live.values[name][present]
        if dtype.is_integer():
            np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64), err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_both_executors_give_the_same_features(snapshot, data) -> None:
    spec, frozen, trips = snapshot
    couriers = trips["courier_id"].drop_nulls().unique().sort().head(5).to_list()
    assert_same_features(data.draw(legs(couriers)), spec, frozen)


def test_the_model_predicts_the_same_from_either_executor(trained) -> None:
    from models.bundle import feature_matrix

    model = trained.model
    frame = trained.test_legs.head(64).drop("duration_s")
    polars_features = model.features(frame)
    live = live_features(as_live(frame), model.aggregates, model.spec)
    np.testing.assert_array_equal(
        live.matrix(model.spec.feature_names), feature_matrix(polars_features, model.spec)
    )
    np.testing.assert_array_equal(
        model.predict_from_features(live), model.predict_from_features(polars_features)
    )
