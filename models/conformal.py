"""Conformal calibration of predicted quantiles: split CQR (Romano, Patterson & Candès 2019) in layers.

Score. By default residuals are measured in seconds and each central interval of the trained levels
(0.25-0.75, 0.1-0.9, 0.05-0.95) gets one offset E that moves both of its ends outward (or inward): with
the symmetric CQR score s_i = max(lo_i - y_i, y_i - hi_i) on n calibration legs, E = s_(ceil((n + 1) L)),
so the interval covers at least L of exchangeable new legs. The median gets its own offset (the order
statistic of y - q50 at rank ceil((n + 1) / 2)). `CalibrationConfig` can also fit one offset per level
(asymmetric CQR) or measure residuals in log seconds; the choice was made by measurement on every data
set (docs/decisions/conformal-calibration.md).

Caller profiles. Which optional inputs a leg has (a courier with history, road distance, weather) is its
profile, and every profile gets a calibration of its own, fitted on a copy of all calibration legs with
the inputs it lacks hidden: a caller who sends less gets a wider window with its own guarantee.

Layers. Within a profile, offsets add up over layers fitted in order, each on the scores the layers
before it left: a global layer, then Mondrian layers (distance band, hour band, origin/destination area,
...). A group gets its own offsets only with `min_group_size` calibration legs and evidence that it
differs (at some interval its share of legs outside is `evidence_z` binomial standard errors off
nominal); without evidence it keeps what the layers before it give, so a thin group adds no noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

ANY = "*"  # the group of a layer that has one group only
SMALL_BATCH = 64  # up to this many legs, layer offsets are looked up leg by leg
# the profile of a leg without any of the optional inputs (and of a calibration without profiles)
NO_PROFILE = "none"
SPACES = ("seconds", "log")
LAYER_NAMES = (
    "distance",
    "hour",
    "segment",
    "origin_region",  # the H3 region (FeatureSpec.region_resolution, 6)
    "origin_cell",  # the coarsest cell feature (7)
    "origin_fine",  # the next finer one (8)
    "dest_region",
    "dest_cell",
    "dest_fine",
)


@dataclass(frozen=True)
class CalibrationConfig:
    """How conformal offsets are fitted: the score and the layers (the one home of these defaults)."""

    space: str = "seconds"  # residuals in seconds (additive) or "log" (multiplicative)
    symmetric: bool = True  # one offset per central interval; False: one per quantile level
    # caller profiles: the optional inputs whose absence gets its own offsets ("courier" = with history)
    profile_inputs: tuple[str, ...] = ("courier", "road_distance", "weather")
    # Mondrian layers after the profiles, in the order fitted (see LAYER_NAMES)
    layers: tuple[str, ...] = ("distance", "origin_region", "origin_cell", "dest_region", "dest_cell")
    min_group_size: int = 150  # calibration legs a group needs for its own offsets
    evidence_z: float = 3.0  # ... and how far off nominal (binomial standard errors) it must be
    min_duration_s: float = 1.0  # no calibrated quantile is shorter

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"unknown score space {self.space!r}; choose one of {SPACES}")
        unknown = [name for name in self.layers if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown calibration layers {unknown}; choose from {LAYER_NAMES}")
        unknown = [name for name in self.profile_inputs if name not in PROFILE_INPUTS]
        if unknown:
            raise ValueError(f"unknown profile inputs {unknown}; choose from {PROFILE_INPUTS}")


PROFILE_INPUTS = ("courier", "road_distance", "weather")


def profile_key(present: Mapping[str, np.ndarray], inputs: Sequence[str]) -> np.ndarray:
    """Per leg, the caller profile: the names of the `inputs` it has, joined by '+' ('none' for none)."""
    n = len(next(iter(present.values()))) if present else 0
    keys = np.full(n, "", dtype=object)
    for name in inputs:
        keys = np.where(present[name], keys + ("+" + name), keys)
    return np.asarray([key[1:] if key else NO_PROFILE for key in keys], dtype=object)


def conformal_offset(residuals: np.ndarray, q: float) -> float:
    """The split-conformal shift of quantile level `q` from calibration residuals y - q_hat."""
    ordered = np.sort(np.asarray(residuals, dtype=float))
    n = len(ordered)
    if n == 0:
        raise ValueError("no calibration residuals: the calibration window is empty")
    rank = math.ceil((n + 1) * q) if q >= 0.5 else math.floor((n + 1) * q)
    if rank > n:
        return float("inf")  # too few calibration points to guarantee this level
    if rank < 1:
        return float("-inf")
    return float(ordered[rank - 1])


def interval_pairs(quantiles: Sequence[float]) -> list[tuple[int, int]]:
    """Column pairs (lower, upper) of the central intervals the trained levels form, inner first."""
    k = len(quantiles)
    pairs = []
    for i in range(k // 2):
        lo, hi = k // 2 - 1 - i, (k + 1) // 2 + i
        if abs(quantiles[lo] + quantiles[hi] - 1.0) > 1e-9:
            raise ValueError(f"quantile levels {list(quantiles)} are not symmetric around 0.5")
        pairs.append((lo, hi))
    return pairs


def _offsets(residuals: np.ndarray, quantiles: Sequence[float], symmetric: bool) -> list[float]:
    """One row of offsets from residuals y - q (n, k): per level, or one per central interval."""
    if not symmetric:
        return [conformal_offset(residuals[:, i], q) for i, q in enumerate(quantiles)]
    offsets = [0.0] * len(quantiles)
    if len(quantiles) % 2:
        mid = len(quantiles) // 2
        offsets[mid] = conformal_offset(residuals[:, mid], quantiles[mid])
    for lo, hi in interval_pairs(quantiles):
        # the CQR score: how far the label lies outside the interval (negative inside)
        score = np.maximum(-residuals[:, lo], residuals[:, hi])
        widen = conformal_offset(score, quantiles[hi] - quantiles[lo])
        offsets[lo], offsets[hi] = -widen, widen
    return offsets


def _differs(residuals: np.ndarray, quantiles: Sequence[float], z: float, n_legs: float) -> bool:
    """Whether, at some central interval, the share of legs outside it (or, for the median, above it) is
    at least z binomial standard errors off nominal."""
    checks = [(residuals[:, hi] > 0) | (residuals[:, lo] < 0) for lo, hi in interval_pairs(quantiles)]
    nominal = [1.0 - (quantiles[hi] - quantiles[lo]) for lo, hi in interval_pairs(quantiles)]
    if len(quantiles) % 2:
        checks.append(residuals[:, len(quantiles) // 2] > 0)
        nominal.append(1.0 - quantiles[len(quantiles) // 2])
    for outside, p in zip(checks, nominal, strict=True):
        if abs(float(np.mean(outside)) - p) >= z * math.sqrt(p * (1.0 - p) / n_legs):
            return True
    return False


@dataclass
class Layer:
    """Additive offsets per group of one key (a profile, a distance band, an H3 area, ...)."""

    name: str
    offsets: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # calibration legs of every group seen

    def offsets_for(self, keys: np.ndarray, k: int) -> np.ndarray:
        """(n, k): each leg's group offsets, zero for a group without its own."""
        if not self.offsets:
            return np.zeros((len(keys), k))
        zero = [0.0] * k
        if len(keys) <= SMALL_BATCH:  # a live request: a dictionary lookup per leg beats sorting the keys
            return np.array([self.offsets.get(str(key), zero) for key in keys], dtype=float).reshape(-1, k)
        groups, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
        table = np.array([self.offsets.get(str(group), zero) for group in groups], dtype=float)
        return table[inverse.reshape(-1)]


