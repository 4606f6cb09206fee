"""Train, calibrate and evaluate an ETA model on completed trips, split in time.

Windows (by UTC start day, in order): train (the last 15% of its days stop the boosting early) ->
calibration (conformal offsets) -> test (every reported metric, baselines included).

Point in time: training rows see aggregates as of their own start day (training trips only); calibration
rows see aggregates frozen from the training window, test rows from training + calibration, as a model
deployed at that moment would. The shipped model carries the test window's aggregates: the model
registered is exactly the model measured.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from features.aggregates import AggregateTable
from features.build import build_features
from features.spec import FeatureSpec
from models import baselines
from models.bundle import EtaModel, conformal_areas, conformal_segments, distance_band, feature_matrix
from models.conformal import fit_conformal
from models.metrics import DEFAULT_LEVELS, MIN_SEGMENT_TRIPS, segment_coverage, summary_metrics
from models.quantile import DEFAULT_QUANTILES, BoostingParams, make_regressor


@dataclass
class TrainConfig:
    model_kind: str = "lightgbm"
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # shares of days: train, calibration, test
    split_by: str = "date"  # or "day_of_month" for sources with anonymised months
    early_stopping_share: float = 0.15  # of the training days
    # share of training/calibration legs whose road distance is hidden, so that the model (and its
    # conformal offsets) also serve callers that do not know the road distance, e.g. the routing layer
    road_distance_dropout: float = 0.25
    min_segment_size: int = 300  # calibration legs a conformal segment needs for its own offsets
    # conformal area layers (origin, then destination area): an area's own extra offsets once it has this
    # many calibration legs; 0 switches the layers off (see models.conformal). The trade-off: a busy res-7
    # area (~130 legs a day in the simulated city) qualifies within a drift retraining's 3-day calibration
    # window, but with n legs the 80% interval's two ends each carry a coverage error of about
    # sqrt(0.09 / n) (2.4 points at 150, 1.5 at 400), so small areas add noise to their own coverage.
    min_area_size: int = 150
    # and, when > 0, evidence that it differs: at some trained level the share of its calibration legs above
    # the quantile is this many standard errors off nominal (coarse areas first). Off by default: it calms
    # regions of a stable city but slowed the recovery of a slowed district (models.conformal notes)
    area_evidence_z: float = 0.0
    params: BoostingParams = field(default_factory=BoostingParams)
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    levels: tuple[float, ...] = DEFAULT_LEVELS
    seed: int = 7


@dataclass
class Windows:
    """Which days fall in each window; `key` says whether days are dates or local days of the month."""

    key: str
    train: list[object]
    calibration: list[object]
    test: list[object]

    def as_dict(self) -> dict[str, str]:
        return {
            "split_by": self.key,
            **{
                f"{name}_days": f"{getattr(self, name)[0]}..{getattr(self, name)[-1]}"
                for name in ("train", "calibration", "test")
            },
        }


@dataclass
class TrainingResult:
    model: EtaModel
    windows: Windows
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    segments: dict[str, pl.DataFrame]
    test_frame: pl.DataFrame  # test legs' features with label and calibrated quantiles
    test_legs: pl.DataFrame  # the raw test legs (contract columns), for scoring other models on them
    data_hash: str
    rows: dict[str, int]

    def beats_baselines(self) -> dict[str, bool]:
        """Per baseline: better median MAE and mean pinball loss on the test window."""
        return {
            name: self.metrics["mae_s"] < m["mae_s"] and self.metrics["pinball_mean"] < m["pinball_mean"]
            for name, m in self.baseline_metrics.items()
        }


def data_hash(trips: pl.DataFrame) -> str:
    """A stable hash of the input rows (order-independent)."""
    row_hashes = trips.select("trip_id", "start_ts", "duration_s").hash_rows(seed=0).sort()
    return hashlib.sha256(row_hashes.to_numpy().tobytes()).hexdigest()[:16]


def split_key(trips: pl.DataFrame, split_by: str) -> pl.Expr:
    """The day a leg belongs to, on the source's local clock (the zone of its first row).

    'date': the local calendar date. 'day_of_month': the local day of the month, for sources whose month
    and year are anonymised (Sendy, the NYC sample), where only the day of the month orders time.
    """
    zone = trips["tz"][0] if trips.height else "UTC"
    local = pl.col("start_ts").dt.convert_time_zone(zone)
    if split_by == "date":
        return local.dt.date()
    if split_by == "day_of_month":
        return local.dt.day()
    raise ValueError(f"unknown split_by {split_by!r}; choose date or day_of_month")


def time_windows(trips: pl.DataFrame, split: tuple[float, float, float], split_by: str = "date") -> Windows:
    days = trips.select(split_key(trips, split_by).unique().sort()).to_series().to_list()
    if len(days) < 3:
        raise ValueError(f"need at least 3 days of trips to split train/calibration/test, got {len(days)}")
    n = len(days)
    n_train = min(max(1, round(n * split[0])), n - 2)
    n_cal = min(max(1, round(n * split[1])), n - n_train - 1)
    return Windows(split_by, days[:n_train], days[n_train : n_train + n_cal], days[n_train + n_cal :])


def _in(trips: pl.DataFrame, key: pl.Expr, days: list[object]) -> pl.DataFrame:
    return trips.filter(key.is_in(days)).sort("start_ts")


def frozen_after(history: pl.DataFrame, spec: FeatureSpec):
    """Aggregates from `history` only, frozen after its last arrival: what a model deployed next would see."""
    last_end = history.select((pl.col("start_ts") + pl.duration(seconds=pl.col("duration_s"))).max()).item()
    return AggregateTable.from_trips(history, spec).freeze(last_end.date() + timedelta(days=1))


def evaluate_segments(
    features: pl.DataFrame,
    y: np.ndarray,
    q_pred: np.ndarray,
    quantiles,
    spec: FeatureSpec,
    level: float = 0.8,
    min_count: int = MIN_SEGMENT_TRIPS,
) -> dict[str, pl.DataFrame]:
    """Conditional coverage per local hour, per H3 res-6 origin region and per distance band."""
    region = f"origin_region_r{spec.region_resolution}"
    return {
        "hour": segment_coverage(
            features["local_hour"].cast(pl.Int32).cast(pl.String).str.zfill(2),
            y,
            q_pred,
            quantiles,
            level,
            min_count,
        ),
        "region": segment_coverage(features[region].cast(pl.String), y, q_pred, quantiles, level, min_count),
        "distance": segment_coverage(
            pl.Series(distance_band(features["haversine_km"].to_numpy())),
            y,
            q_pred,
            quantiles,
            level,
            min_count,
        ),
    }


def hide_road_distance(trips: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Null the road distance of a deterministic `share` of legs (chosen by a hash of the trip id)."""
    if share <= 0 or "road_distance_km" not in trips.columns:
        return trips
    hidden = (pl.col("trip_id").hash(seed) % 10_000) < int(share * 10_000)
    return trips.with_columns(
        pl.when(hidden).then(None).otherwise(pl.col("road_distance_km")).alias("road_distance_km")
    )


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def train_eta_model(trips: pl.DataFrame, config: TrainConfig | None = None) -> TrainingResult:
    """Fit, calibrate and evaluate on valid contract rows; returns the model and everything measured."""
    config = config or TrainConfig()
    clock = _Stopwatch()
    quantiles = config.quantiles
    trips = trips.filter(pl.col("duration_s") > 0)
    windows = time_windows(trips, config.split, config.split_by)
    key = split_key(trips, config.split_by)
    train, cal, test = (_in(trips, key, days) for days in (windows.train, windows.calibration, windows.test))
    spec = config.spec
    if config.split_by == "day_of_month":
        # months are anonymised: a calendar look-back means nothing, every earlier-window trip counts
        span = (trips["start_ts"].max() - trips["start_ts"].min()).days + 2
        spec = spec.model_copy(update={"lookback_days": max(spec.lookback_days, span)})

    train, cal = (hide_road_distance(w, config.road_distance_dropout, config.seed) for w in (train, cal))

    # point in time: training rows see the snapshot of their own start day (within the training window);
    # calibration sees only training trips, test sees training + calibration trips
    f_train = build_features(train, AggregateTable.from_trips(train, spec), spec)
    f_cal = build_features(cal, frozen_after(train, spec), spec)
    test_aggregates = frozen_after(pl.concat([train, cal]), spec)
    f_test = build_features(test, test_aggregates, spec)
    y_train, y_cal, y_test = (f["duration_s"].to_numpy() for f in (train, cal, test))
    clock.lap("features")

    # the last training days stop the boosting early (later in time than what the trees see)
    train_key = train.select(key).to_series()
    stop_days = windows.train[max(1, int(len(windows.train) * (1 - config.early_stopping_share))) :]
    fit_mask = ~train_key.is_in(stop_days).to_numpy()
    if fit_mask.all() or not fit_mask.any():
        fit_mask = np.arange(len(train)) < int(len(train) * 0.85)
    x_train = feature_matrix(f_train, spec)
    regressor = make_regressor(config.model_kind, quantiles, spec.feature_names, config.params)
    regressor.fit(
        x_train[fit_mask], np.log(y_train[fit_mask]), x_train[~fit_mask], np.log(y_train[~fit_mask])
    )
    clock.lap("fit")

    raw_cal = regressor.predict(feature_matrix(f_cal, spec))
    calibration = fit_conformal(
        np.log(y_cal),
        raw_cal,
        quantiles,
        conformal_segments(f_cal),
        config.min_segment_size,
        areas=conformal_areas(f_cal, spec) if config.min_area_size > 0 else None,
        min_area_size=config.min_area_size,
        area_evidence_z=config.area_evidence_z,
    )
    # Ship what was evaluated: the aggregates are the ones the test window saw, so the registered model
    # is exactly the one measured, and scoring it later on newer legs never sees its own test labels.
    model = EtaModel(
        spec=spec,
        aggregates=test_aggregates,
        regressor=regressor,
        calibration=calibration,
        meta={
            "model_kind": config.model_kind,
            "target": "log_duration_s",
            "windows": windows.as_dict(),
            "seed": config.seed,
        },
    )
    q_test = model.predict_from_features(f_test)
    metrics = summary_metrics(y_test, q_test, quantiles, config.levels)
    segments = evaluate_segments(f_test, y_test, q_test, quantiles, spec)
    for name, table_ in segments.items():
        worst = float(table_["abs_gap"].max()) if table_.height else 0.0
        metrics[f"segment_{name}_worst_gap_80"] = worst
        metrics[f"segment_{name}_count"] = float(table_.height)
    # the same test legs for a caller that does not send road distance
    without_road = test.with_columns(pl.lit(None, dtype=pl.Float64).alias("road_distance_km"))
    q_blind = model.predict_from_features(build_features(without_road, test_aggregates, spec))
    blind = summary_metrics(y_test, q_blind, quantiles, config.levels)
    metrics.update(
        {f"no_road_distance_{k}": blind[k] for k in ("mae_s", "coverage_80", "coverage_90", "width_80_s")}
    )
    clock.lap("calibrate_and_evaluate")
    baseline_preds = {
        "global": baselines.global_quantiles(y_train, len(y_test), quantiles),
        "cell_hour": baselines.cell_hour_quantiles(f_train, y_train, f_test, quantiles),
        "distance_only": baselines.distance_only(
            f_train["haversine_km"].to_numpy(),
            y_train,
            f_test["haversine_km"].to_numpy(),
            quantiles,
            config.seed,
        ),
    }
    baseline_metrics = {
        name: summary_metrics(y_test, q, quantiles, config.levels) for name, q in baseline_preds.items()
    }
    clock.lap("baselines")
    metrics.update({f"seconds_{phase}": t for phase, t in clock.laps.items()})
    test_frame = f_test.with_columns(
        pl.Series("duration_s", y_test),
        *[pl.Series(f"q{round(q * 100):02d}", q_test[:, i]) for i, q in enumerate(quantiles)],
    )
    return TrainingResult(
        model=model,
        windows=windows,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        segments=segments,
        test_frame=test_frame,
        test_legs=test,
        data_hash=data_hash(trips),
        rows={"train": len(train), "calibration": len(cal), "test": len(test)},
    )
