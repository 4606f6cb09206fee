"""Typed values as text and back: how a typed table is recorded in `raw`, and its timestamps read again."""

from __future__ import annotations

import polars as pl

# A typed Datetime written as text: naive -> a wall clock; zoned -> an instant, with its offset.
CANONICAL_LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
CANONICAL_INSTANT_FORMAT = "%Y-%m-%d %H:%M:%S%.f%:z"

# ISO 8601 instants: with an offset (or Z), or without one, meaning UTC.
ISO_OFFSET_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
)
ISO_UTC_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


def as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """One typed column as text: timestamps in a canonical form; what polars cannot cast, as JSON or hex."""
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        zoned = dtype.time_zone is not None
        return column.dt.to_string(CANONICAL_INSTANT_FORMAT if zoned else CANONICAL_LOCAL_FORMAT)
    if dtype.is_nested() or isinstance(dtype, pl.Duration):  # lists, structs: JSON; durations: ISO 'PT5S'
        return pl.struct(column.alias("v")).struct.json_encode().str.json_path_match("$.v").alias(name)
    if dtype == pl.Binary:
        return column.bin.encode("hex")
    return column.cast(pl.String)


def iso_instant(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text as a UTC instant; no offset means UTC (as `models.scoring.read_legs`); else null."""
    text = text.str.strip_chars()
    zoned = [text.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False) for fmt in ISO_OFFSET_FORMATS]
    naive = [text.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in ISO_UTC_FORMATS]
    return pl.coalesce(*zoned, *(n.dt.replace_time_zone("UTC") for n in naive))
