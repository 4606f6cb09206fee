"""NYC yellow taxis onto the contract: the small labelled teaching sample, and the public TLC yellow files.

`nyc_taxi` reads nyc_taxi_sample/nyc_taxi.csv (statsmaths/ml_data): day of month, hour, minute and
weekday only, no month or year. Only 'train' and 'valid' rows carry a duration; the 2,000 'test' rows have
none and are quarantined as missing_value, by design.

`tlc_yellow` reads the public TLC yellow-taxi trip records of 2009 to mid-2016, the years that published
coordinates, as CSV or Parquet, under any of the three header generations (2009 `Trip_Pickup_DateTime`
/ `Start_Lon`, 2010-2014 `pickup_datetime`, 2015-2016 `tpep_pickup_datetime`); duration = drop-off - pickup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from data_contracts.sources.anonymised_calendar import (
    date_from_day_and_weekday,
    iso_weekday_from_sunday_first,
    month_starts,
)
from data_contracts.sources.base import (
    parse_local_timestamp,
    read_raw_table,
    require_columns,
    to_float,
    to_int,
)

TZ = "America/New_York"
KM_PER_MILE = 1.609344
LINEAGE: tuple[str, ...] = ("source_file", "row_number", "raw")

# The sample's weekday is 1 = Sunday (weekday 1 and 7 have the weekend's 0-4 h peak, 22.6% and 18.4% of
# their rides, against 6-11% on 2-6) and day - weekday = 0 (mod 7) on every row: day 1 is a Sunday, and
# days run to 31. From 2015 until TLC stopped publishing coordinates (July 2016) the 31-day months
# starting on a Sunday are 2015-03 and 2016-05; the README dates the sample to 2016, so May 2016.
NYC_SAMPLE_REFERENCE_MONTH = "2016-05"

SAMPLE_FLOAT_COLUMNS: dict[str, str] = {
    "origin_lat": "pickup_latitude",
    "origin_lng": "pickup_longitude",
    "dest_lat": "dropoff_latitude",
    "dest_lng": "dropoff_longitude",
    "duration_s": "duration",
}
SAMPLE_REQUIRED: tuple[str, ...] = (
    "obs_id",
    "day",
    "hour",
    "minute",
    "weekday",
    "trip_distance",
    *SAMPLE_FLOAT_COLUMNS.values(),
)


class NycTaxiSampleAdapter:
    """nyc_taxi.csv -> staged trips; test rows (no duration) become missing_value quarantine."""

    name = "nyc_taxi"
    file_glob = "nyc_taxi.csv"
    calendar = "day_of_month"  # the month is deduced (see NYC_SAMPLE_REFERENCE_MONTH), not published

    def __init__(self, reference_months: str | Sequence[str] = NYC_SAMPLE_REFERENCE_MONTH) -> None:
        self.months = month_starts(reference_months)

    def start_ts(self) -> pl.Expr:
        """Day + weekday (Sunday = 1) + hour + minute in New York -> UTC; null when the weekday fits no month."""
        weekday = iso_weekday_from_sunday_first(to_int("weekday"))
        date = date_from_day_and_weekday(to_int("day"), weekday, self.months)
        local = pl.format("{} {}:{}", date.dt.strftime("%Y-%m-%d"), to_int("hour"), to_int("minute"))
        return parse_local_timestamp(local, ["%Y-%m-%d %H:%M"], TZ)

    def stage(self, path: Path) -> pl.DataFrame:
        raw = read_raw_table(path)
        require_columns(raw, SAMPLE_REQUIRED, path, self.name)
        return raw.select(
            pl.col("obs_id").str.strip_chars().alias("trip_id"),
            pl.lit(self.name).alias("source"),
            *(to_float(column).alias(field) for field, column in SAMPLE_FLOAT_COLUMNS.items()),
            self.start_ts().alias("start_ts"),
            pl.lit(TZ).alias("tz"),
            pl.lit("car").alias("vehicle_type"),
            (to_float("trip_distance") * KM_PER_MILE).alias("road_distance_km"),
            *LINEAGE,
        )


# input -> accepted column names (lower-cased, stripped: 2014 files pad their headers with spaces)
TLC_ALIASES: dict[str, tuple[str, ...]] = {
    "pickup_ts": ("tpep_pickup_datetime", "pickup_datetime", "trip_pickup_datetime"),
    "dropoff_ts": ("tpep_dropoff_datetime", "dropoff_datetime", "trip_dropoff_datetime"),
    "origin_lng": ("pickup_longitude", "start_lon"),
    "origin_lat": ("pickup_latitude", "start_lat"),
    "dest_lng": ("dropoff_longitude", "end_lon"),
    "dest_lat": ("dropoff_latitude", "end_lat"),
    "trip_distance": ("trip_distance",),
}
TLC_TIMESTAMP_FORMATS: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S%.f", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def resolve_aliases(
    columns: Sequence[str], aliases: Mapping[str, Sequence[str]], path: Path
) -> dict[str, str]:
    """Input name -> the column this file uses for it; raise naming every input no alias matched."""
    resolved = {key: next((n for n in names if n in columns), None) for key, names in aliases.items()}
    missing = [
        f"{key} (one of {', '.join(aliases[key])})" for key, found in resolved.items() if found is None
    ]
    if missing:
        present = [c for c in columns if c not in LINEAGE]
        raise ValueError(
            f"{path.name} is not a tlc_yellow file: missing columns {'; '.join(missing)}; it has {present}"
        )
    return {key: found for key, found in resolved.items() if found is not None}


class TlcYellowAdapter:
    """A TLC yellow-taxi trip file (CSV or Parquet, 2009 to mid-2016) -> staged trips."""

    name = "tlc_yellow"
    file_glob = "yellow_tripdata_*"

    def stage(self, path: Path) -> pl.DataFrame:
        raw = read_raw_table(path)
        raw = raw.rename({c: c.strip().lower() for c in raw.columns if c not in LINEAGE})
        col = resolve_aliases(raw.columns, TLC_ALIASES, path)
        pickup = parse_local_timestamp(col["pickup_ts"], TLC_TIMESTAMP_FORMATS, TZ)
        dropoff = parse_local_timestamp(col["dropoff_ts"], TLC_TIMESTAMP_FORMATS, TZ)
        # TLC records carry no trip id: the natural key makes a row repeated verbatim a duplicate_trip
        key_parts = (
            "pickup_ts",
            "dropoff_ts",
            "origin_lng",
            "origin_lat",
            "dest_lng",
            "dest_lat",
            "trip_distance",
        )
        trip_id = pl.concat_str(
            [pl.col(col[k]).str.strip_chars().fill_null("") for k in key_parts], separator="|"
        )
        return raw.select(
            trip_id.alias("trip_id"),
            pl.lit(self.name).alias("source"),
            *(
                to_float(col[field]).alias(field)
                for field in ("origin_lat", "origin_lng", "dest_lat", "dest_lng")
            ),
            pickup.alias("start_ts"),
            pl.lit(TZ).alias("tz"),
            ((dropoff - pickup).dt.total_microseconds() / 1e6).alias("duration_s"),
            pl.lit("car").alias("vehicle_type"),
            (to_float(col["trip_distance"]) * KM_PER_MILE).alias("road_distance_km"),
            *LINEAGE,
        )
