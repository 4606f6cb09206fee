"""Sendy Nairobi motorbike deliveries (Zindi "Sendy Logistics Challenge", deliveries.csv) onto the contract.

One row is one order; the leg is Pickup -> Arrival at Destination and the label is
"Time from Pickup to Arrival" (seconds). Events carry only day of month, weekday (Mo = 1) and a
12-hour clock time ("9:35:46 AM") in Nairobi time; the month and year are anonymised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from data_contracts.sources.anonymised_calendar import date_from_day_and_weekday, month_starts
from data_contracts.sources.base import parse_local_timestamp, read_raw_csv, require_columns, to_float, to_int

TZ = "Africa/Nairobi"

# Why a list of months and not one: (day - weekday) mod 7 takes all seven values in this file and each group
# covers days 1-24, so the orders span at least seven real months; no single month makes day and weekday
# agree. Each row takes the first listed month whose calendar agrees with its weekday. 2019 (the README's
# year) places every pair but one (Monday the 31st: no 2019 month has it), so 2020 follows it: every day
# 1-31 on every weekday has a place. Weekday, day of month and clock time are then exact; the month is a
# stand-in, so month and cross-month order are not real chronology (`calendar` says so to training). Pass
# one month, e.g. "2019-02", for the strict reading where rows whose weekday disagrees get a null start_ts
# (quarantined: unparseable_timestamp).
DEFAULT_REFERENCE_MONTHS: tuple[str, ...] = tuple(
    f"{year}-{month:02d}" for year in (2019, 2020) for month in range(1, 13)
)

PICKUP_DAY = "Pickup - Day of Month"
PICKUP_WEEKDAY = "Pickup - Weekday (Mo = 1)"
PICKUP_TIME = "Pickup - Time"
LABEL = "Time from Pickup to Arrival"
PRECIPITATION = "Precipitation in millimeters"

# contract column <- Sendy column, for the values that only need a number cast
FLOAT_COLUMNS: dict[str, str] = {
    "origin_lat": "Pickup Lat",
    "origin_lng": "Pickup Long",
    "dest_lat": "Destination Lat",
    "dest_lng": "Destination Long",
    "duration_s": LABEL,
    "road_distance_km": "Distance (KM)",
    "temperature_c": "Temperature",
}
VEHICLE_TYPES: dict[str, str] = {"bike": "motorbike", "motorbike": "motorbike", "van": "van"}
REQUIRED_COLUMNS: tuple[str, ...] = (
    "Order No",
    "Rider Id",
    "Vehicle Type",
    PICKUP_DAY,
    PICKUP_WEEKDAY,
    PICKUP_TIME,
    PRECIPITATION,
    *FLOAT_COLUMNS.values(),
)


class SendyAdapter:
    """deliveries.csv -> staged trips; the month comes from `reference_months` (see DEFAULT_REFERENCE_MONTHS)."""

    name = "sendy"
    file_glob = "deliveries.csv"
    calendar = "day_of_month"  # month and year are anonymised: only the day of the month orders time

    def __init__(self, reference_months: str | Sequence[str] = DEFAULT_REFERENCE_MONTHS) -> None:
        self.months = month_starts(reference_months)

    def start_ts(self) -> pl.Expr:
        """Pickup day + weekday + 12-hour clock time in Nairobi -> UTC; null when the weekday fits no month."""
        date = date_from_day_and_weekday(to_int(PICKUP_DAY), to_int(PICKUP_WEEKDAY), self.months)
        local = pl.concat_str(
            date.dt.strftime("%Y-%m-%d"), pl.col(PICKUP_TIME).str.strip_chars(), separator=" "
        )
        return parse_local_timestamp(local, ["%Y-%m-%d %I:%M:%S %p"], TZ)

    def stage(self, path: Path) -> pl.DataFrame:
        raw = read_raw_csv(path)
        require_columns(raw, REQUIRED_COLUMNS, path, self.name)
        rain = pl.col(PRECIPITATION).str.strip_chars()
        return raw.select(
            pl.col("Order No").str.strip_chars().alias("trip_id"),
            pl.lit(self.name).alias("source"),
            *(to_float(column).alias(field) for field, column in FLOAT_COLUMNS.items()),
            self.start_ts().alias("start_ts"),
            pl.lit(TZ).alias("tz"),
            pl.col("Rider Id").str.strip_chars().alias("courier_id"),
            pl.col("Vehicle Type")
            .str.strip_chars()
            .str.to_lowercase()
            .replace_strict(VEHICLE_TYPES, default=None)
            .alias("vehicle_type"),
            # README: an absent precipitation value means no rain
            pl.when(rain.is_null() | (rain == ""))
            .then(pl.lit(0.0))
            .otherwise(to_float(PRECIPITATION))
            .alias("precipitation_mm"),
            "source_file",
            "row_number",
            "raw",
        )
