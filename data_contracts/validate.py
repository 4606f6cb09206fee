"""Validate staged trips against the contract: valid rows out, every rejected row quarantined with a reason.

Validation never raises on bad data and never drops a row: `rows_in == len(valid) + len(quarantine)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dataframely as dy
import polars as pl

from data_contracts.geo import haversine_km
from data_contracts.limits import ContractLimits
from data_contracts.schema import LINEAGE_COLUMNS, RAW_COLUMN, TripSchema
from data_contracts.text_values import as_text, iso_instant

# Reason codes in precedence order: a row failing several rules is filed under the first.
REASON_CODES: tuple[str, ...] = (
    "missing_value",
    "unparseable_timestamp",
    "out_of_range_coord",
    "null_island",
    "non_positive_duration",
    "duration_under_limit",
    "duration_over_limit",
    "implausible_speed",
    "invalid_value",
    "duplicate_trip",
)
_COORDS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng")
# Columns validation adds for itself: the row position and `_stage_columns`' readability flag.
_HELPER_COLUMNS = ("_pos", "_readable")


def contract_for(limits: ContractLimits) -> type[TripSchema]:
    """The trip schema with the configured limits attached as named dataframely rules (rule name = reason)."""
    tol = limits.null_island_tolerance_deg
    speed_limits = pl.col("vehicle_type").replace_strict(
        limits.max_speed_kmh, default=limits.max_speed_kmh["default"], return_dtype=pl.Float64
    )

    def _null_island(cls: type) -> pl.Expr:
        origin = (pl.col("origin_lat").abs() < tol) & (pl.col("origin_lng").abs() < tol)
        dest = (pl.col("dest_lat").abs() < tol) & (pl.col("dest_lng").abs() < tol)
        return ~(origin | dest)

    def _non_positive_duration(cls: type) -> pl.Expr:
        return pl.col("duration_s") > 0

    def _duration_under_limit(cls: type) -> pl.Expr:
        return (pl.col("duration_s") <= 0) | (pl.col("duration_s") >= limits.min_duration_s)

    def _duration_over_limit(cls: type) -> pl.Expr:
        return pl.col("duration_s") <= limits.max_duration_s

    def _implausible_speed(cls: type) -> pl.Expr:
        km = haversine_km("origin_lat", "origin_lng", "dest_lat", "dest_lng")
        hours = pl.col("duration_s") / 3600.0
        return (pl.col("duration_s") <= 0) | (km / hours <= speed_limits)

    def _duplicate_trip(cls: type) -> pl.Expr:
        return pl.col("trip_id").is_first_distinct()

    rules = {
        "null_island": _null_island,
        "non_positive_duration": _non_positive_duration,
        "duration_under_limit": _duration_under_limit,
        "duration_over_limit": _duration_over_limit,
        "implausible_speed": _implausible_speed,
        "duplicate_trip": _duplicate_trip,
    }
    namespace: dict[str, object] = {name: dy.rule()(fn) for name, fn in rules.items()}
    # an optional value of the wrong kind (see `_stage_columns`)
    namespace["invalid_value"] = dy.rule()(lambda cls: pl.col("_readable"))
    # row position: lets the rule outcomes be joined back to lineage and raw values
    namespace["row_position"] = dy.UInt32(nullable=False, alias="_pos")
    namespace["readable"] = dy.Bool(nullable=False, alias="_readable")
    return type("TripContract", (TripSchema,), namespace)


def reason_for_rule(rule: str) -> str:
    """Map a dataframely rule name ('origin_lat|max', 'start_ts|nullability', 'null_island') to a reason code."""
    if "|" not in rule:
        return rule
    column, check = rule.split("|", 1)
    if column == "start_ts":
        return "unparseable_timestamp"
    if check == "nullability":
        return "missing_value"
    if column in _COORDS:
        return "out_of_range_coord"
    if column == "duration_s":
        return "missing_value"  # NaN / inf label: there is no usable duration
    return "invalid_value"


DATED, ANONYMISED_MONTHS = "date", "day_of_month"  # what a source's dates mean
CALENDAR_METADATA_KEY = "lastmile_eta.calendar"  # where a validated Parquet file records it


@dataclass
class ValidationResult:
    """Valid trips (contract columns + lineage), the quarantine, and the counts that tie them together."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    reasons: dict[str, int] = field(default_factory=dict)
    calendar: str = DATED  # or ANONYMISED_MONTHS: what the source's dates mean (see SourceAdapter)

    @property
    def rows_valid(self) -> int:
        return self.valid.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.height

    def summary(self) -> dict[str, object]:
        return {
            "rows_in": self.rows_in,
            "valid": self.rows_valid,
            "quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(self.reasons),
        }


