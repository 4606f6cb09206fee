"""Online calibration: the champion's windows recalibrated on the deliveries completed in the last days.

Between retrainings a city changes (a district slows, a season turns) and the champion's conformal
offsets, fitted once, fall behind. Every day the completed legs carry exactly what is needed: their
durations and the windows the champion gave them. The online calibrator is split conformal again, on a
rolling window of those legs: a `ConformalCalibration` (global layer, then origin and destination areas
from region to fine cell, each only with enough legs and evidence that it differs) fitted on the
champion's *own* calibrated quantiles of the last `window_days` days, and applied on top of them.

Why this and not adaptive conformal inference (ACI, Gibbs & Candès 2021): served in daily batches, ACI's
one-step-per-leg feedback lagged and undershot (a stationary city drifted to 0.79), and a global level
cannot find a slowed district; see docs/decisions/online-calibration.md for the measurements.

Bounded: an interval's ends move at most `max_widen` of its width outward and `max_narrow` inward, so a
burst of bad labels can at most widen a window by that much, and the answer is sorted and positive.
State is tied to one champion version; a new champion starts from none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from models.conformal import CalibrationConfig, ConformalCalibration, fit_conformal, interval_pairs


@dataclass(frozen=True)
class OnlineConfig:
    """How the online calibrator learns (the one home of these defaults)."""

    window_days: int = 3  # completed days the offsets are fitted on
    layers: tuple[str, ...] = (
        "origin_region",
        "origin_cell",
        "origin_fine",
        "dest_region",
        "dest_cell",
        "dest_fine",
    )
    min_group_size: int = 40  # legs an area needs in the window for offsets of its own
    evidence_z: float = 3.0  # ... and how far off nominal it must be (binomial standard errors)
    min_legs: int = 200  # fewer completed legs in the window: no adjustment at all
    max_widen: float = 0.5  # an end moves out at most this share of its interval's width
    max_narrow: float = 0.25  # ... and in at most this share

    def calibration(self) -> CalibrationConfig:
        return CalibrationConfig(
            profile_inputs=(),
            layers=self.layers,
            min_group_size=self.min_group_size,
            evidence_z=self.evidence_z,
        )


@dataclass
class CompletedDay:
    """One day's completed legs: label, the champion's calibrated quantiles as served, the area keys."""

    day: str
    y: np.ndarray
    q: np.ndarray  # (n, k) seconds
    keys: dict[str, np.ndarray]

    def frame(self, quantiles: list[float]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "duration_s": self.y,
                **{f"q{i}": self.q[:, i] for i in range(len(quantiles))},
                **{name: np.asarray(v, dtype=object).astype(str) for name, v in self.keys.items()},
            }
        )

    @classmethod
    def from_frame(
        cls, day: str, frame: pl.DataFrame, quantiles: list[float], keys: tuple[str, ...]
    ) -> CompletedDay:
        q = frame.select([f"q{i}" for i in range(len(quantiles))]).to_numpy()
        return cls(
            day, frame["duration_s"].to_numpy(), q, {k: frame[k].to_numpy().astype(object) for k in keys}
        )


@dataclass
class OnlineState:
    """The calibrator of one champion version: the last days it learned from and what it learned."""

    champion_version: int
    quantiles: list[float]
    config: OnlineConfig = field(default_factory=OnlineConfig)
    days: list[CompletedDay] = field(default_factory=list)
    calibration: ConformalCalibration | None = None
    revision: int = 0  # updates so far (0: nothing learned)

    @property
    def through(self) -> str | None:
        """The last day learned from."""
        return self.days[-1].day if self.days else None

    def describe(self) -> dict[str, object]:
        """What an answer says about the state that adjusted it."""
        return {
            "champion_version": self.champion_version,
            "revision": self.revision,
            "through": self.through,
            "legs": int(sum(len(d.y) for d in self.days)),
            "active": self.calibration is not None,
        }


def update(state: OnlineState, day: CompletedDay) -> OnlineState:
    """The state after learning `day` (replacing an earlier update of the same day); pure."""
    days = [d for d in state.days if d.day != day.day] + [day]
    days = sorted(days, key=lambda d: d.day)[-state.config.window_days :]
    y = np.concatenate([d.y for d in days])
    calibration = None
    if len(y) >= state.config.min_legs:
        q = np.concatenate([d.q for d in days])
        keys = {name: np.concatenate([d.keys[name] for d in days]) for name in state.config.layers}
        calibration = fit_conformal(y, np.log(q), state.quantiles, keys, state.config.calibration())
    return replace(state, days=days, calibration=calibration, revision=state.revision + 1)


def learned_before(state: OnlineState, day: str) -> OnlineState:
    """The state as it was before `day` was learned: the same days before it, fitted again."""
    earlier = OnlineState(state.champion_version, state.quantiles, state.config)
    for d in (d for d in state.days if d.day < day):
        earlier = update(earlier, d)
    return earlier


def apply(state: OnlineState | None, q: np.ndarray, keys: dict[str, np.ndarray]) -> np.ndarray:
    """The champion's calibrated quantiles `q` (seconds) adjusted by the state, within its bounds."""
    if state is None or state.calibration is None:
        return q
    adjusted = state.calibration.apply(np.log(q), keys)
    shift = adjusted - q
    limit_lo, limit_hi = np.zeros_like(q), np.zeros_like(q)
    pairs = interval_pairs(state.quantiles)
    for lo, hi in pairs:
        width = q[:, hi] - q[:, lo]
        limit_lo[:, lo], limit_hi[:, lo] = -state.config.max_widen * width, state.config.max_narrow * width
        limit_lo[:, hi], limit_hi[:, hi] = -state.config.max_narrow * width, state.config.max_widen * width
    if len(state.quantiles) % 2:  # the median moves at most as far as the innermost interval's ends may
        mid, (lo, hi) = len(state.quantiles) // 2, pairs[0]
        width = q[:, hi] - q[:, lo]
        limit_lo[:, mid], limit_hi[:, mid] = -state.config.max_narrow * width, state.config.max_narrow * width
    bounded = q + np.clip(shift, limit_lo, limit_hi)
    return np.maximum(np.sort(bounded, axis=1), state.calibration.config.min_duration_s)


