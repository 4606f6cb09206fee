"""Batch scoring and evaluation of files of legs (the `eta predict` / `eta evaluate` commands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from models.bundle import EtaModel, distance_band, interval_from_quantiles
from models.metrics import DEFAULT_LEVELS, segment_coverage, summary_metrics
from models.quantile import qtag

REQUIRED_LEG_COLUMNS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng", "start_ts", "tz")


def read_legs(path: Path, require_label: bool = False) -> pl.DataFrame:
    """Legs from CSV or Parquet; start_ts parsed as an ISO instant (UTC if it has no offset)."""
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, try_parse_dates=False)
    required = (*REQUIRED_LEG_COLUMNS, "duration_s") if require_label else REQUIRED_LEG_COLUMNS
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name} lacks required column(s) {missing}")
    if frame["start_ts"].dtype == pl.String:
        frame = frame.with_columns(pl.col("start_ts").str.to_datetime(time_zone="UTC", strict=False))
        if frame["start_ts"].null_count():
            bad = frame.with_row_index().filter(pl.col("start_ts").is_null())["index"].head(5).to_list()
            raise ValueError(f"{path.name}: start_ts is not an ISO timestamp on rows {bad}")
    elif isinstance(frame["start_ts"].dtype, pl.Datetime) and frame["start_ts"].dtype.time_zone is None:
        frame = frame.with_columns(pl.col("start_ts").dt.replace_time_zone("UTC"))
    return frame


def score_legs(model: EtaModel, legs: pl.DataFrame, levels=DEFAULT_LEVELS) -> pl.DataFrame:
    """The input legs plus q05..q95 and lower_/upper_ per interval level (seconds), and the context used."""
    features = model.features(legs)
    q = model.predict_from_features(features)
    columns = {qtag(t): q[:, i] for i, t in enumerate(model.quantiles)}
    for level in levels:
        lower, upper = interval_from_quantiles(q, model.quantiles, level)
        tag = round(level * 100)
        columns[f"lower_{tag}"], columns[f"upper_{tag}"] = lower, upper
    context = features.select(
        "haversine_km", "local_hour", f"origin_region_r{model.spec.region_resolution}"
    ).rename({f"origin_region_r{model.spec.region_resolution}": "origin_region"})
    return pl.concat([legs, context, pl.DataFrame(columns)], how="horizontal")


def write_table(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%z")).write_csv(path)


def evaluate_scored(scored: pl.DataFrame) -> dict[str, object]:
    """All metrics of a scored file (needs duration_s and the q columns)."""
    qcols = sorted(
        (c for c in scored.columns if c.startswith("q") and c[1:].isdigit()), key=lambda c: int(c[1:])
    )
    if "q50" not in qcols:
        raise KeyError("the scored file has no q50 column; score it with `eta predict` first")
    quantiles = [int(c[1:]) / 100 for c in qcols]
    y = scored["duration_s"].to_numpy().astype(float)
    q = scored.select(qcols).to_numpy()
    levels = [lv for lv in DEFAULT_LEVELS if round((1 - lv) / 2 * 100) in {int(c[1:]) for c in qcols}]
    metrics = summary_metrics(y, q, quantiles, levels)
    segments: dict[str, list[dict]] = {}
    if "local_hour" in scored.columns:
        segments["hour"] = segment_coverage(
            scored["local_hour"].cast(pl.String), y, q, quantiles, 0.8
        ).to_dicts()
    if "origin_region" in scored.columns:
        segments["region"] = segment_coverage(
            scored["origin_region"].cast(pl.String), y, q, quantiles, 0.8
        ).to_dicts()
    if "haversine_km" in scored.columns:
        bands = pl.Series(distance_band(scored["haversine_km"].to_numpy()))
        segments["distance"] = segment_coverage(bands, y, q, quantiles, 0.8).to_dicts()
    return {"metrics": {k: float(v) for k, v in metrics.items() if np.isfinite(v)}, "segments": segments}
