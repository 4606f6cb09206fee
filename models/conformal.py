"""Conformal calibration of predicted quantiles (asymmetric CQR, Romano, Patterson & Candès 2019).

Why hand-rolled rather than MAPIE: MAPIE's `ConformalizedQuantileRegressor` calibrates one interval level per
estimator triple and keeps the estimators as pickles; we need every trained quantile level calibrated (so the
serving path can offer any window from 50% to 90% and sample the quantile function for multi-stop routes),
per-segment (Mondrian) offsets, and offsets shipped as plain numbers inside the model artifact. The core is
one order statistic per level, checked against MAPIE's asymmetric CQR in the tests.

For each quantile level t, on a calibration window that follows training in time, take residuals
r_i = y_i - q_t(x_i) (in log-duration space, so offsets are multiplicative) and shift the quantile by
  delta_t = r_(ceil((n + 1) t))   for t >= 0.5  -> P(y <= q_t + delta_t) >= t
  delta_t = r_(floor((n + 1) t))  for t <  0.5  -> P(y <  q_t + delta_t) <= t
so the central interval (q_{(1-L)/2}, q_{(1+L)/2}) covers at least L of exchangeable new legs (the
asymmetric CQR guarantee). Offsets are computed per segment (distance band x hour band) where the segment
has enough calibration legs, falling back to the global offset otherwise.

Area layers (Mondrian by place). A segment offset corrects the model where it is wrong for a kind of leg;
it cannot see that one part of the city is slower or more variable than the model believes (a district
whose roads slowed after the trees were fitted). An area layer is a second, sequential Mondrian step: on
the residuals left after the segment offsets, each area with enough calibration legs gets its own extra
offset per level (the same order statistic, so within that area the calibrated quantiles again cover as
promised on exchangeable legs). Areas are tried from fine to coarse (e.g. the origin's H3 res-7 cell, then
its res-6 parent; keys are H3 cell ids, which carry their resolution): a leg belongs to the finest area
that has `min_area_size` legs of its own, and areas too small at every level add nothing. The layers
(origin, then destination) apply in the order fitted; the last one fitted carries the exact per-area
guarantee, the earlier ones an approximate one.

Evidence before an area gets its own offsets (`area_evidence_z` > 0; off by default, see the trade-off
below). An order statistic of a few hundred legs is noisy: on a stationary simulated city the areas' own
offsets moved their test coverage by more than they corrected, and one region of 210 test legs read 0.73
for the 80% window. With the rule, each resolution is its own additive step, coarse first: the regions
(res 6), then the cells (res 7) on what the regions left. An area keeps its own offsets only when its
calibration legs show that it differs: at some trained level t, the share of them above the quantile
(after the coarser steps) is off its nominal 1 - t by at least z binomial standard errors,
sqrt(t (1 - t) / n).
The trade-off, measured (worst origin-region gap at 80% on simulated cities of seeds 5, 13 and 21, on
seed 7 (the accuracy benchmark's) and on Sendy's test split; then the regional-slowdown backtest's slowed
district, 80% coverage from onset+3, seed 11):
- the default (every area with `min_area_size` legs, finest first): 0.048 / 0.046 / 0.102, 0.071,
  Sendy 0.030; district 0.799 (recovered within 3 days);
- the rule at z = 3: 0.049 / 0.046 / 0.059, 0.032, Sendy 0.043; district 0.771 (not recovered: the slowed
  district straddles H3 cells and regions, and the evidence its legs give together is split among them);
- no area layers: 0.039 / 0.046 / 0.040, 0.024, Sendy 0.064 (Sendy's regions do differ);
- `min_area_size` 300 instead of 150: district 0.775 (not recovered).
So the default keeps the promise where a district changes, at the price of noisier regions on a stationary
city; a deployment whose city is stable can turn the rule on (`TrainConfig.area_evidence_z`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from features.lookup import search_sorted

GLOBAL = "__global__"


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


def rearrange(q_pred: np.ndarray) -> np.ndarray:
    """Monotone quantiles per row by sorting (Chernozhukov, Fernández-Val & Galichon 2010)."""
    return np.sort(q_pred, axis=1)


NO_AREA = 0  # area key of a leg without one (an H3 cell id is never 0)


def assign_areas(keys_by_level: Sequence[np.ndarray], known: np.ndarray) -> np.ndarray:
    """Per row, the finest of its area keys (int64 H3 ids, levels fine -> coarse) found in `known` (sorted
    ascending), else NO_AREA."""
    n = len(keys_by_level[0]) if len(keys_by_level) else 0
    chosen = np.full(n, NO_AREA, dtype=np.int64)
    if len(known) == 0:
        return chosen
    for keys in reversed(keys_by_level):  # coarse first, finer levels overwrite
        keys = np.asarray(keys, dtype=np.int64)
        # a binary search per row: np.isin would sort the known areas again on every call
        _, hit = search_sorted(known, keys)
        chosen[hit] = keys[hit]
    return chosen


@dataclass
class AreaLayer:
    """Extra offsets per area (an H3 cell id, e.g. the origin's res-7 cell) on top of the segment offsets;
    see the module notes."""

    name: str
    offsets: dict[int, list[float]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    # which of the layer's key arrays (fine -> coarse) it reads; None: the finest known one per leg
    level: int | None = None

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted area ids and their offset rows, built on first use (a layer is not changed once fitted):
        a live request does not rebuild them."""
        known = np.fromiter(sorted(self.offsets), dtype=np.int64, count=len(self.offsets))
        return known, np.array([self.offsets[int(key)] for key in known], dtype=float)

    def offsets_for(self, keys_by_level: Sequence[np.ndarray], k: int) -> np.ndarray:
        known, table = self._lookup
        chosen = assign_areas(keys_by_level, known)
        extra = np.zeros((len(chosen), k))
        if not len(known):
            return extra
        table = table.reshape(-1, k)
        index, found = search_sorted(known, chosen)
        extra[found] = table[index[found]]
        return extra

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "offsets": {str(k): v for k, v in self.offsets.items()},
            "counts": {str(k): v for k, v in self.counts.items()},
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: dict) -> AreaLayer:
        return cls(
            name=str(data["name"]),
            offsets={int(k): [float(v) for v in vs] for k, vs in data.get("offsets", {}).items()},
            counts={int(k): int(v) for k, v in data.get("counts", {}).items()},
            level=None if data.get("level") is None else int(data["level"]),
        )

    def keys(self, keys_by_level: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        """The key arrays this layer reads from an area's (fine -> coarse) arrays."""
        return keys_by_level if self.level is None else [keys_by_level[self.level]]


@dataclass
class ConformalCalibration:
    """Additive offsets (in the model's target space) per quantile level, globally and per segment."""

    quantiles: list[float]
    global_offsets: list[float]
    segment_offsets: dict[str, list[float]] = field(default_factory=dict)
    segment_counts: dict[str, int] = field(default_factory=dict)
    min_segment_size: int = 500
    n_calibration: int = 0
    area_layers: list[AreaLayer] = field(default_factory=list)
    min_area_size: int = 0
    area_evidence_z: float = 0.0

    def offsets_for(self, segments: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray:
        """(n, k) offsets: each row gets its segment's offsets, or the global ones."""
        if segments is None or not self.segment_offsets:
            return np.tile(np.asarray(self.global_offsets, dtype=float), (n, 1))
        # a table whose row 0 holds the global offsets, and one dictionary lookup per leg (a few dozen
        # segments: building the table costs microseconds, comparing every leg with every segment did not)
        rows = {segment: i + 1 for i, segment in enumerate(self.segment_offsets)}
        table = np.array([self.global_offsets, *self.segment_offsets.values()], dtype=float)
        return table[[rows.get(segment, 0) for segment in segments]]

    def apply(
        self,
        q_pred: np.ndarray,
        segments: Sequence[str] | np.ndarray | None = None,
        areas: Mapping[str, Sequence[np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Calibrated, non-crossing quantiles. `areas` maps each layer's name to its key arrays (fine -> coarse);
        a layer whose keys are not given adds nothing."""
        offsets = self.offsets_for(segments, q_pred.shape[0])
        for layer in self.area_layers:
            if areas is not None and layer.name in areas:
                offsets += layer.offsets_for(layer.keys(areas[layer.name]), q_pred.shape[1])
        return rearrange(q_pred + offsets)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "asymmetric_cqr_per_level",
            "quantiles": self.quantiles,
            "global_offsets": self.global_offsets,
            "segment_offsets": self.segment_offsets,
            "segment_counts": self.segment_counts,
            "min_segment_size": self.min_segment_size,
            "n_calibration": self.n_calibration,
            "area_layers": [layer.to_dict() for layer in self.area_layers],
            "min_area_size": self.min_area_size,
            "area_evidence_z": self.area_evidence_z,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConformalCalibration:
        return cls(
            quantiles=[float(q) for q in data["quantiles"]],
            global_offsets=[float(v) for v in data["global_offsets"]],
            segment_offsets={k: [float(v) for v in vs] for k, vs in data.get("segment_offsets", {}).items()},
            segment_counts={k: int(v) for k, v in data.get("segment_counts", {}).items()},
            min_segment_size=int(data.get("min_segment_size", 500)),
            n_calibration=int(data.get("n_calibration", 0)),
            area_layers=[AreaLayer.from_dict(layer) for layer in data.get("area_layers", [])],
            min_area_size=int(data.get("min_area_size", 0)),
            area_evidence_z=float(data.get("area_evidence_z", 0.0)),
        )


def fit_conformal(
    y: np.ndarray,
    q_pred: np.ndarray,
    quantiles: Sequence[float],
    segments: Sequence[str] | np.ndarray | None = None,
    min_segment_size: int = 500,
    areas: Mapping[str, Sequence[np.ndarray]] | None = None,
    min_area_size: int = 150,
    area_evidence_z: float = 0.0,
) -> ConformalCalibration:
    """Offsets from a calibration window: y and q_pred in the same (target) space, q_pred uncalibrated.

    `areas` (optional): layer name -> area key arrays, fine to coarse, fitted in the mapping's order.
    `area_evidence_z`: when > 0, areas are fitted coarse first, one additive layer per resolution, and an
    area keeps its own offsets only if its share above some trained quantile is that many standard errors
    off nominal (0: one layer, each leg's finest area with `min_area_size` legs; see the module notes)."""
    y = np.asarray(y, dtype=float)
    residuals = y[:, None] - q_pred
    global_offsets = [conformal_offset(residuals[:, i], q) for i, q in enumerate(quantiles)]
    calibration = ConformalCalibration(
        quantiles=[float(q) for q in quantiles],
        global_offsets=global_offsets,
        min_segment_size=min_segment_size,
        n_calibration=len(y),
    )
    if segments is not None:
        segments = np.asarray(segments, dtype=object)
        keys, counts = np.unique(segments, return_counts=True)
        for key, count in zip(keys, counts, strict=True):
            calibration.segment_counts[str(key)] = int(count)
            if count < min_segment_size:
                continue
            mask = segments == key
            calibration.segment_offsets[str(key)] = [
                conformal_offset(residuals[mask, i], q) for i, q in enumerate(quantiles)
            ]
    if areas:
        calibration.min_area_size = min_area_size
        calibration.area_evidence_z = area_evidence_z
        adjusted = residuals - calibration.offsets_for(segments, len(y))
        for name, keys_by_level in areas.items():
            if area_evidence_z > 0:
                # one additive step per resolution, coarse first: a region's legs pool their evidence, then
                # a cell gets its own offsets only where it differs from its region
                for level in reversed(range(len(keys_by_level))):
                    layer = _fit_area_layer(
                        name, adjusted, quantiles, [keys_by_level[level]], min_area_size, area_evidence_z
                    )
                    layer.level = level
                    calibration.area_layers.append(layer)
                    adjusted = adjusted - layer.offsets_for(layer.keys(keys_by_level), len(quantiles))
            else:  # one step: each leg's finest area with enough legs
                layer = _fit_area_layer(name, adjusted, quantiles, keys_by_level, min_area_size)
                calibration.area_layers.append(layer)
                adjusted = adjusted - layer.offsets_for(keys_by_level, len(quantiles))
    return calibration


def _fit_area_layer(
    name: str,
    residuals: np.ndarray,
    quantiles: Sequence[float],
    keys_by_level: Sequence[np.ndarray],
    min_area_size: int,
    evidence_z: float = 0.0,
) -> AreaLayer:
    """Fine areas with enough legs (and evidence that they differ) first; a coarser area counts only the legs
    no finer area took."""
    layer = AreaLayer(name)
    taken = np.zeros(residuals.shape[0], dtype=bool)
    for keys in keys_by_level:
        keys = np.asarray(keys, dtype=np.int64)
        uniques, counts = np.unique(keys[~taken], return_counts=True)
        for key, count in zip(uniques, counts, strict=True):
            if count < min_area_size or key == NO_AREA:
                continue
            mask = (keys == key) & ~taken
            if evidence_z > 0 and not _differs(residuals[mask], quantiles, evidence_z):
                continue  # no evidence this area is unlike the rest: it keeps the coarser offsets
            offsets = [conformal_offset(residuals[mask, i], q) for i, q in enumerate(quantiles)]
            if not all(math.isfinite(v) for v in offsets):
                continue  # too few legs to bound the extreme levels: the area keeps the coarser offsets
            layer.offsets[int(key)] = offsets
            layer.counts[int(key)] = int(count)
            taken |= mask
    return layer


def _differs(residuals: np.ndarray, quantiles: Sequence[float], z: float) -> bool:
    """Whether the legs' share above quantile t (residual > 0) is off its nominal 1 - t by at least z
    binomial standard errors, at any trained level t."""
    n = residuals.shape[0]
    for i, t in enumerate(quantiles):
        above = float(np.mean(residuals[:, i] > 0))
        if abs(above - (1.0 - t)) >= z * math.sqrt(t * (1.0 - t) / n):
            return True
    return False
