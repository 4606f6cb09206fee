"""Training on a Dask cluster: the same features and boosters as in-process, spread over the workers.

The legs are split by day. Each worker summarises its days' aggregates (`daily_totals`); the table combined
from them is sent back to every worker, which builds its days' features with the same `build_features`, so
every leg sees the snapshot of its own start day as in-process. The boosters are trained by LightGBM's and
XGBoost's own Dask estimators. The result is the same `LightGBMQuantile` / `XGBoostQuantile` holding native
boosters, so the saved model, the registry and serving do not change.

LightGBM's Dask interface has no early stopping (lightgbm-org/LightGBM#3712): each worker sees its own part
of an eval set and would stop at another round. `StopOnValidation` gives every worker the same validation
legs, so all workers compute the same loss of the same trees and stop together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl

from features.aggregates import AggregateTable, daily_totals
from features.build import build_features
from features.spec import FeatureSpec
from models.bundle import feature_matrix
from models.quantile import LightGBMQuantile, QuantileRegressor, XGBoostQuantile, make_regressor
from models.train import TrainConfig, drop_inputs

SCHEDULER_ENV = "ETA_DASK_SCHEDULER"
# LightGBM's early stopping copies its validation legs to every worker: beyond this many, a seeded sample
VALIDATION_ROWS = 200_000
CONNECT_TIMEOUT_S = 30  # a scheduler under load can take a while to accept a client


def scheduler_address(explicit: str | None = None) -> str | None:
    """The Dask scheduler to train on: `explicit`, else $ETA_DASK_SCHEDULER, else None (in-process)."""
    return explicit or os.environ.get(SCHEDULER_ENV) or None


def engine_name(engine: DaskEngine | None) -> str:
    """How a training run is labelled in MLflow (param `engine`)."""
    return f"dask {engine.client.scheduler.address}" if engine is not None else "in-process"


@contextmanager
def dask_engine(address: str | None) -> Iterator[DaskEngine | None]:
    """A `DaskEngine` connected to the scheduler at `address` while the block runs; None without one."""
    if not address:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except OSError as error:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address}: {error}") from error
    try:
        yield DaskEngine(client)
    finally:
        client.close()


class StopOnValidation:
    """LightGBM callback: early stopping on one validation set, the same on every worker.

    Keeps the validation predictions up to date one tree at a time (`init` plus each new tree's output)
    and stops, as `lightgbm.early_stopping` does, when the pinball loss at `alpha` has not improved for
    `patience` rounds or the last round is reached; the booster keeps the best round."""

    order = 30  # after LightGBM's own evaluation callbacks

    def __init__(self, X: np.ndarray, y: np.ndarray, init: np.ndarray | None, alpha: float, patience: int):
        self.X, self.y, self.alpha, self.patience = X, y, alpha, patience
        self.prediction = np.zeros(len(y)) if init is None else np.asarray(init, dtype=float).copy()
        self.best_loss, self.best_round = np.inf, 0

    def __call__(self, env) -> None:
        import lightgbm as lgb

        self.prediction += env.model.predict(
            self.X, start_iteration=env.iteration, num_iteration=1, raw_score=True
        )
        residual = self.y - self.prediction
        loss = float(np.mean(np.maximum(self.alpha * residual, (self.alpha - 1) * residual)))
        if loss < self.best_loss:
            self.best_loss, self.best_round = loss, env.iteration
        last_round = env.iteration == env.end_iteration - 1  # as LightGBM's: keep the best round even then
        if last_round or env.iteration - self.best_round >= self.patience:
            raise lgb.callback.EarlyStopException(
                self.best_round, [("valid", "quantile", self.best_loss, False)]
            )


def _log_durations(legs: pl.DataFrame) -> np.ndarray:
    return np.log(legs["duration_s"].to_numpy())


@dataclass
class TrainingParts:
    """The training legs' features and targets, per day partition, held by the workers."""

    features: list  # futures of feature frames, in the legs' order
    fit_X: object  # dask arrays of the boosted days
    fit_y: object
    stop_X: object  # dask arrays of the days that only stop the boosting
    stop_y: object
    median_target: float  # of the boosted days (XGBoost's base score)


@dataclass
class DaskEngine:
    """Feature building and boosting on the workers of a Dask cluster."""

    client: object  # distributed.Client

    def fit_boosters(
        self,
        fit_legs: pl.DataFrame,
        key: pl.Expr,
        stop_days: list[object],
        spec: FeatureSpec,
        config: TrainConfig,
    ) -> tuple[QuantileRegressor, pl.DataFrame]:
        """As `models.train.fit_boosters`, on the cluster: the boosters and the legs' features."""
        parts = self.training_parts(fit_legs, key, stop_days, spec, config)
        regressor = self.fit(parts, spec, config)
        features = pl.concat(self.client.gather(parts.features))
        if not features["trip_id"].equals(fit_legs["trip_id"]):
            raise RuntimeError("features came back from the workers out of the legs' order")
        return regressor, features

    def training_parts(
        self,
        legs: pl.DataFrame,
        key: pl.Expr,
        stop_days: list[object],
        spec: FeatureSpec,
        config: TrainConfig,
    ) -> TrainingParts:
        """Split `legs` (sorted by start) by day onto the workers and build their features there."""
        import dask.array as da
        from dask import delayed

        days = legs.select(key.alias("_day")).to_series()
        frames = legs.with_columns(days).partition_by("_day", maintain_order=True, include_key=False)
        stopping = [frame_day in set(stop_days) for frame_day in days.unique(maintain_order=True).to_list()]
        if all(stopping) or not any(stopping):
            raise ValueError("training on Dask needs at least one boosted day and one early-stopping day")
        client = self.client
        shown = client.map(drop_inputs, client.scatter(frames), share=config.input_dropout, seed=config.seed)
        totals = client.gather(client.map(daily_totals, shown, spec=spec))
        table = client.scatter(AggregateTable.from_daily(totals, spec), broadcast=True)
        features = client.map(build_features, shown, aggregates=table, spec=spec)
        n_features = len(spec.feature_names)

        def arrays(pick: bool) -> tuple[object, object]:
            chosen = [i for i, stop in enumerate(stopping) if stop == pick]
            X = [client.submit(feature_matrix, features[i], spec) for i in chosen]
            y = [client.submit(_log_durations, shown[i]) for i in chosen]
            heights = [frames[i].height for i in chosen]
            return (
                da.concatenate(
                    [
                        da.from_delayed(delayed(x), (h, n_features), np.float32)
                        for x, h in zip(X, heights, strict=True)
                    ]
                ),
                da.concatenate(
                    [da.from_delayed(delayed(t), (h,), np.float64) for t, h in zip(y, heights, strict=True)]
                ),
            )

        (fit_X, fit_y), (stop_X, stop_y) = arrays(False), arrays(True)
        boosted = legs.filter(~days.is_in(stop_days))["duration_s"].to_numpy()
        return TrainingParts(features, fit_X, fit_y, stop_X, stop_y, float(np.median(np.log(boosted))))

    def fit(self, parts: TrainingParts, spec: FeatureSpec, config: TrainConfig) -> QuantileRegressor:
        regressor = make_regressor(config.model_kind, config.quantiles, spec.feature_names, config.params)
        if isinstance(regressor, LightGBMQuantile):
            return self._fit_lightgbm(regressor, parts, config.seed)
        return self._fit_xgboost(regressor, parts)

    def _fit_lightgbm(self, regressor: LightGBMQuantile, parts: TrainingParts, seed: int) -> LightGBMQuantile:
        import lightgbm as lgb

        p, n = regressor.params, parts.fit_y.shape[0]
        X_val, y_val = self.client.compute([parts.stop_X, parts.stop_y], sync=True)
        if len(y_val) > VALIDATION_ROWS:
            keep = np.sort(np.random.default_rng(seed).choice(len(y_val), VALIDATION_ROWS, replace=False))
            X_val, y_val = X_val[keep], y_val[keep]

        def boost(alpha: float, init_train=None, init_val=None) -> lgb.Booster:
            # the workers run on their own threads; LightGBM's Dask interface sets them per worker
            params = {k: v for k, v in regressor.lgb_params(alpha, n).items() if k != "num_threads"}
            rounds = p.median_rounds if alpha == 0.5 else p.spread_rounds
            estimator = lgb.DaskLGBMRegressor(client=self.client, n_estimators=rounds, **params)
            stop = StopOnValidation(X_val, y_val, init_val, alpha, p.early_stopping_rounds)
            estimator.fit(
                parts.fit_X, parts.fit_y, init_score=init_train, callbacks=[stop], feature_name=spec_names
            )
            return estimator.to_local().booster_

        spec_names = regressor.feature_names
        median = boost(0.5)
        regressor.boosters = {0.5: median}
        base_train = parts.fit_X.map_blocks(
            median.predict, dtype=np.float64, drop_axis=1, meta=np.array((), dtype=np.float64)
        ).persist()
        base_val = median.predict(X_val)
        for q in regressor.quantiles:
            if q != 0.5:
                regressor.boosters[q] = boost(q, base_train, base_val)
        return regressor

    def _fit_xgboost(self, regressor: XGBoostQuantile, parts: TrainingParts) -> XGBoostQuantile:
        import xgboost as xgb

        p, names = regressor.params, regressor.feature_names
        train = xgb.dask.DaskQuantileDMatrix(
            self.client, parts.fit_X, parts.fit_y, feature_names=names, max_bin=p.max_bin
        )
        valid = xgb.dask.DaskDMatrix(self.client, parts.stop_X, parts.stop_y, feature_names=names)
        params = {k: v for k, v in regressor.xgb_params(parts.median_target).items() if k != "nthread"}
        trained = xgb.dask.train(
            self.client,
            params,
            train,
            num_boost_round=p.median_rounds,
            evals=[(valid, "val")],
            early_stopping_rounds=p.early_stopping_rounds,
            verbose_eval=False,
        )
        regressor.booster = trained["booster"]
        return regressor
