"""The completed-trip contract, declared once with dataframely.

The same declaration drives validation (`data_contracts.validate`), Dagster column metadata
(`contract_columns`) and the docs (`contract_markdown`).
"""

from __future__ import annotations

import dataframely as dy
import polars as pl

UTC = "UTC"


class TripSchema(dy.Schema):
    """One completed delivery leg. Limits that depend on configuration are added by `validate.contract_for`."""

    trip_id = dy.String(nullable=False, description="Unique id of the leg within its source.")
    source = dy.String(nullable=False, description="Name of the source adapter that produced the row.")
    origin_lat = dy.Float64(nullable=False, min=-90, max=90, description="Pickup latitude, WGS84 degrees.")
    origin_lng = dy.Float64(nullable=False, min=-180, max=180, description="Pickup longitude, WGS84 degrees.")
    dest_lat = dy.Float64(nullable=False, min=-90, max=90, description="Drop-off latitude, WGS84 degrees.")
    dest_lng = dy.Float64(nullable=False, min=-180, max=180, description="Drop-off longitude, WGS84 degrees.")
    start_ts = dy.Datetime(
        nullable=False, time_zone=UTC, time_unit="us", description="Departure time, stored in UTC."
    )
    tz = dy.String(nullable=False, description="IANA zone of the source's local clock, e.g. Africa/Nairobi.")
    duration_s = dy.Float64(nullable=False, description="Label: seconds from departure to arrival.")
    courier_id = dy.String(nullable=True, description="Courier / rider / vehicle id, when the source has it.")
    vehicle_type = dy.String(
        nullable=True, description="motorbike, bicycle, car, van or foot; null when unknown."
    )
    road_distance_km = dy.Float64(nullable=True, min=0, description="Road distance reported by the source.")
    temperature_c = dy.Float64(nullable=True, min=-60, max=60, description="Air temperature at departure.")
    precipitation_mm = dy.Float64(nullable=True, min=0, description="Precipitation at departure (mm/h).")


# Lineage columns every adapter adds; they travel with valid rows and the quarantine.
LINEAGE_COLUMNS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "row_number": pl.Int64(),
}
# The quarantine keeps the original row, as the source wrote it, as a JSON object of strings.
RAW_COLUMN = "raw"


def contract_columns() -> dict[str, dict[str, str | bool]]:
    """Column name -> dtype, nullability and description: for Dagster metadata and docs."""
    polars_schema = TripSchema.create_empty().schema
    return {
        name: {
            "dtype": str(polars_schema[name]),
            "nullable": column.nullable,
            "description": column.description or "",
        }
        for name, column in TripSchema.columns().items()
    }


def contract_markdown() -> str:
    """The contract as a markdown table."""
    lines = ["| column | dtype | nullable | meaning |", "|---|---|---|---|"]
    for name, info in contract_columns().items():
        lines.append(
            f"| `{name}` | {info['dtype']} | {'yes' if info['nullable'] else 'no'} | {info['description']} |"
        )
    return "\n".join(lines)
