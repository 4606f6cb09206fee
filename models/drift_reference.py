"""What a day of served legs is compared with: the watched columns, the monitor's settings, the per-leg
monitoring frame and a model's reference (a fixed, seeded sample for Evidently and per-area coverage counts
of its whole test window, built once per model and reused for every day it serves)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from models.metrics import interval, quantile_column

# Model inputs watched for data drift, by Evidently column type. Left out on purpose: the calendar columns
# that are constant within a day (weekday, weekday_sin/cos, is_weekend, is_holiday: one day of legs always
# "drifts" from a multi-day reference), H3 ids at res 9 and 8 (thousands of sparse categories: a day's
# sample flags noise), and columns that restate another (local_hour, hour_sin/cos, grid distance, counts).
NUMERIC_INPUTS: tuple[str, ...] = (
    "haversine_km",
    "road_distance_km",
    "bearing_deg",
    "minute_of_day",
    "temperature_c",
    "precipitation_mm",
    "origin_log_speed",
    "dest_log_speed",
    "od_log_speed",
    "prior_duration_s",
    "courier_log_speed_factor",
)
CATEGORICAL_INPUTS: tuple[str, ...] = (
    "vehicle_type_code",
    "hour_band",
    "is_raining",
    "origin_cell_r7",
    "dest_cell_r7",
)
PREDICTION_COLUMNS: tuple[str, ...] = ("pred_log_q50", "pred_log_width_80")
RESIDUAL_COLUMN = "log_residual"
SEGMENT_COLUMN = "segment"
REFERENCE_SAMPLE_FILE = "reference_sample.parquet"
REFERENCE_META_FILE = "reference.json"


@dataclass(frozen=True)
class DriftSettings:
    """Every method, threshold and sample size the monitor relies on (nothing left to Evidently's defaults).

    The thresholds were set on simulated cities so that a stationary month raises no alarm while a storm
    week and a slowed district do; precipitation is judged a second time in mm/h, because a storm is one
    drifted column of 16, which the share rule cannot see (docs/decisions/drift-thresholds.md).
    """

    reference_sample: int = 5000  # rows kept per model for Evidently
    current_sample: int = 5000  # rows of a day given to Evidently (days above are sampled, seeded)
    seed: int = 7
    # inputs take distances (drift when score >= threshold): the report counts them by that rule
    numeric_method: str = "wasserstein"  # normed by the reference std; drift when >= threshold
    numeric_threshold: float = 0.1
    categorical_method: str = "jensenshannon"  # Jensen-Shannon distance; drift when >= threshold
    categorical_threshold: float = 0.1
    drift_share: float = 0.5  # share of drifted inputs that makes the day's data drifted
    prediction_threshold: float = 0.4  # normed Wasserstein of the log median / log width
    residual_threshold: float = 0.4  # normed Wasserstein of log(actual / median)
    weather_column: str = "precipitation_mm"  # judged again, in its own units, for storms
    weather_method: str = "ed"  # Evidently's energy distance (scipy), not normed
    weather_threshold: float = 3.5
    levels: tuple[float, ...] = (0.8, 0.9)
    coverage_drop: float = 0.05  # overall coverage this far below the reference's ...
    segment_resolution: int = 7  # origin H3 cell that defines an area for coverage decay
    segment_min_legs: int = 60  # ... areas with fewer labelled legs that day are not judged
    segment_drop: float = 0.12  # an area's coverage this far below what is expected of it ...
    segment_slack: float = 0.05  # ... which is its reference coverage, but at least nominal minus this
    z_threshold: float = 4.0  # ... and this many standard errors below (two-proportion z-test)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def level_tag(level: float) -> str:
    """The column suffix of a coverage level: 0.8 -> "80"."""
    return f"{round(level * 100)}"


def monitoring_frame(
    features: pl.DataFrame,
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    duration_s: np.ndarray | None = None,
    segment_resolution: int = 7,
    levels: Sequence[float] = (0.8, 0.9),
) -> pl.DataFrame:
    """What the monitor looks at per served leg: watched inputs, predictions, and (with labels) the residual
    and whether each interval covered the actual. `features` is `EtaModel.features(legs)`."""
    median = q_pred[:, quantile_column(quantiles, 0.5)]
    lower, upper = interval(q_pred, quantiles, 0.8)
    columns: dict[str, object] = {
        "pred_log_q50": np.log(median),
        "pred_log_width_80": np.log(np.maximum(upper - lower, 1.0)),
    }
    segment = features[f"origin_cell_r{segment_resolution}"].cast(pl.String).fill_null("?")
    frame = features.select(
        *(pl.col(c).cast(pl.Float64) for c in NUMERIC_INPUTS),
        *(pl.col(c).cast(pl.String).fill_null("missing") for c in CATEGORICAL_INPUTS),
    ).with_columns(**{k: pl.Series(k, v) for k, v in columns.items()}, **{SEGMENT_COLUMN: segment})
    if duration_s is None:
        return frame
    y = np.asarray(duration_s, dtype=float)
    labelled = {RESIDUAL_COLUMN: np.log(y) - np.log(median)}
    for level in levels:
        lo, hi = interval(q_pred, quantiles, level)
        labelled[f"covered_{level_tag(level)}"] = (y >= lo) & (y <= hi)
    return frame.with_columns(**{k: pl.Series(k, v) for k, v in labelled.items()})


def sample_rows(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most `n` rows, drawn without replacement with a fixed seed (all rows when there are fewer)."""
    return frame if frame.height <= n else frame.sample(n=n, seed=seed, shuffle=False)


def segment_counts(frame: pl.DataFrame, levels: Sequence[float]) -> pl.DataFrame:
    """Per area: labelled legs and how many each interval covered."""
    return (
        frame.group_by(SEGMENT_COLUMN)
        .agg(
            pl.len().alias("n"),
            *(pl.col(f"covered_{level_tag(lv)}").sum().alias(f"covered_{level_tag(lv)}") for lv in levels),
        )
        .sort(SEGMENT_COLUMN)
    )


@dataclass
class DriftReference:
    """A model's monitoring reference: a fixed sample for Evidently and coverage counts per area."""

    sample: pl.DataFrame
    segments: pl.DataFrame
    coverage: dict[str, float]
    rows: int
    model_version: int | None = None

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.sample.write_parquet(directory / REFERENCE_SAMPLE_FILE)
        self.segments.write_parquet(directory / "reference_segments.parquet")
        meta = {"coverage": self.coverage, "rows": self.rows, "model_version": self.model_version}
        (directory / REFERENCE_META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> DriftReference:
        meta = json.loads((directory / REFERENCE_META_FILE).read_text())
        return cls(
            sample=pl.read_parquet(directory / REFERENCE_SAMPLE_FILE),
            segments=pl.read_parquet(directory / "reference_segments.parquet"),
            coverage={k: float(v) for k, v in meta["coverage"].items()},
            rows=int(meta["rows"]),
            model_version=meta.get("model_version"),
        )


def build_reference(
    frame: pl.DataFrame, settings: DriftSettings = DriftSettings(), model_version: int | None = None
) -> DriftReference:
    """The reference of one model from its labelled `monitoring_frame` (computed once, then reused)."""
    if RESIDUAL_COLUMN not in frame.columns:
        raise ValueError("the reference needs labels: build its monitoring frame with duration_s")
    coverage = {level_tag(lv): float(frame[f"covered_{level_tag(lv)}"].mean()) for lv in settings.levels}
    return DriftReference(
        sample=sample_rows(frame, settings.reference_sample, settings.seed),
        segments=segment_counts(frame, settings.levels),
        coverage=coverage,
        rows=frame.height,
        model_version=model_version,
    )
