"""`serving.frames.legs_frame` against an independent oracle (`payloads.legs_frame_for`)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from serving.frames import LEG_SCHEMA, legs_frame
from serving.schemas import Leg
from tests.serving.payloads import leg_json, legs_frame_for


def test_legs_frame_keeps_every_instant_to_the_microsecond_and_the_contract_dtypes() -> None:
    bodies = [
        leg_json(departure_time="2026-01-20T09:30:00.123456+03:00", courier_id="c-1"),
        leg_json(departure_time="2026-03-29T01:59:59.999999+01:00", tz="Europe/London", road_distance_km=4.2),
        leg_json(departure_time="2000-01-01T04:59:59-05:00", vehicle_type=None, precipitation_mm=None),
    ]
    legs = [Leg.model_validate(body) for body in bodies]
    frame = legs_frame(legs, [leg.departure_time for leg in legs])
    assert frame.schema == pl.Schema(LEG_SCHEMA)
    expected = legs_frame_for(bodies).select(list(LEG_SCHEMA)).cast(LEG_SCHEMA)
    assert_frame_equal(frame, expected)
    assert frame["start_ts"].dt.microsecond().to_list() == [123456, 999999, 0]


def test_an_empty_batch_has_the_schema_and_no_rows() -> None:
    frame = legs_frame([], [])
    assert frame.schema == pl.Schema(LEG_SCHEMA)
    assert frame.height == 0


def test_small_batches_go_to_the_live_executor_and_answer_what_polars_answers(champion) -> None:
    """Below LIVE_MAX_LEGS a request's legs become `LiveLegs`; the champion's quantiles for them are the ones
    the polars frame of the same legs gives (the executors' full parity is tests/test_features_live.py)."""
    import numpy as np

    from features.live import LiveLegs
    from serving.frames import LIVE_MAX_LEGS, live_legs, model_input

    bodies = [
        leg_json(departure_time="2026-01-20T09:30:00.123456+03:00", courier_id="c-1"),
        leg_json(departure_time="2026-03-29T01:59:59+01:00", tz="Europe/London", road_distance_km=4.2),
        leg_json(departure_time="2026-02-16T23:59:59+03:00", vehicle_type=None, precipitation_mm=3.0),
    ]
    legs = [Leg.model_validate(body) for body in bodies]
    departures = [leg.departure_time for leg in legs]
    assert isinstance(model_input(legs, departures), LiveLegs)
    assert isinstance(model_input(legs * LIVE_MAX_LEGS, departures * LIVE_MAX_LEGS), pl.DataFrame)
    live = champion.model.predict_quantiles(live_legs(legs, departures))
    frame = champion.model.predict_quantiles(legs_frame(legs, departures))
    np.testing.assert_array_equal(live, frame)
