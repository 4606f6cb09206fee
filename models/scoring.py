"""Batch scoring and evaluation of files of legs (the `eta predict` / `eta evaluate` commands)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.safe_io import first_line
from data_contracts.text_values import iso_instant
from data_contracts.zones import known_zones
from models.bundle import EtaModel, distance_band, interval_from_quantiles
from models.metrics import DEFAULT_LEVELS, segment_coverage, summary_metrics
from models.quantile import qtag

REQUIRED_LEG_COLUMNS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng", "start_ts", "tz")
OPTIONAL_FLOAT_COLUMNS = ("road_distance_km", "temperature_c", "precipitation_mm", "duration_s", "elapsed_s")
PROMISED = "promised_by"  # optional: the moment promised to the customer (late risk and lateness)
TEXT_COLUMNS = ("trip_id", "courier_id", "vehicle_type")
PARQUET_SUFFIXES = {".parquet", ".pq"}
SEGMENT_LEVEL = 0.8  # the interval whose coverage `eta evaluate` reports per segment
ROW_NUMBER = "row_number"  # 1-based data row of the input file (the header is not counted)
# columns `eta predict` writes itself; an input column of one of these names is kept as input_<name>
WRITTEN_COLUMNS = (
    "row_number",
    "reason",
    "column",
    "haversine_km",
    "local_hour",
    "origin_region",
    "late_probability",
    "expected_lateness_s",
)
WRITTEN_PATTERN = re.compile(r"^(q|lower_|upper_)\d+$")
COORD_LIMITS = {"origin_lat": 90.0, "origin_lng": 180.0, "dest_lat": 90.0, "dest_lng": 180.0}


@dataclass(frozen=True)
class LegsRead:
    """The legs of a file that can be scored, and every other row with the reason it cannot.

    `legs` has typed contract columns (and the file's other columns as they were); `rejected` has the rows
    exactly as read plus `reason` and `column`. Both carry `row_number`; `rows_in == legs + rejected`.
    """

    legs: pl.DataFrame
    rejected: pl.DataFrame
    renamed: dict[str, str]  # input columns that scoring writes itself, and the names they are kept under

    @property
    def rows_in(self) -> int:
        return self.legs.height + self.rejected.height

    def reasons(self) -> dict[str, int]:
        counts = self.rejected.group_by("reason").len().sort("reason")
        return dict(counts.iter_rows())


def read_table(path: Path) -> pl.DataFrame:
    """A CSV (every column as text) or Parquet file (by extension, any case); ValueError names a bad file."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a CSV or Parquet file")
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    try:
        return pl.read_parquet(path) if parquet else pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ValueError(
            f"{path.name} is not a readable {'Parquet' if parquet else 'CSV'} file: {first_line(err)}"
        ) from err


