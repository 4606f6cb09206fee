"""The ETA model as shipped: feature spec, frozen aggregates, native boosters and conformal offsets.

`EtaModel.predict_quantiles(legs)` goes from raw legs (contract columns, no label) to calibrated, monotone
quantiles in seconds, through the same `features.build_features` that training used.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from features.aggregates import FrozenAggregates
from features.build import build_features
from features.live import LiveFeatures, LiveLegs, live_features
from features.plans import cached_stages
from features.spec import FeatureSpec
from models.conformal import CalibrationConfig, ConformalCalibration, profile_key
from models.domain import ModelDomain
from models.enroute import EnrouteCalibration
from models.metrics import level_pair
from models.online import OnlineState
from models.online import apply as online_apply
from models.quantile import QuantileRegressor, load_regressor

Features = pl.DataFrame | LiveFeatures  # what either feature executor gives (features.build, features.live)

# Distance bands of the conformal layers and the segment evaluation
DISTANCE_BANDS_KM: tuple[float, ...] = (1.5, 3.0, 6.0)
DISTANCE_BAND_LABELS = ("lt1.5km", "1.5-3km", "3-6km", "ge6km")


def distance_band(km: pl.Series | np.ndarray) -> np.ndarray:
    idx = np.digitize(np.asarray(km, dtype=float), DISTANCE_BANDS_KM)
    return np.asarray(DISTANCE_BAND_LABELS, dtype=object)[idx]


# Per-leg helpers below read columns with numpy and use polars only when a column has nulls: polars
# Series methods run as one-expression queries (~0.1 ms each), which cost more than the work on a live call.
_INT8_LABELS = np.array([str(i) for i in range(-128, 128)], dtype=object)


def _filled(features: Features, name: str, value: object) -> np.ndarray:
    """A feature column as numpy, absent values replaced by `value`."""
    if isinstance(features, LiveFeatures):
        present = features.present[name]
        return features.values[name] if present.all() else np.where(present, features.values[name], value)
    column = features.get_column(name)
    return (column.fill_null(value) if column.null_count() else column).to_numpy()


def _present(features: Features, name: str) -> np.ndarray:
    if isinstance(features, LiveFeatures):
        return features.present[name]
    column = features.get_column(name)
    return column.is_not_null().to_numpy() if column.null_count() else np.ones(len(column), dtype=bool)


def _hour_labels(features: Features) -> np.ndarray:
    if isinstance(features, LiveFeatures):  # always present: the hour of a validated departure
        return _INT8_LABELS[features.values["hour_band"] + 128]
    hours = features.get_column("hour_band")
    if hours.dtype == pl.Int8 and not hours.null_count():
        return _INT8_LABELS[hours.to_numpy().astype(np.int16) + 128]
    return hours.cast(pl.String).fill_null("?").to_numpy().astype(object)


def caller_inputs(features: Features) -> dict[str, np.ndarray]:
    """Per optional input of a caller profile, whether each leg has it (a courier counts with history)."""
    return {
        "courier": _present(features, "courier_trips"),
        "road_distance": _present(features, "road_distance_km"),
        "weather": _present(features, "temperature_c") | _present(features, "precipitation_mm"),
    }


def calibration_keys(
    features: Features, spec: FeatureSpec, calibration: CalibrationConfig
) -> dict[str, np.ndarray]:
    """Each leg's group in the caller-profile layer and in every Mondrian layer `calibration` fits."""
    keys: dict[str, np.ndarray] = {
        "profile": profile_key(caller_inputs(features), calibration.profile_inputs)
    }
    wanted = set(calibration.layers)
    if wanted & {"distance", "segment"}:
        keys["distance"] = distance_band(_filled(features, "haversine_km", 0.0))
    if wanted & {"hour", "segment"}:
        keys["hour"] = _hour_labels(features)
    if "segment" in wanted:
        keys["segment"] = keys["distance"] + "|" + keys["hour"]
    cells = sorted(spec.cell_resolutions)
    for end in ("origin", "dest"):
        areas = {
            f"{end}_region": f"{end}_region_r{spec.region_resolution}",
            f"{end}_cell": f"{end}_cell_r{cells[0]}",
            f"{end}_fine": f"{end}_cell_r{cells[min(1, len(cells) - 1)]}",
        }
        for name, column in areas.items():
            if name in wanted:
                keys[name] = _filled(features, column, 0).astype(np.int64).astype(str)
    return keys


def feature_matrix(features: Features, spec: FeatureSpec) -> np.ndarray:
    """Model inputs as float32 (nulls become NaN, which the boosters treat as missing)."""
    if isinstance(features, LiveFeatures):
        return features.matrix(spec.feature_names)
    (casts,) = cached_stages(
        "feature_matrix", spec, None, lambda: [[pl.col(name).cast(pl.Float32) for name in spec.feature_names]]
    )
    return features.select(casts).to_numpy()


