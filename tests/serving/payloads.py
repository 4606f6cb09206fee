"""Request bodies and oracles shared by the serving tests."""

from __future__ import annotations

from datetime import datetime

import polars as pl

NAIROBI = "Africa/Nairobi"
# a weekday morning right after the training window (the frozen aggregates' day)
DEPARTURE = datetime.fromisoformat("2026-01-20T09:30:00+03:00")


def leg_json(**overrides: object) -> dict[str, object]:
    """A valid /eta leg in the synthetic city (CBD -> Kilimani), as JSON."""
    leg: dict[str, object] = {
        "origin_lat": -1.2841,
        "origin_lng": 36.8233,
        "dest_lat": -1.2930,
        "dest_lng": 36.7880,
        "tz": NAIROBI,
        "departure_time": DEPARTURE.isoformat(),
        "vehicle_type": "motorbike",
        "temperature_c": 22.0,
        "precipitation_mm": 0.0,
    }
    leg.update(overrides)
    return {k: v for k, v in leg.items() if v is not None}


def legs_frame_for(legs: list[dict[str, object]]) -> pl.DataFrame:
    """The contract frame for JSON legs, built independently of serving.frames (for oracles)."""
    rows = [
        {
            **{k: leg.get(k) for k in ("origin_lat", "origin_lng", "dest_lat", "dest_lng", "tz")},
            "start_ts": datetime.fromisoformat(str(leg["departure_time"])),
            **{
                k: leg.get(k)
                for k in (
                    "courier_id",
                    "vehicle_type",
                    "road_distance_km",
                    "temperature_c",
                    "precipitation_mm",
                )
            },
        }
        for leg in legs
    ]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.with_columns(pl.col("start_ts").dt.convert_time_zone("UTC"))


ROUTE = {
    "origin": {"lat": -1.2841, "lng": 36.8233},
    "departure_time": DEPARTURE.isoformat(),
    "tz": NAIROBI,
    "stops": [
        {"lat": -1.2930, "lng": 36.7880, "service_time_s": 120, "stop_id": "a"},
        {"lat": -1.2980, "lng": 36.8140, "stop_id": "b"},
    ],
}

ETA_BODY = {
    "legs": [leg_json(leg_id="a"), leg_json(dest_lat=-1.2230, dest_lng=36.8980)],
    "levels": [0.5, 0.8],
}