STATE_FILE = "state.json"


def save(state: OnlineState, directory: Path) -> Path:
    """Write the state into `directory` (one JSON file and a Parquet file per day)."""
    directory.mkdir(parents=True, exist_ok=True)
    for d in state.days:
        d.frame(state.quantiles).write_parquet(directory / f"day={d.day}.parquet")
    body = {
        "champion_version": state.champion_version,
        "quantiles": state.quantiles,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(state.config).items()},
        "days": [d.day for d in state.days],
        "calibration": None if state.calibration is None else state.calibration.to_dict(),
        "revision": state.revision,
    }
    (directory / STATE_FILE).write_text(json.dumps(body, indent=1))
    return directory


def load(directory: Path) -> OnlineState:
    body = json.loads((Path(directory) / STATE_FILE).read_text())
    quantiles = [float(q) for q in body["quantiles"]]
    config = OnlineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in body["config"].items()})
    days = [
        CompletedDay.from_frame(
            day, pl.read_parquet(Path(directory) / f"day={day}.parquet"), quantiles, config.layers
        )
        for day in body["days"]
    ]
    calibration = None if body["calibration"] is None else ConformalCalibration.from_dict(body["calibration"])
    return OnlineState(
        int(body["champion_version"]), quantiles, config, days, calibration, int(body["revision"])
    )


KEEP_REVISIONS = 5  # a store keeps this many revisions of a champion's state (the newest one is served)
LATEST_FILE = "latest"


class StateStore:
    """Where online states live: `<root>/<model name>/v<version>/r<revision>/`, and a `latest` file naming
    the newest revision, replaced atomically once the revision is whole (readers never see half a state)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, name: str, version: int) -> Path:
        return self.root / name / f"v{version}"

    def latest_revision(self, name: str, version: int) -> int | None:
        """The newest revision of a champion's state (cheap: one small file), None when there is none."""
        pointer = self.folder(name, version) / LATEST_FILE
        try:
            return int(pointer.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def latest(self, name: str, version: int) -> OnlineState | None:
        revision = self.latest_revision(name, version)
        return None if revision is None else load(self.folder(name, version) / f"r{revision}")

    def write(self, name: str, state: OnlineState) -> Path:
        import shutil

        from data_contracts.safe_io import write_atomic

        folder = self.folder(name, state.champion_version)
        target = folder / f"r{state.revision}"
        staging = folder / f".r{state.revision}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        save(state, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        write_atomic(folder / LATEST_FILE, lambda tmp: tmp.write_text(str(state.revision)))
        kept = sorted((p for p in folder.glob("r*") if p.name[1:].isdigit()), key=lambda p: int(p.name[1:]))
        for old in kept[:-KEEP_REVISIONS]:
            shutil.rmtree(old, ignore_errors=True)
        return target
