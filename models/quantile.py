"""Quantile gradient boosting behind one small interface: LightGBM (a booster per level) or XGBoost (one
multi-quantile booster). Targets are in the model's target space (log seconds); callers transform.

Boosters are saved in their native formats (LightGBM text, XGBoost UBJSON), never as pickles.

Speed: the median booster is trained first; every other level starts from the median's prediction
(`init_score`) and only learns the spread, which needs far fewer rounds than learning each level from scratch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from models.grid import DEFAULT_QUANTILES

log = logging.getLogger(__name__)  # one line per booster trained, for progress displays


def qtag(q: float) -> str:
    return f"q{round(q * 100):02d}"


class QuantileRegressor(Protocol):
    """What a model's boosters offer the rest of the code, whichever library trained them."""

    quantiles: tuple[float, ...]
    params: BoostingParams
    feature_names: list[str] | None

    def fit(
        self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
    ) -> QuantileRegressor: ...
    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...


PARALLEL_PREDICT_ROWS = 10_000  # from here each booster runs on params.num_threads (OpenMP)
# From here to PARALLEL_PREDICT_ROWS the boosters run side by side, one thread each (LightGBM releases the
# GIL); on fewer rows the hand-over costs more than it saves (docs/decisions/booster-threads.md).
BOOSTERS_SIDE_BY_SIDE_ROWS = 256
_side_by_side: dict[int, ThreadPoolExecutor] = {}
_side_by_side_lock = threading.Lock()


def booster_pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool of `threads` threads for running boosters side by side (made on first use)."""
    with _side_by_side_lock:
        pool = _side_by_side.get(threads)
        if pool is None:
            pool = _side_by_side[threads] = ThreadPoolExecutor(threads, thread_name_prefix="eta-trees")
        return pool


@dataclass
class BoostingParams:
    """Shared knobs; defaults measured on the synthetic city and the Sendy set (see README results).

    The learning rate and the spread levels' rows per round were chosen for training time at a small cost
    in pinball loss (docs/decisions/boosting-defaults.md).
    """

    learning_rate: float = 0.15
    num_leaves: int = 63
    max_depth: int = -1
    min_data_in_leaf: int = 40
    max_bin: int = 127
    feature_fraction: float = 0.9
    median_rounds: int = 600
    spread_rounds: int = 200
    early_stopping_rounds: int = 30
    num_threads: int = 2
    seed: int = 7
    # On large windows each boosting round sees a random subsample of this many rows (LightGBM bagging):
    # the median needs more rows than the spread levels, which start from it; below these sizes every row
    # is used (docs/decisions/boosting-defaults.md).
    median_rows_per_round: int = 400_000
    spread_rows_per_round: int = 80_000


@dataclass
class LightGBMQuantile:
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    params: BoostingParams = field(default_factory=BoostingParams)
    feature_names: list[str] | None = None
    boosters: dict[float, object] = field(default_factory=dict)
    kind: str = "lightgbm"

    def lgb_params(self, alpha: float, n_rows: int) -> dict[str, object]:
        p = self.params
        rows = p.median_rows_per_round if alpha == 0.5 else p.spread_rows_per_round
        bagging = {"bagging_fraction": rows / n_rows, "bagging_freq": 1} if n_rows > rows else {}
        return {
            **bagging,
            "objective": "quantile",
            "alpha": alpha,
            "learning_rate": p.learning_rate,
            "num_leaves": p.num_leaves,
            "max_depth": p.max_depth,
            "min_data_in_leaf": p.min_data_in_leaf,
            "max_bin": p.max_bin,
            "feature_fraction": p.feature_fraction,
            "num_threads": p.num_threads,
            "seed": p.seed,
            "deterministic": True,
            # column-wise histograms: row-wise stall on a busy machine (docs/decisions/boosting-defaults.md)
            "force_col_wise": True,
            "verbosity": -1,
        }

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> LightGBMQuantile:
        import lightgbm as lgb

        names = self.feature_names or [f"f{i}" for i in range(X.shape[1])]
        train = lgb.Dataset(
            X, y, feature_name=names, free_raw_data=False, params={"max_bin": self.params.max_bin}
        )
        valid = lgb.Dataset(X_val, y_val, reference=train, free_raw_data=False)
        stop = [lgb.early_stopping(self.params.early_stopping_rounds, verbose=False)]
        median = lgb.train(
            self.lgb_params(0.5, len(y)),
            train,
            self.params.median_rounds,
            valid_sets=[valid],
            callbacks=stop,
        )
        self.boosters = {0.5: median}
        log.info("booster 1/%d trained (median, %d rounds)", len(self.quantiles), median.current_iteration())
        base_train, base_val = median.predict(X), median.predict(X_val)
        # every spread level starts from the same median prediction: its datasets are binned once, shared
        spread_train = lgb.Dataset(X, y, reference=train, init_score=base_train, free_raw_data=False)
        spread_val = lgb.Dataset(X_val, y_val, reference=train, init_score=base_val, free_raw_data=False)
        for q in self.quantiles:
            if q == 0.5:
                continue
            self.boosters[q] = lgb.train(
                self.lgb_params(q, len(y)),
                spread_train,
                self.params.spread_rounds,
                valid_sets=[spread_val],
                callbacks=stop,
            )
            log.info("booster %d/%d trained (%s)", len(self.boosters), len(self.quantiles), qtag(q))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) quantiles in target space, columns in `quantiles` order.

        Batches under PARALLEL_PREDICT_ROWS run each booster on one thread: OpenMP's start-up and barriers
        cost more than a few rows of trees (docs/decisions/booster-threads.md). From
        BOOSTERS_SIDE_BY_SIDE_ROWS rows, those one-thread boosters run side by side instead."""
        threads = self.params.num_threads if len(X) >= PARALLEL_PREDICT_ROWS else 1

        def trees(q: float) -> np.ndarray:
            return self.boosters[q].predict(X, num_threads=threads)

        if threads == 1 and self.params.num_threads > 1 and len(X) >= BOOSTERS_SIDE_BY_SIDE_ROWS:
            pool = booster_pool(self.params.num_threads)
            raw = dict(zip(self.quantiles, pool.map(trees, self.quantiles), strict=True))
        else:
            raw = {q: trees(q) for q in self.quantiles}
        median = raw[0.5]
        return np.column_stack([median if q == 0.5 else median + raw[q] for q in self.quantiles])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for q, booster in self.boosters.items():
            booster.save_model(str(directory / f"lightgbm_{qtag(q)}.txt"))
        (directory / "boosters.json").write_text(
            json.dumps({"kind": self.kind, "quantiles": list(self.quantiles), "init_from_median": True})
        )

    @classmethod
    def load(cls, directory: Path, quantiles: Sequence[float], num_threads: int = 1) -> LightGBMQuantile:
        import lightgbm as lgb

        model = cls(quantiles=tuple(quantiles), params=BoostingParams(num_threads=num_threads))
        model.boosters = {
            q: lgb.Booster(model_file=str(directory / f"lightgbm_{qtag(q)}.txt")) for q in quantiles
        }
        return model