@dataclass
class EtaModel:
    spec: FeatureSpec
    aggregates: FrozenAggregates
    regressor: QuantileRegressor
    calibration: ConformalCalibration
    meta: dict = field(default_factory=dict)
    enroute: EnrouteCalibration | None = None  # legs in progress (models.enroute)
    domain: ModelDomain | None = None  # where its training legs were (models.domain); None: not recorded

    @property
    def quantiles(self) -> list[float]:
        return list(self.calibration.quantiles)

    def features(self, legs: pl.DataFrame | LiveLegs) -> Features:
        """The legs' features with the frozen snapshot: the live executor for `LiveLegs` (a live request),
        the polars one for a frame."""
        if isinstance(legs, LiveLegs):
            return live_features(legs, self.aggregates, self.spec)
        return build_features(legs, self.aggregates, self.spec)

    def predict_from_features(self, features: Features) -> np.ndarray:
        """Calibrated quantiles in seconds, (n, k), monotone per row."""
        raw = self.regressor.predict(feature_matrix(features, self.spec))
        keys = calibration_keys(features, self.spec, self.calibration.config)
        return self.calibration.apply(raw, keys)

    def predict_quantiles(
        self, legs: pl.DataFrame | LiveLegs, online: OnlineState | None = None
    ) -> np.ndarray:
        """Calibrated quantiles in seconds; with an online state, adjusted by it (models.online)."""
        features = self.features(legs)
        q = self.predict_from_features(features)
        if online is None or online.calibration is None:
            return q
        return online_apply(online, q, calibration_keys(features, self.spec, online.config.calibration()))

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "feature_spec.json").write_text(self.spec.to_json())
        self.aggregates.save(directory / "aggregates")
        self.regressor.save(directory / "boosters")
        (directory / "conformal.json").write_text(json.dumps(self.calibration.to_dict(), indent=2))
        (directory / "model_meta.json").write_text(json.dumps(self.meta, indent=2, default=str))
        if self.enroute is not None:
            (directory / "enroute.json").write_text(json.dumps(self.enroute.to_dict(), indent=2))
        if self.domain is not None:
            (directory / "domain.json").write_text(json.dumps(self.domain.to_dict(), indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path, num_threads: int = 1) -> EtaModel:
        directory = Path(directory)
        return cls(
            spec=FeatureSpec.from_json((directory / "feature_spec.json").read_text()),
            aggregates=FrozenAggregates.load(directory / "aggregates"),
            regressor=load_regressor(directory / "boosters", num_threads=num_threads),
            calibration=ConformalCalibration.from_dict(
                json.loads((directory / "conformal.json").read_text())
            ),
            meta=json.loads((directory / "model_meta.json").read_text()),
            enroute=EnrouteCalibration.from_dict(json.loads((directory / "enroute.json").read_text()))
            if (directory / "enroute.json").exists()
            else None,
            domain=ModelDomain.from_dict(json.loads((directory / "domain.json").read_text()))
            if (directory / "domain.json").exists()
            else None,
        )


def quantiles_at(q_pred: np.ndarray, quantiles: Sequence[float], taus: Sequence[float]) -> np.ndarray:
    """The quantiles `taus` per row, (n, len(taus)), each linear in log-time between the two trained levels
    around it. One pass for all of them: the answer of a request needs five."""
    last = len(quantiles) - 1
    lower: list[int] = []
    weight: list[float] = []
    for tau in taus:  # a few levels: plain Python (numpy's per-call cost is the whole cost here)
        if tau < quantiles[0] - 1e-9 or tau > quantiles[-1] + 1e-9:
            raise ValueError(
                f"quantile {tau} is outside the model's trained levels {quantiles[0]}..{quantiles[-1]}"
            )
        below = min(max(bisect_right(quantiles, tau) - 1, 0), last - 1)
        lower.append(below)
        weight.append(
            min(max((tau - quantiles[below]) / (quantiles[below + 1] - quantiles[below]), 0.0), 1.0)
        )
    j, w = np.array(lower), np.array(weight)
    logs = np.log(q_pred)
    return np.exp(logs[:, j] * (1 - w) + logs[:, j + 1] * w)


def quantile_at(q_pred: np.ndarray, quantiles: Sequence[float], tau: float) -> np.ndarray:
    """The quantile `tau` per row (see `quantiles_at`)."""
    return quantiles_at(q_pred, quantiles, [tau])[:, 0]


def interval_taus(quantiles: Sequence[float], level: float) -> tuple[float, float]:
    """The quantile levels bounding a central interval (0.8 -> 0.1, 0.9).

    Raises ValueError for a level the trained quantiles cannot support."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be between 0 and 1, got {level}")
    widest = round(quantiles[-1] - quantiles[0], 6)
    if level > widest + 1e-9:
        raise ValueError(f"interval level {level} is wider than the model supports (at most {widest})")
    return level_pair(level)


def interval_from_quantiles(
    q_pred: np.ndarray, quantiles: Sequence[float], level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper of a central interval from calibrated quantiles (interpolated between trained levels).

    Raises ValueError for a level the trained quantiles cannot support."""
    bounds = quantiles_at(q_pred, quantiles, interval_taus(quantiles, level))
    return bounds[:, 0], bounds[:, 1]