def _blank(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    return column.is_null() | (column.str.strip_chars() == "") if dtype == pl.String else column.is_null()


def _as_float(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)
    if dtype.is_numeric() or dtype == pl.Null:
        return pl.col(name).cast(pl.Float64)
    raise ValueError(f"column {name} holds {dtype}, not numbers")


def as_instant(name: str, dtype: pl.DataType) -> pl.Expr:
    """start_ts as a UTC instant: an aware timestamp as it is, a naive one as UTC, text parsed value by
    value as ISO 8601 (an unparseable value becomes null; polars' own parser would guess one format from
    the first value and fail the rest)."""
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return column.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype != pl.String:
        raise ValueError(
            f"column {name} holds {dtype}; give timestamps, or ISO 8601 text such as 2026-01-05T09:30:00+03:00"
        )
    return iso_instant(column)


def read_legs(path: Path) -> LegsRead:
    """Legs from CSV or Parquet, checked value by value: a row with a missing, unparseable or impossible
    coordinate, start time or zone (or an unreadable optional number) is rejected with the reason and the
    column, never scored and never dropped."""
    frame = read_table(path)
    missing = [c for c in REQUIRED_LEG_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name} lacks required column(s) {missing}; it has {frame.columns}")
    renamed = kept_names(frame.columns)
    frame = frame.rename(renamed)
    schema = frame.schema
    typed: dict[str, pl.Expr] = {}
    checks: list[tuple[str, str, pl.Expr]] = []  # (reason, column, row fails), first match wins
    for name, limit in COORD_LIMITS.items():
        typed[name] = value = _as_float(name, schema[name])
        checks += [
            ("missing_value", name, _blank(name, schema[name])),
            ("invalid_value", name, value.is_null()),  # text that is not a number
            ("out_of_range_coord", name, ~(value.is_finite() & (value.abs() <= limit))),
        ]
    typed["start_ts"] = instant = as_instant("start_ts", schema["start_ts"])
    checks += [
        ("missing_value", "start_ts", _blank("start_ts", schema["start_ts"])),
        ("unparseable_timestamp", "start_ts", instant.is_null()),
    ]
    typed["tz"] = zone = pl.col("tz").cast(pl.String).str.strip_chars()
    checks += [
        ("missing_value", "tz", _blank("tz", schema["tz"])),
        ("unknown_time_zone", "tz", ~zone.is_in(sorted(known_zones()))),
    ]
    for name in (c for c in OPTIONAL_FLOAT_COLUMNS if c in frame.columns):
        typed[name] = value = _as_float(name, schema[name])
        unreadable = ~_blank(name, schema[name]) & (value.is_null() | value.is_infinite())
        checks.append(("invalid_value", name, unreadable))
    if "elapsed_s" in frame.columns:
        elapsed = typed["elapsed_s"]
        checks.append(
            ("invalid_value", "elapsed_s", elapsed.is_not_null() & ((elapsed < 0) | (elapsed > 86_400)))
        )
    if PROMISED in frame.columns:
        typed[PROMISED] = promised = as_instant(PROMISED, schema[PROMISED])
        checks += [
            ("unparseable_timestamp", PROMISED, ~_blank(PROMISED, schema[PROMISED]) & promised.is_null()),
            ("invalid_value", PROMISED, promised.is_not_null() & (promised <= instant)),
        ]
    for name in (c for c in TEXT_COLUMNS if c in frame.columns):
        typed[name] = pl.col(name).cast(pl.String)
    first = [pl.when(fails).then(pl.lit(f"{reason}|{name}")) for reason, name, fails in checks]
    checked = frame.with_row_index(ROW_NUMBER, offset=1).with_columns(pl.coalesce(first).alias("_failed"))
    ok = checked.filter(pl.col("_failed").is_null())
    legs = ok.select(ROW_NUMBER, *(typed.get(c, pl.col(c)).alias(c) for c in frame.columns))
    rejected = (
        checked.filter(pl.col("_failed").is_not_null())
        .with_columns(pl.col("_failed").str.split_exact("|", 1).struct.rename_fields(["reason", "column"]))
        .unnest("_failed")
    )
    return LegsRead(legs=legs, rejected=rejected, renamed=renamed)


def kept_names(columns: list[str]) -> dict[str, str]:
    """Input columns that scoring writes itself (the lineage `row_number` of `eta ingest`'s output, the
    quantiles of a file scored before) -> input_<name>, so that nothing is overwritten or lost."""
    taken, renamed = set(columns), {}
    for name in columns:
        if name in WRITTEN_COLUMNS or WRITTEN_PATTERN.match(name):
            new = f"input_{name}"
            while new in taken:
                new = f"input_{new}"
            renamed[name] = new
            taken.add(new)
    return renamed


def read_scored(path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """A scored file's rows that can be evaluated, and how many were left out and why (`missing_label`:
    no usable duration_s, i.e. blank, not a number, not finite or not positive; `missing_quantile`: a blank
    or non-finite q column)."""
    frame = read_table(path)
    qcols = quantile_columns(frame.columns)
    if "duration_s" not in frame.columns or "q50" not in qcols:
        lacking = [c for c in ("duration_s", "q50") if c not in frame.columns]
        raise ValueError(
            f"{path.name} lacks {lacking}: evaluate needs a file scored by `eta predict` with labels"
        )
    numeric = ["duration_s", *qcols, *(c for c in ("haversine_km",) if c in frame.columns)]
    frame = frame.with_columns(_as_float(c, frame.schema[c]) for c in numeric)
    label_ok = pl.col("duration_s").is_finite() & (pl.col("duration_s") > 0)
    quantiles_ok = pl.all_horizontal(pl.col(c).is_finite() for c in qcols)
    excluded = frame.select(
        missing_label=(~label_ok.fill_null(False)).sum(),
        missing_quantile=(label_ok.fill_null(False) & ~quantiles_ok.fill_null(False)).sum(),
    ).row(0, named=True)
    usable = frame.filter(label_ok.fill_null(False) & quantiles_ok.fill_null(False))
    if usable.height == 0:
        raise ValueError(
            f"{path.name}: no row has both a finite duration_s and every quantile ({frame.height} rows)"
        )
    return usable, {reason: n for reason, n in excluded.items() if n}


def quantile_columns(columns: list[str]) -> list[str]:
    """q05, q10, ... q95 present in `columns`, in level order."""
    return sorted((c for c in columns if c.startswith("q") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def score_legs(model: EtaModel, legs: pl.DataFrame, levels=DEFAULT_LEVELS) -> pl.DataFrame:
    """The input legs plus q05..q95 and lower_/upper_ per interval level (seconds), and the context used.

    A leg with `elapsed_s` is in progress: its seconds are the time remaining from departure + elapsed, as
    the service answers it (models.enroute). With `promised_by`, `late_probability` and
    `expected_lateness_s` say how likely and by how much it misses that moment."""
    from models.enroute import EnrouteCalibration, expected_lateness

    features = model.features(legs)
    q = model.predict_from_features(features)
    full = q
    calibration = model.enroute or EnrouteCalibration(
        list(model.quantiles), offsets=[[0.0] * len(model.quantiles)] * 5, counts=[0] * 5
    )
    elapsed = _floats(legs, "elapsed_s")
    running = np.flatnonzero(elapsed > 0)
    if len(running):
        q = q.copy()
        q[running] = calibration.remaining(full[running], elapsed[running])
    extra = {}
    if PROMISED in legs.columns:
        promised_at = legs[PROMISED].dt.epoch("us").to_numpy().astype(float)
        start = legs["start_ts"].dt.epoch("us").to_numpy().astype(float)
        promised = (promised_at - start) / 1e6
        known = ~np.isnan(promised)
        risk, lateness = np.full(len(q), np.nan), np.full(len(q), np.nan)
        risk[known] = calibration.risk(full[known], elapsed[known], promised[known])
        lateness[known] = expected_lateness(full[known], model.quantiles, elapsed[known], promised[known])
        extra = {"late_probability": risk, "expected_lateness_s": lateness}
    columns = {qtag(t): q[:, i] for i, t in enumerate(model.quantiles)}
    for level in levels:
        lower, upper = interval_from_quantiles(q, model.quantiles, level)
        tag = round(level * 100)
        columns[f"lower_{tag}"], columns[f"upper_{tag}"] = lower, upper
    context = features.select(
        "haversine_km", "local_hour", f"origin_region_r{model.spec.region_resolution}"
    ).rename({f"origin_region_r{model.spec.region_resolution}": "origin_region"})
    return pl.concat([legs, context, pl.DataFrame({**columns, **extra})], how="horizontal")


def _floats(frame: pl.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for absent values (zeros when the column is absent)."""
    if name not in frame.columns:
        return np.zeros(frame.height)
    return frame[name].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()


def rejected_path(out: Path) -> Path:
    """Where `eta predict` files the legs it could not score: scored.parquet -> scored.rejected.parquet."""
    return out.with_name(f"{out.stem}.rejected{out.suffix}")


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Parquet by extension (any case), else CSV with timestamps as ISO 8601 text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame.write_parquet(path)
    else:
        frame.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%z")).write_csv(path)


def evaluate_scored(scored: pl.DataFrame) -> dict[str, object]:
    """All metrics of a scored file (needs duration_s and the q columns)."""
    qcols = quantile_columns(scored.columns)
    if "q50" not in qcols:
        raise ValueError("the scored file has no q50 column; score it with `eta predict` first")
    quantiles = [int(c[1:]) / 100 for c in qcols]
    y = scored["duration_s"].to_numpy().astype(float)
    q = scored.select(qcols).to_numpy()
    enroute = _enroute_metrics(scored, y)
    if "elapsed_s" in scored.columns:  # legs in progress are judged on the time that remained
        elapsed = np.nan_to_num(_floats(scored, "elapsed_s"))
        still = y > elapsed
        y, q, scored = (y - elapsed)[still], q[still], scored.filter(pl.Series(still))
    levels = [lv for lv in DEFAULT_LEVELS if round((1 - lv) / 2 * 100) in {int(c[1:]) for c in qcols}]
    metrics = {**summary_metrics(y, q, quantiles, levels), **enroute}
    segments: dict[str, list[dict]] = {}
    if SEGMENT_LEVEL not in levels:  # the file lacks the 80% interval's quantiles
        return {"metrics": {k: float(v) for k, v in metrics.items() if np.isfinite(v)}, "segments": segments}
    if "local_hour" in scored.columns:
        segments["hour"] = segment_coverage(
            scored["local_hour"].cast(pl.String), y, q, quantiles, SEGMENT_LEVEL
        ).to_dicts()
    if "origin_region" in scored.columns:
        segments["region"] = segment_coverage(
            scored["origin_region"].cast(pl.String), y, q, quantiles, SEGMENT_LEVEL
        ).to_dicts()
    if "haversine_km" in scored.columns:
        bands = pl.Series(distance_band(scored["haversine_km"].to_numpy()))
        segments["distance"] = segment_coverage(bands, y, q, quantiles, SEGMENT_LEVEL).to_dicts()
    return {"metrics": {k: float(v) for k, v in metrics.items() if np.isfinite(v)}, "segments": segments}


def _enroute_metrics(scored: pl.DataFrame, y: np.ndarray) -> dict[str, float]:
    """With late probabilities and promises: Brier score, skill against the base rate and calibration error."""
    if "late_probability" not in scored.columns or PROMISED not in scored.columns:
        return {}
    from models.enroute import risk_metrics

    p = _floats(scored, "late_probability")
    instants = scored.select(
        as_instant(PROMISED, scored.schema[PROMISED]).alias("promised"),
        as_instant("start_ts", scored.schema["start_ts"]).alias("start"),
    )
    window = (
        ((instants["promised"] - instants["start"]).dt.total_microseconds() / 1e6)
        .cast(pl.Float64)
        .fill_null(np.nan)
        .to_numpy()
    )
    elapsed = np.nan_to_num(_floats(scored, "elapsed_s"))
    usable = ~np.isnan(p) & ~np.isnan(window) & (y > elapsed)
    if not usable.any():
        return {}
    return risk_metrics(p[usable], (y[usable] > window[usable]).astype(float))