def _stage_columns(staged: pl.DataFrame) -> pl.DataFrame:
    """Bring a staged frame to the contract's dtypes without raising; missing optional columns become nulls.

    Adds `_readable`: false where an optional value was given but is not of its column's kind (text in a
    number column), so the row is quarantined as `invalid_value` instead of passing with the value lost.
    Required columns need no flag: a value that does not convert is null, and the row fails nullability.
    """
    template = TripSchema.create_empty().schema
    optional = {name for name, column in TripSchema.columns().items() if column.nullable}
    exprs, lost = [], []
    for name, dtype in {**template, **LINEAGE_COLUMNS}.items():
        if name not in staged.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        converted = _to_dtype(name, staged.schema[name], dtype)
        exprs.append(converted.alias(name))
        if name in optional:
            lost.append(_given(name, staged.schema[name]) & converted.is_null())
    if RAW_COLUMN in staged.columns:
        exprs.append(_to_dtype(RAW_COLUMN, staged.schema[RAW_COLUMN], pl.String()).alias(RAW_COLUMN))
    else:  # e.g. a validated-trips file: `_quarantine_table` records the rejected rows as given
        exprs.append(pl.lit(None, dtype=pl.String).alias(RAW_COLUMN))
    readable = ~pl.any_horizontal(lost) if lost else pl.lit(True)
    # NaN in optional measurements means "not recorded"
    return staged.select(*exprs, readable.alias("_readable")).with_columns(
        pl.col(c).fill_nan(None) for c in ("road_distance_km", "temperature_c", "precipitation_mm")
    )


def _to_dtype(name: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """One column in the contract's dtype; text is parsed, and a value of another kind becomes null."""
    column = pl.col(name)
    if source == target or source == pl.Null:
        return column.cast(target)
    if source == pl.String:
        if isinstance(target, pl.Datetime):
            return iso_instant(column)
        return column.str.strip_chars().cast(target, strict=False) if target.is_numeric() else column
    if target.is_numeric() and source.is_numeric():
        return column.cast(target, strict=False)
    if isinstance(target, pl.Datetime) and isinstance(source, pl.Datetime):
        return column.cast(target)  # a naive instant is UTC; a zoned one is converted
    if target == pl.String and (
        source.is_numeric() or isinstance(source, (pl.Boolean, pl.Categorical, pl.Enum))
    ):
        return column.cast(pl.String)
    return pl.lit(None, dtype=target)


def _given(name: str, source: pl.DataType) -> pl.Expr:
    """Whether the source holds a value here; blank text counts as not recorded."""
    if source == pl.String:
        return (pl.col(name).str.strip_chars() != "").fill_null(False)
    return pl.col(name).is_not_null()


def validate_trips(staged: pl.DataFrame, limits: ContractLimits | None = None) -> ValidationResult:
    """Split staged rows into valid trips and a quarantine with one reason code per rejected row."""
    limits = limits or ContractLimits()
    frame = _stage_columns(staged).with_row_index("_pos")
    contract = contract_for(limits)
    valid, failure = contract.filter(frame.drop(RAW_COLUMN, *LINEAGE_COLUMNS), cast=False)
    details = failure.details()
    rule_columns = [c for c in details.columns if c not in frame.columns]
    quarantine = _quarantine_table(frame, details, rule_columns)
    if RAW_COLUMN not in staged.columns and quarantine.height:
        quarantine = _with_rows_as_given(quarantine, staged)
    quarantine = quarantine.drop("_pos")
    valid_rows = frame.join(valid.select("_pos"), on="_pos", how="semi").drop(*_HELPER_COLUMNS, RAW_COLUMN)
    counts = quarantine.group_by("reason").len().sort("reason")
    reasons = {row["reason"]: row["len"] for row in counts.iter_rows(named=True)}
    result = ValidationResult(valid=valid_rows, quarantine=quarantine, rows_in=frame.height, reasons=reasons)
    if result.rows_valid + result.rows_quarantined != result.rows_in:  # an invariant, not a data problem
        raise AssertionError(f"validation lost rows: {result.summary()}")
    return result


def _quarantine_table(frame: pl.DataFrame, details: pl.DataFrame, rule_columns: list[str]) -> pl.DataFrame:
    """Rejected rows with original values, lineage, the primary reason and every failed rule (and `_pos`)."""
    if details.height == 0:
        return (
            frame.head(0)
            .drop("_readable")
            .with_columns(
                pl.lit(None, dtype=pl.String).alias("reason"),
                pl.lit(None, dtype=pl.List(pl.String)).alias("reasons"),
            )
        )
    failed = details.select(
        "_pos",
        pl.concat_list(
            pl.when(pl.col(rule) == "invalid").then(pl.lit(reason_for_rule(rule))).otherwise(None)
            for rule in rule_columns
        )
        .list.drop_nulls()
        .list.unique(maintain_order=True)
        .alias("reasons"),
    )
    order = {code: i for i, code in enumerate(REASON_CODES)}
    failed = failed.with_columns(
        pl.col("reasons")
        .list.eval(pl.element().sort_by(pl.element().replace_strict(order, default=len(order))))
        .alias("reasons")
    ).with_columns(pl.col("reasons").list.first().fill_null("invalid_value").alias("reason"))
    return frame.join(failed, on="_pos", how="inner").sort("_pos").drop("_readable")


def _with_rows_as_given(quarantine: pl.DataFrame, staged: pl.DataFrame) -> pl.DataFrame:
    """Fill the quarantine's `raw` from the input rows themselves (as JSON text), for input without a raw
    record. Only the rejected rows are encoded: encoding every row made validating 300k trips 5x slower.
    """
    given = staged.with_row_index("_pos").join(quarantine.select("_pos"), on="_pos", how="semi")
    text = (as_text(name, dtype) for name, dtype in staged.schema.items())
    raw = given.select("_pos", pl.struct(text).struct.json_encode().alias(RAW_COLUMN))
    return quarantine.drop(RAW_COLUMN).join(raw, on="_pos", how="left").select(quarantine.columns)