@dataclass
class ConformalCalibration:
    """Per caller profile, a stack of additive offset layers in the score space (see the module notes)."""

    quantiles: list[float]
    config: CalibrationConfig = field(default_factory=CalibrationConfig)
    stacks: dict[str, list[Layer]] = field(default_factory=dict)  # profile -> layers, "global" first
    n_calibration: int = 0

    @property
    def fallback_profile(self) -> str:
        """The stack for a profile calibration never saw: the one with the fewest inputs."""
        return min(self.stacks, key=lambda p: (0 if p == NO_PROFILE else p.count("+") + 1, p))

    def offsets(self, keys: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """(n, k) summed offsets of each leg's profile stack; a layer whose keys are not given adds nothing."""
        k = len(self.quantiles)
        total = np.zeros((n, k))
        profiles = np.asarray(keys.get("profile", np.full(n, NO_PROFILE, dtype=object)), dtype=object).astype(
            str
        )
        for profile in set(profiles.tolist()):
            rows = np.flatnonzero(profiles == profile)
            for layer in self.stacks.get(profile) or self.stacks[self.fallback_profile]:
                if layer.name == "global":
                    total[rows] += np.asarray(layer.offsets[ANY])
                elif layer.name in keys:
                    total[rows] += layer.offsets_for(np.asarray(keys[layer.name], dtype=object)[rows], k)
        return total

    def apply(self, raw_log: np.ndarray, keys: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Calibrated, non-crossing quantiles in seconds from the boosters' raw log-second quantiles."""
        scores = to_space(raw_log, self.config.space)
        calibrated = np.sort(scores + self.offsets(keys or {}, raw_log.shape[0]), axis=1)
        seconds = np.exp(calibrated) if self.config.space == "log" else calibrated
        return np.maximum(seconds, self.config.min_duration_s)

    def summary(self) -> dict[str, int]:
        """Per layer, how many groups got their own offsets, summed over the profiles (for the run's report)."""
        counts: dict[str, int] = {"profiles": len(self.stacks)}
        for stack in self.stacks.values():
            for layer in stack[1:]:
                counts[layer.name] = counts.get(layer.name, 0) + len(layer.offsets)
        return counts

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "split_cqr_layers",
            "quantiles": self.quantiles,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()},
            "stacks": {profile: [asdict(layer) for layer in stack] for profile, stack in self.stacks.items()},
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConformalCalibration:
        if data.get("method") != "split_cqr_layers":
            raise ValueError(
                f"conformal offsets of method {data.get('method', 'asymmetric_cqr_per_level')!r} were written "
                "by an earlier version of lastmile-eta; retrain the model (eta train) to serve it"
            )
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
        return cls(
            quantiles=[float(q) for q in data["quantiles"]],
            config=CalibrationConfig(**config),
            stacks={
                str(profile): [
                    Layer(
                        name=str(layer["name"]),
                        offsets={str(g): [float(v) for v in vs] for g, vs in layer["offsets"].items()},
                        counts={str(g): int(c) for g, c in layer["counts"].items()},
                    )
                    for layer in stack
                ]
                for profile, stack in data["stacks"].items()
            },
            n_calibration=int(data.get("n_calibration", 0)),
        )


def to_space(raw_log: np.ndarray, space: str) -> np.ndarray:
    """Raw log-second quantiles in the score space."""
    return np.exp(raw_log) if space == "seconds" else np.asarray(raw_log, dtype=float)


def fit_conformal(
    y: np.ndarray,
    raw_log: np.ndarray,
    quantiles: Sequence[float],
    keys: Mapping[str, np.ndarray] | None = None,
    config: CalibrationConfig | None = None,
) -> ConformalCalibration:
    """Offsets from a calibration window: labels `y` in seconds, the boosters' raw quantiles in log seconds.

    `keys`: per layer name ("profile" and the config's layers), each row's group. Each profile's rows get
    a stack of their own: a global layer, then the config's layers in order.
    """
    config = config or CalibrationConfig()
    keys = dict(keys or {})
    y = np.asarray(y, dtype=float)
    target = np.log(y) if config.space == "log" else y
    residuals = target[:, None] - to_space(raw_log, config.space)
    profiles = np.asarray(
        keys.get("profile", np.full(len(y), NO_PROFILE, dtype=object)), dtype=object
    ).astype(str)
    calibration = ConformalCalibration([float(q) for q in quantiles], config)
    for profile in np.unique(profiles):
        rows = np.flatnonzero(profiles == profile)
        calibration.stacks[str(profile)] = _fit_stack(
            residuals[rows], quantiles, {k: np.asarray(v)[rows] for k, v in keys.items()}, config
        )
        calibration.n_calibration = max(calibration.n_calibration, len(rows))
    return calibration


def _fit_stack(
    residuals: np.ndarray,
    quantiles: Sequence[float],
    keys: Mapping[str, np.ndarray],
    config: CalibrationConfig,
) -> list[Layer]:
    """The global layer, then each of the config's layers on what the layers before it left."""
    k = len(quantiles)
    base = Layer("global", {ANY: _offsets(residuals, quantiles, config.symmetric)}, {ANY: len(residuals)})
    stack = [base]
    residuals = residuals - np.asarray(base.offsets[ANY])
    for name in config.layers:
        if name not in keys:
            continue
        group = np.asarray(keys[name]).astype(str)
        layer = _fit_layer(name, residuals, quantiles, group, config)
        stack.append(layer)
        residuals = residuals - layer.offsets_for(group, k)
    return stack


def _fit_layer(
    name: str,
    residuals: np.ndarray,
    quantiles: Sequence[float],
    keys: np.ndarray,
    config: CalibrationConfig,
) -> Layer:
    layer = Layer(name)
    groups, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    for index, (group, count) in enumerate(zip(groups, counts, strict=True)):
        legs = int(count)
        layer.counts[str(group)] = legs
        if legs < config.min_group_size or group in ("", "0", "None"):
            continue
        mask = inverse.reshape(-1) == index
        if not _differs(residuals[mask], quantiles, config.evidence_z, legs):
            continue  # no evidence this group is unlike the rest: it keeps what the layers before gave
        offsets = _offsets(residuals[mask], quantiles, config.symmetric)
        if all(math.isfinite(v) for v in offsets):
            layer.offsets[str(group)] = offsets
    return layer
