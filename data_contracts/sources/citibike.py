"""Citi Bike monthly trip files (JC-YYYYMM-citibike-tripdata.csv, 2013-2020 layout) onto the contract.

The header spelling differs by file ("Trip Duration" / "tripduration", "Start Station ID" /
"start station id"), so names are compared lower-cased with whitespace removed. Files re-saved by a
spreadsheet lost their seconds ("11/1/2017 0:04", "1/1/19 3:09 AM"); `tripduration` stayed exact, so it is
the label. Coordinates are docking-station points. 'NULL' means missing. Clocks are New York local time.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from data_contracts.sources.base import parse_local_timestamp, read_raw_csv, require_columns, to_float

TZ = "America/New_York"

# Two-digit-year formats come before four-digit ones: chrono's %Y also accepts "19" (as year 19 AD),
# while %y rejects "2017", so this order can never misread a year.
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S%.f",  # original export: 2017-02-01 00:00:31 (fraction optional)
    "%m/%d/%y %I:%M %p",  # spreadsheet: 1/1/19 3:09 AM
    "%m/%d/%y %H:%M",
    "%m/%d/%Y %H:%M:%S",  # original NYC export 2014-2016: 9/1/2014 00:00:25
    "%m/%d/%Y %H:%M",  # spreadsheet: 11/1/2017 0:04
)

# contract column <- normalized Citi Bike column, for the values that only need a number cast
FLOAT_COLUMNS: dict[str, str] = {
    "origin_lat": "startstationlatitude",
    "origin_lng": "startstationlongitude",
    "dest_lat": "endstationlatitude",
    "dest_lng": "endstationlongitude",
    "duration_s": "tripduration",
}
REQUIRED_COLUMNS: tuple[str, ...] = ("starttime", "startstationid", "bikeid", *FLOAT_COLUMNS.values())
LINEAGE: tuple[str, ...] = ("source_file", "row_number", "raw")


def normalize_header(name: str) -> str:
    """'Start Station ID' and 'start station id' -> 'startstationid'."""
    return re.sub(r"\s+", "", name.lower())


def _text(column: str) -> pl.Expr:
    """A string column stripped, with blanks and the literal 'NULL' as null."""
    value = pl.col(column).str.strip_chars()
    return pl.when((value == "") | (value == "NULL")).then(None).otherwise(value)


def natural_trip_id(start_ts: pl.Expr) -> pl.Expr:
    """bike @ start station @ start minute (UTC): the same trip gets the same id whatever the file's format.

    Minute precision because re-saved files dropped the seconds; a bike cannot start two trips at one
    station within a minute (Citi Bike drops trips under 60 s). An unparseable start keeps its raw text
    so the row is filed as unparseable_timestamp, not as a missing id.
    """
    start = pl.coalesce(start_ts.dt.strftime("%Y-%m-%dT%H:%MZ"), _text("starttime"))
    return pl.concat_str(_text("bikeid"), _text("startstationid"), start, separator="@")


class CitiBikeAdapter:
    """One monthly Citi Bike CSV -> staged trips; courier_id is the bike id."""

    name = "citibike"
    file_glob = "*citibike-tripdata.csv"

    def stage(self, path: Path) -> pl.DataFrame:
        raw = read_raw_csv(path)
        raw = raw.rename({c: normalize_header(c) for c in raw.columns if c not in LINEAGE})
        require_columns(raw, REQUIRED_COLUMNS, path, self.name)
        start_ts = parse_local_timestamp(_text("starttime"), TIMESTAMP_FORMATS, TZ)
        return raw.select(
            natural_trip_id(start_ts).alias("trip_id"),
            pl.lit(self.name).alias("source"),
            *(to_float(column).alias(field) for field, column in FLOAT_COLUMNS.items()),
            start_ts.alias("start_ts"),
            pl.lit(TZ).alias("tz"),
            _text("bikeid").alias("courier_id"),
            pl.lit("bicycle").alias("vehicle_type"),
            *LINEAGE,
        )
