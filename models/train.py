"""Train, calibrate and evaluate an ETA model on completed trips, split in time; then refit it for production.

Windows (by local start day, in order): train (its last days stop the boosting early) -> calibration
(conformal offsets) -> test (every reported metric, baselines included). The model measured there is the
*evaluated* model. The *shipped* model is then refit the same way on every day but the latest
calibration-window's worth, and calibrated on those latest days, so the registered model has seen the
newest trips; its aggregates are frozen after the last day. The reported numbers describe the evaluated
model, which is built exactly as the shipped one is, one window earlier.

Point in time: training rows see aggregates as of their own start day (training trips only); calibration
rows see a snapshot frozen after the fit days, test rows one frozen after the calibration days, as a model
deployed at that moment would see them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import combinations
from typing import Protocol

import numpy as np
import polars as pl

from features.aggregates import AggregateTable, FrozenAggregates
from features.build import build_features
from features.spec import FeatureSpec
from models import baselines
from models.bundle import EtaModel, calibration_keys, caller_inputs, distance_band, feature_matrix
from models.conformal import CalibrationConfig, fit_conformal
from models.domain import ModelDomain
from models.enroute import enroute_metrics, fit_enroute
from models.metrics import DEFAULT_LEVELS, MIN_SEGMENT_TRIPS, segment_coverage, summary_metrics
from models.quantile import DEFAULT_QUANTILES, BoostingParams, QuantileRegressor, make_regressor, qtag

log = logging.getLogger(__name__)  # phases, for progress displays (eta demo) and run logs

SPLITS = ("date", "day_of_month")
# the optional inputs a caller may leave out, and the contract columns each one is
OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {
    "courier": ("courier_id",),
    "road_distance": ("road_distance_km",),
    "weather": ("temperature_c", "precipitation_mm"),
}


@dataclass
class TrainConfig:
    model_kind: str = "lightgbm"
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # shares of days: train, calibration, test
    split_by: str = "date"  # or "day_of_month" for sources with anonymised months (see `split_for`)
    early_stopping_share: float = 0.15  # of the training days
    # share of training legs with each optional input hidden (independently), so that the trees also serve
    # callers that do not send it; the conformal profiles then give those callers their own offsets
    input_dropout: float = 0.1
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    refit: bool = True  # ship a model refit on the newest days (False: ship the evaluated model)
    # warn when the snapshot behind the calibration features holds fewer trips than this share of the
    # snapshot the test legs (or, after the refit, requests) see
    thin_snapshot_share: float = 0.5
    params: BoostingParams = field(default_factory=BoostingParams)
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    levels: tuple[float, ...] = DEFAULT_LEVELS
    seed: int = 7


def split_for(calendar: str | None, requested: str | None) -> str:
    """The split of trips whose source records `calendar` ('date' or 'day_of_month'): the requested one,
    or the source's own; a calendar split of a source whose months are stand-ins is refused."""
    if requested is not None and requested not in SPLITS:
        raise ValueError(f"unknown split {requested!r}; choose {' or '.join(SPLITS)}")
    if requested == "date" and calendar == "day_of_month":
        raise ValueError(
            "these trips come from a source whose month and year are anonymised (only the day of the month "
            "is real), so splitting them by calendar date would mix days from stand-in months; "
            "use --split-by day_of_month (the default for this source)"
        )
    return requested or calendar or "date"


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

    def refit(self) -> tuple[list[object], list[object]]:
        """The shipped model's fit and calibration days: every day but the latest len(calibration), then those."""
        days = [*self.train, *self.calibration, *self.test]
        n = len(self.calibration)
        return days[:-n], days[-n:]


@dataclass
class TrainingResult:
    model: EtaModel  # the model shipped (refit on the newest days, unless `TrainConfig.refit` is off)
    evaluated: EtaModel  # the model every metric describes
    windows: Windows
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    segments: dict[str, pl.DataFrame]
    test_frame: pl.DataFrame  # test legs' features with label and the evaluated model's quantiles
    test_legs: pl.DataFrame  # the raw test legs (contract columns), for scoring other models on them
    data_hash: str
    rows: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    refit: dict[str, str] = field(default_factory=dict)  # what the shipped model was fitted and calibrated on

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


def frozen_after(history: pl.DataFrame, spec: FeatureSpec) -> FrozenAggregates:
    """Aggregates from `history` only, frozen after its last arrival: what a model deployed next would see."""
    last_end = history.select((pl.col("start_ts") + pl.duration(seconds=pl.col("duration_s"))).max()).item()
    return AggregateTable.from_trips(history, spec).freeze(last_end.date() + timedelta(days=1))


