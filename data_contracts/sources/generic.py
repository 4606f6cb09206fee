"""Bring your own source without code: a CSV or Parquet file plus a YAML column mapping.

The mapping (see data_contracts/mappings/example_generic.yaml) names the column behind each contract
field, the timestamp format(s) and zone, where the duration comes from (a column with a unit, or an end
timestamp minus the start), the source name and an optional constant vehicle type. It is validated
before any data is read; a missing or unknown field is named in the error.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_contracts.config_files import describe_validation_error, read_yaml_config
from data_contracts.sources.base import parse_table_timestamp, read_raw_table, require_columns, to_float

VehicleType = Literal["motorbike", "bicycle", "car", "van", "foot"]
SECONDS_PER_UNIT: dict[str, float] = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
KM_PER_UNIT: dict[str, float] = {"m": 0.001, "km": 1.0, "mi": 1.609344}
LINEAGE: tuple[str, ...] = ("source_file", "row_number", "raw")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """Contract field -> column name in the file. Coordinates and the start time are required."""

    origin_lat: str
    origin_lng: str
    dest_lat: str
    dest_lng: str
    start_ts: str
    trip_id: str | None = Field(None, description="Omit to derive '<file>#<row>' (no duplicate detection).")
    courier_id: str | None = None
    vehicle_type: str | None = None
    road_distance_km: str | None = None
    temperature_c: str | None = None
    precipitation_mm: str | None = None


class Timestamps(_Strict):
    """How the file writes local times: strptime formats tried in order, and the IANA zone of the clock."""

    formats: list[str] = Field(min_length=1)
    tz: str

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {tz!r}") from None
        return tz


class Duration(_Strict):
    """Exactly one of: `column` (a number in `unit`) or `end_ts` (a timestamp column; duration = end - start)."""

    column: str | None = None
    unit: Literal["ms", "s", "min", "h"] = "s"
    end_ts: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Duration:
        if (self.column is None) == (self.end_ts is None):
            raise ValueError("give exactly one of 'column' or 'end_ts'")
        return self


class Constants(_Strict):
    """Values the file does not carry but the contract wants."""

    vehicle_type: VehicleType | None = None


class GenericMapping(_Strict):
    """A user's source described declaratively."""

    source: str = Field(min_length=1, description="Name written to the contract's `source` column.")
    file_glob: str = "*.csv"
    timestamps: Timestamps
    columns: ColumnMap
    duration: Duration
    distance_unit: Literal["m", "km", "mi"] = "km"
    constants: Constants = Constants()
    calendar: Literal["date", "day_of_month"] = Field(
        "date", description="day_of_month when the source's month and year are stand-ins (anonymised)."
    )

    @model_validator(mode="after")
    def _vehicle_once(self) -> GenericMapping:
        if self.columns.vehicle_type is not None and self.constants.vehicle_type is not None:
            raise ValueError("vehicle_type is given both as a column and as a constant")
        return self

    def file_columns(self) -> list[str]:
        """Every column of the file the mapping reads."""
        named = [c for c in self.columns.model_dump().values() if c is not None]
        return [*named, *(c for c in (self.duration.column, self.duration.end_ts) if c is not None)]


class MappingError(ValueError):
    """The mapping file itself is wrong (not the data)."""


def load_mapping(path: Path) -> GenericMapping:
    """Read and validate a YAML mapping; MappingError names the file and each missing, unknown, bad field."""
    data = read_yaml_config(Path(path), "mapping", MappingError)
    try:
        return GenericMapping.model_validate(data)
    except ValidationError as err:
        raise MappingError(f"mapping {Path(path).name}: {describe_validation_error(err)}") from None


class GenericAdapter:
    """Any CSV/Parquet file described by a `GenericMapping`."""

    def __init__(self, mapping: GenericMapping) -> None:
        self.mapping = mapping
        self.name = mapping.source
        self.file_glob = mapping.file_glob
        self.calendar = mapping.calendar

    @classmethod
    def from_yaml(cls, path: Path) -> GenericAdapter:
        return cls(load_mapping(path))

    def _text(self, field: str) -> pl.Expr:
        column = getattr(self.mapping.columns, field)
        return pl.lit(None, dtype=pl.String) if column is None else pl.col(column).str.strip_chars()

    def _float(self, field: str, scale: float = 1.0) -> pl.Expr:
        column = getattr(self.mapping.columns, field)
        return pl.lit(None, dtype=pl.Float64) if column is None else to_float(column) * scale

    def _timestamp(self, column: str) -> pl.Expr:
        stamps = self.mapping.timestamps
        return parse_table_timestamp(column, stamps.formats, stamps.tz)

    def duration_s(self) -> pl.Expr:
        spec = self.mapping.duration
        if spec.column is not None:
            return to_float(spec.column) * SECONDS_PER_UNIT[spec.unit]
        assert spec.end_ts is not None  # the mapping's own validator guarantees one of the two
        elapsed = self._timestamp(spec.end_ts) - self._timestamp(self.mapping.columns.start_ts)
        return elapsed.dt.total_microseconds() / 1e6

    def stage(self, path: Path) -> pl.DataFrame:
        raw = read_raw_table(path)
        require_columns(raw, self.mapping.file_columns(), path, f"'{self.name}' (generic mapping)")
        columns, constants = self.mapping.columns, self.mapping.constants
        row_key = pl.concat_str(pl.col("source_file"), pl.col("row_number").cast(pl.String), separator="#")
        vehicle = self._text("vehicle_type").str.to_lowercase() if columns.vehicle_type else None
        return raw.select(
            (self._text("trip_id") if columns.trip_id else row_key).alias("trip_id"),
            pl.lit(self.name).alias("source"),
            *(self._float(f).alias(f) for f in ("origin_lat", "origin_lng", "dest_lat", "dest_lng")),
            self._timestamp(columns.start_ts).alias("start_ts"),
            pl.lit(self.mapping.timestamps.tz).alias("tz"),
            self.duration_s().alias("duration_s"),
            self._text("courier_id").alias("courier_id"),
            (vehicle if vehicle is not None else pl.lit(constants.vehicle_type, dtype=pl.String)).alias(
                "vehicle_type"
            ),
            self._float("road_distance_km", KM_PER_UNIT[self.mapping.distance_unit]).alias(
                "road_distance_km"
            ),
            self._float("temperature_c").alias("temperature_c"),
            self._float("precipitation_mm").alias("precipitation_mm"),
            *LINEAGE,
        )