@dataclass
class XGBoostQuantile:
    """One XGBoost booster with `reg:quantileerror` and a list of `quantile_alpha` (one output per level)."""

    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    params: BoostingParams = field(default_factory=BoostingParams)
    feature_names: list[str] | None = None
    booster: object | None = None
    kind: str = "xgboost"

    def xgb_params(self, base_score: float) -> dict[str, object]:
        """Training parameters; `base_score` is the median target of the training rows."""
        p = self.params
        return {
            "objective": "reg:quantileerror",
            "quantile_alpha": np.asarray(self.quantiles),
            "tree_method": "hist",
            "learning_rate": p.learning_rate,
            "max_depth": 8 if p.max_depth < 0 else p.max_depth,
            "min_child_weight": float(p.min_data_in_leaf),
            "max_bin": p.max_bin,
            "colsample_bytree": p.feature_fraction,
            "nthread": p.num_threads,
            "seed": p.seed,
            "base_score": base_score,
        }

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> XGBoostQuantile:
        import xgboost as xgb

        dtrain = xgb.QuantileDMatrix(X, y, feature_names=self.feature_names, max_bin=self.params.max_bin)
        dval = xgb.DMatrix(X_val, y_val, feature_names=self.feature_names)
        params, p = self.xgb_params(float(np.median(y))), self.params
        self.booster = xgb.train(
            params,
            dtrain,
            num_boost_round=p.median_rounds,
            evals=[(dval, "val")],
            early_stopping_rounds=p.early_stopping_rounds,
            verbose_eval=False,
        )
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        booster = self.booster
        rounds = getattr(booster, "best_iteration", None)
        dmat = xgb.DMatrix(X, feature_names=self.feature_names)
        kwargs = {"iteration_range": (0, rounds + 1)} if rounds is not None else {}
        out = booster.predict(dmat, **kwargs)
        return out.reshape(len(X), len(self.quantiles))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / "xgboost.ubj"))
        best = getattr(self.booster, "best_iteration", None)
        (directory / "boosters.json").write_text(
            json.dumps({"kind": self.kind, "quantiles": list(self.quantiles), "best_iteration": best})
        )

    @classmethod
    def load(cls, directory: Path, quantiles: Sequence[float], num_threads: int = 1) -> XGBoostQuantile:
        import xgboost as xgb

        meta = json.loads((directory / "boosters.json").read_text())
        booster = xgb.Booster(model_file=str(directory / "xgboost.ubj"))
        booster.set_param({"nthread": num_threads})
        if meta.get("best_iteration") is not None:
            booster.best_iteration = int(meta["best_iteration"])
        return cls(quantiles=tuple(quantiles), booster=booster, feature_names=booster.feature_names)


def make_regressor(
    kind: str, quantiles: Sequence[float], feature_names: list[str], params: BoostingParams | None = None
) -> LightGBMQuantile | XGBoostQuantile:
    """The quantile regressor for a model kind ('lightgbm' or 'xgboost')."""
    params = params or BoostingParams()
    if kind == "lightgbm":
        return LightGBMQuantile(quantiles=tuple(quantiles), params=params, feature_names=feature_names)
    if kind == "xgboost":
        return XGBoostQuantile(quantiles=tuple(quantiles), params=params, feature_names=feature_names)
    raise ValueError(f"unknown model kind {kind!r}; choose lightgbm or xgboost")


def load_regressor(directory: Path, num_threads: int = 1) -> LightGBMQuantile | XGBoostQuantile:
    meta = json.loads((directory / "boosters.json").read_text())
    loader = LightGBMQuantile if meta["kind"] == "lightgbm" else XGBoostQuantile
    return loader.load(directory, meta["quantiles"], num_threads=num_threads)