def snapshot_trips(aggregates: FrozenAggregates) -> int:
    """How many trips a frozen snapshot holds (its global level)."""
    table = aggregates.tables["global"]
    return int(table["trips"].sum()) if table.height else 0


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


def hide_inputs(legs: pl.DataFrame, inputs: tuple[str, ...]) -> pl.DataFrame:
    """The legs with the given optional inputs (OPTIONAL_INPUTS names) set to null."""
    columns = [c for name in inputs for c in OPTIONAL_INPUTS[name] if c in legs.columns]
    return legs.with_columns(pl.lit(None, dtype=legs.schema[c]).alias(c) for c in columns)


def drop_inputs(legs: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Hide each optional input on its own deterministic `share` of legs (chosen by a hash of the trip id)."""
    if share <= 0:
        return legs
    hidden = []
    for i, columns in enumerate(OPTIONAL_INPUTS.values()):
        chosen = (pl.col("trip_id").hash(seed + i) % 10_000) < int(share * 10_000)
        hidden += [
            pl.when(chosen).then(None).otherwise(pl.col(c)).alias(c) for c in columns if c in legs.columns
        ]
    return legs.with_columns(hidden)


def inputs_present(legs: pl.DataFrame) -> tuple[str, ...]:
    """The optional inputs (OPTIONAL_INPUTS names) that some of `legs` carry."""
    return tuple(
        name
        for name, columns in OPTIONAL_INPUTS.items()
        if any(c in legs.columns and legs[c].null_count() < legs.height for c in columns)
    )


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def _days(trips: pl.DataFrame, key: pl.Expr, days: list[object]) -> pl.DataFrame:
    return trips.filter(key.is_in(days)).sort("start_ts")


def fit_boosters(
    fit_legs: pl.DataFrame, key: pl.Expr, stop_days: list[object], spec: FeatureSpec, config: TrainConfig
) -> tuple[QuantileRegressor, pl.DataFrame]:
    """Quantile boosters on legs with as-of features; the legs of `stop_days` only stop the boosting.
    Returns them and the legs' features."""
    legs = drop_inputs(fit_legs, config.input_dropout, config.seed)
    features = build_features(legs, AggregateTable.from_trips(legs, spec), spec)
    y = np.log(legs["duration_s"].to_numpy())
    fit_mask = ~legs.select(key).to_series().is_in(stop_days).to_numpy()
    if fit_mask.all() or not fit_mask.any():
        fit_mask = np.arange(len(legs)) < int(len(legs) * 0.85)
    x = feature_matrix(features, spec)
    regressor = make_regressor(config.model_kind, config.quantiles, spec.feature_names, config.params)
    return regressor.fit(x[fit_mask], y[fit_mask], x[~fit_mask], y[~fit_mask]), features


def calibrate(
    regressor: QuantileRegressor,
    cal_legs: pl.DataFrame,
    aggregates: FrozenAggregates,
    spec: FeatureSpec,
    config: CalibrationConfig,
):
    """Conformal offsets on the calibration legs, once per caller profile: every subset of the optional
    inputs the legs carry is hidden in a copy of them (see models.conformal)."""
    present = inputs_present(cal_legs)
    config = replace(config, profile_inputs=tuple(i for i in config.profile_inputs if i in present))
    hidden_sets = [
        h for r in range(len(config.profile_inputs) + 1) for h in combinations(config.profile_inputs, r)
    ]
    features = pl.concat(
        [build_features(hide_inputs(cal_legs, hidden), aggregates, spec) for hidden in hidden_sets]
    )
    raw = regressor.predict(feature_matrix(features, spec))
    y = np.tile(cal_legs["duration_s"].to_numpy(), len(hidden_sets))
    keys = calibration_keys(features, spec, config)
    calibration = fit_conformal(y, raw, regressor.quantiles, keys, config)
    # legs in progress are calibrated on the legs as they were sent (the first copy hides nothing)
    sent = slice(0, cal_legs.height)
    q_sent = calibration.apply(raw[sent], {name: v[sent] for name, v in keys.items()})
    return calibration, fit_enroute(q_sent, y[sent], regressor.quantiles)


class BoosterEngine(Protocol):
    """Where features of the training legs are built and boosters trained: `fit_boosters` in this process
    (the default), or `models.distributed.DaskEngine` on a Dask cluster; both give the same model."""

    def fit_boosters(
        self,
        fit_legs: pl.DataFrame,
        key: pl.Expr,
        stop_days: list[object],
        spec: FeatureSpec,
        config: TrainConfig,
    ) -> tuple[QuantileRegressor, pl.DataFrame]: ...


@dataclass
class Fitted:
    model: EtaModel
    fit_legs: pl.DataFrame
    fit_features: pl.DataFrame  # as the boosters saw them (inputs dropped out)
    cal_legs: pl.DataFrame


def early_stopping_days(fit_days: list[object], config: TrainConfig) -> list[object]:
    """The newest `early_stopping_share` of the fit days: they only stop the boosting (at least one day is boosted)."""
    return fit_days[max(1, int(len(fit_days) * (1 - config.early_stopping_share))) :]


def fit_model(
    trips: pl.DataFrame,
    key: pl.Expr,
    fit_days: list[object],
    cal_days: list[object],
    spec: FeatureSpec,
    config: TrainConfig,
    warnings: list[str],
    engine: BoosterEngine | None = None,
) -> Fitted:
    """Boosters on `fit_days`, offsets on `cal_days`; the model carries the snapshot after both."""
    fit_legs, cal_legs = _days(trips, key, fit_days), _days(trips, key, cal_days)
    stop_days = early_stopping_days(fit_days, config)
    boost = engine.fit_boosters if engine is not None else fit_boosters
    regressor, fit_features = boost(fit_legs, key, stop_days, spec, config)
    cal_aggregates = frozen_after(fit_legs, spec)
    calibration, enroute = calibrate(regressor, cal_legs, cal_aggregates, spec, config.calibration)
    seen = pl.concat([fit_legs, cal_legs])
    served = frozen_after(seen, spec)
    behind, ahead = snapshot_trips(cal_aggregates), snapshot_trips(served)
    if behind < config.thin_snapshot_share * ahead:
        warnings.append(
            f"the snapshot behind the calibration days {cal_days[0]}..{cal_days[-1]} holds {behind} trips, "
            f"{behind / max(ahead, 1):.0%} of the {ahead} the model serves with (a gap in the data before "
            "them?): their conformal offsets may not fit the legs it serves"
        )
    # the domain covers the calibration legs too: their offsets and the served snapshot come from them
    domain = ModelDomain.from_legs(seen, spec.region_resolution)
    model = EtaModel(
        spec=spec,
        aggregates=served,
        regressor=regressor,
        calibration=calibration,
        enroute=enroute,
        domain=domain,
    )
    return Fitted(model, fit_legs, fit_features, cal_legs)


PROFILES: dict[str, tuple[str, ...]] = {
    "no_courier": ("courier",),
    "no_road_distance": ("road_distance",),
    "no_weather": ("weather",),
    "no_courier_no_road_distance": ("courier", "road_distance"),
}
PROFILE_METRICS = ("coverage_80", "coverage_90", "width_80_s", "mae_s")


def profile_metrics(
    model: EtaModel, test: pl.DataFrame, test_features: pl.DataFrame, config: TrainConfig
) -> dict[str, float]:
    """Test-window metrics for callers that leave optional inputs out, and for legs of unseen couriers."""
    y = test["duration_s"].to_numpy()
    present = inputs_present(test)
    metrics: dict[str, float] = {}
    for name, hidden in PROFILES.items():
        if not all(h in present for h in hidden):
            continue
        q = model.predict_quantiles(hide_inputs(test, hidden))
        m = summary_metrics(y, q, config.quantiles, config.levels)
        metrics.update({f"profile_{name}_{k}": m[k] for k in PROFILE_METRICS})
    # couriers the snapshot has never seen (a courier id without history)
    unseen = (
        test["courier_id"].is_not_null().to_numpy() & ~caller_inputs(test_features)["courier"]
        if "courier" in present
        else np.zeros(len(y), dtype=bool)
    )
    metrics["profile_unseen_courier_n"] = float(unseen.sum())
    if unseen.sum() >= MIN_SEGMENT_TRIPS:
        m = summary_metrics(
            y[unseen],
            model.predict_from_features(test_features.filter(unseen)),
            config.quantiles,
            config.levels,
        )
        metrics.update({f"profile_unseen_courier_{k}": m[k] for k in PROFILE_METRICS})
    return metrics


def training_spec(trips: pl.DataFrame, config: TrainConfig) -> FeatureSpec:
    """The feature spec to train with: where months are anonymised (split by day of month) a calendar
    look-back means nothing, so every earlier-window trip counts."""
    spec = config.spec
    if config.split_by == "day_of_month":
        span = (trips["start_ts"].max() - trips["start_ts"].min()).days + 2
        spec = spec.model_copy(update={"lookback_days": max(spec.lookback_days, span)})
    return spec


@dataclass
class HeldOutScores:
    """The evaluated model on its test days: features, labels, quantiles, metrics and segment tables."""

    legs: pl.DataFrame
    features: pl.DataFrame
    y: np.ndarray
    q: np.ndarray
    metrics: dict[str, float]
    segments: dict[str, pl.DataFrame]

    def frame(self, quantiles: tuple[float, ...]) -> pl.DataFrame:
        """The test legs' features with the label and the quantiles (TrainingResult.test_frame)."""
        return self.features.with_columns(
            pl.Series("duration_s", self.y),
            *[pl.Series(qtag(q), self.q[:, i]) for i, q in enumerate(quantiles)],
        )


def score_test_days(
    model: EtaModel, test: pl.DataFrame, spec: FeatureSpec, config: TrainConfig
) -> HeldOutScores:
    """Every test metric: the summary, the worst segment gaps, the caller profiles, en-route windows and
    the calibration layers' sizes."""
    features = model.features(test)
    y = test["duration_s"].to_numpy()
    q = model.predict_from_features(features)
    metrics = summary_metrics(y, q, config.quantiles, config.levels)
    segments = evaluate_segments(features, y, q, config.quantiles, spec)
    for name, table_ in segments.items():
        metrics[f"segment_{name}_worst_gap_80"] = float(table_["abs_gap"].max()) if table_.height else 0.0
        metrics[f"segment_{name}_count"] = float(table_.height)
    metrics.update(profile_metrics(model, test, features, config))
    metrics.update(enroute_metrics(model.enroute, q, y))
    for layer, groups in model.calibration.summary().items():
        metrics[f"calibration_{layer}_groups"] = float(groups)
    return HeldOutScores(test, features, y, q, metrics, segments)


def baseline_metrics(
    fitted: Fitted, scores: HeldOutScores, config: TrainConfig
) -> dict[str, dict[str, float]]:
    """The simple methods the model must beat, fitted on the same legs and scored on the same test days."""
    f_train, y_train = fitted.fit_features, fitted.fit_legs["duration_s"].to_numpy()
    f_test, y_test, quantiles = scores.features, scores.y, config.quantiles
    predictions = {
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
    return {name: summary_metrics(y_test, q, quantiles, config.levels) for name, q in predictions.items()}


def train_eta_model(
    trips: pl.DataFrame, config: TrainConfig | None = None, engine: BoosterEngine | None = None
) -> TrainingResult:
    """Fit, calibrate and evaluate on valid contract rows, then refit for production (see the module notes).
    `engine`: where the boosters' features are built and the boosters trained (default: this process)."""
    config = config or TrainConfig()
    clock = _Stopwatch()
    trips = trips.filter(pl.col("duration_s") > 0)
    windows = time_windows(trips, config.split, config.split_by)
    key = split_key(trips, config.split_by)
    spec = training_spec(trips, config)
    warnings: list[str] = []

    log.info("fitting and calibrating on %s..%s", windows.train[0], windows.calibration[-1])
    fitted = fit_model(trips, key, windows.train, windows.calibration, spec, config, warnings, engine)
    evaluated = fitted.model
    clock.lap("fit_and_calibrate")
    log.info("evaluating on the test days %s..%s", windows.test[0], windows.test[-1])
    scores = score_test_days(evaluated, _days(trips, key, windows.test), spec, config)
    clock.lap("evaluate")
    log.info("scoring the baselines")
    baselines_scored = baseline_metrics(fitted, scores, config)
    clock.lap("baselines")

    meta = {"model_kind": config.model_kind, "target": "log_duration_s", "seed": config.seed}
    # the newest day whose labels a model used (boosters, offsets or aggregates): a later gate compares it
    # with a challenger only on days after that
    evaluated.meta = {**meta, "windows": windows.as_dict(), "last_labelled_day": str(windows.calibration[-1])}
    shipped, refit = evaluated, {}
    if config.refit:
        fit_days, cal_days = windows.refit()
        log.info("refitting for production on %s..%s", fit_days[0], cal_days[-1])
        shipped = fit_model(trips, key, fit_days, cal_days, spec, config, warnings, engine).model
        refit = {
            "fit_days": f"{fit_days[0]}..{fit_days[-1]}",
            "calibration_days": f"{cal_days[0]}..{cal_days[-1]}",
        }
        shipped.meta = {**evaluated.meta, "refit": refit, "last_labelled_day": str(cal_days[-1])}
        clock.lap("refit")
    metrics = {**scores.metrics, **{f"seconds_{phase}": t for phase, t in clock.laps.items()}}
    return TrainingResult(
        model=shipped,
        evaluated=evaluated,
        windows=windows,
        metrics=metrics,
        baseline_metrics=baselines_scored,
        segments=scores.segments,
        test_frame=scores.frame(config.quantiles),
        test_legs=scores.legs,
        data_hash=data_hash(trips),
        rows={
            "train": fitted.fit_features.height,
            "calibration": fitted.cal_legs.height,
            "test": len(scores.legs),
        },
        warnings=warnings,
        refit=refit,
    )
