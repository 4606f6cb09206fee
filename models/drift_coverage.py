"""Coverage decay: empirical 80% / 90% coverage of the served intervals on the day's completed trips,
overall and per origin area, against the reference's coverage of the same area (two-proportion z-test).
Every labelled leg counts (a vectorised count, no sampling)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import polars as pl

from models.drift_reference import SEGMENT_COLUMN, DriftReference, DriftSettings, level_tag, segment_counts


def proportion_drop_z(covered_ref: float, n_ref: float, covered_cur: float, n_cur: float) -> float:
    """Two-proportion z statistic of (reference share - current share); 0 when undefined."""
    if n_ref <= 0 or n_cur <= 0:
        return 0.0
    pooled = (covered_ref + covered_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    return 0.0 if se == 0 else (covered_ref / n_ref - covered_cur / n_cur) / se


@dataclass
class CoverageSummary:
    """Coverage of the served intervals on the day's completed trips, and whether it decayed."""

    rows: int
    coverage: dict[str, float]
    reference_coverage: dict[str, float]
    decayed_segments: list[dict[str, object]] = field(default_factory=list)
    segments_judged: int = 0
    trigger: bool = False
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def one_sample_drop_z(expected: float, covered: float, n: float) -> float:
    """z statistic of (expected share - observed share) under a binomial with the expected share."""
    if n <= 0 or not 0 < expected < 1:
        return 0.0
    return (expected - covered / n) / math.sqrt(expected * (1 - expected) / n)


def area_decay(
    current: pl.DataFrame, reference: DriftReference, settings: DriftSettings = DriftSettings()
) -> list[dict[str, object]]:
    """Areas (with enough labelled legs today) whose coverage fell well below what is expected of them.

    Expected is the area's reference coverage, but at least nominal minus `segment_slack`: a model whose test
    window already held drifted days it could not learn carries a degraded reference, and comparing with
    that alone would silence the alarm while the area stays broken. (The slack keeps areas the model always
    covers a little under nominal from firing on an ordinary day.)
    """
    level = settings.levels[0]
    tag = level_tag(level)
    joined = segment_counts(current, settings.levels).join(
        reference.segments, on=SEGMENT_COLUMN, how="left", suffix="_ref"
    )
    decayed = []
    for row in joined.filter(pl.col("n") >= settings.segment_min_legs).iter_rows(named=True):
        covered, n = row[f"covered_{tag}"], row["n"]
        n_ref = row["n_ref"] or 0
        ref = row[f"covered_{tag}_ref"] / n_ref if n_ref else None
        floor = level - settings.segment_slack
        if ref is not None and ref >= floor:
            expected, z = ref, proportion_drop_z(row[f"covered_{tag}_ref"], n_ref, covered, n)
        else:
            expected, z = floor, one_sample_drop_z(floor, covered, n)
        if expected - covered / n >= settings.segment_drop and z >= settings.z_threshold:
            decayed.append(
                {
                    "segment": row[SEGMENT_COLUMN],
                    "n": n,
                    "coverage": covered / n,
                    "expected": expected,
                    "reference": ref,
                    "z": z,
                }
            )
    return decayed


def coverage_decay(
    current: pl.DataFrame, reference: DriftReference, settings: DriftSettings = DriftSettings()
) -> CoverageSummary:
    """Overall coverage of the day vs the reference, and decayed areas (every labelled leg, no sampling)."""
    if current.height == 0:
        return CoverageSummary(0, {}, dict(reference.coverage), reasons=["no labelled legs"])
    reasons: list[str] = []
    coverage = {}
    for level in settings.levels:
        tag = level_tag(level)
        cur = float(current[f"covered_{tag}"].mean())
        coverage[tag] = cur
        ref = reference.coverage[tag]
        z = proportion_drop_z(ref * reference.rows, reference.rows, cur * current.height, current.height)
        if ref - cur >= settings.coverage_drop and z >= settings.z_threshold:
            reasons.append(
                f"{tag}% coverage {cur:.3f} is {ref - cur:.3f} below the reference {ref:.3f} (z={z:.1f})"
            )
    decayed = area_decay(current, reference, settings)
    main = level_tag(settings.levels[0])
    for seg in decayed:
        reasons.append(
            f"area {seg['segment']}: {main}% coverage {seg['coverage']:.3f}, expected {seg['expected']:.3f} "
            f"on {seg['n']} legs (z={seg['z']:.1f})"
        )
    return CoverageSummary(
        rows=current.height,
        coverage=coverage,
        reference_coverage=dict(reference.coverage),
        decayed_segments=decayed,
        segments_judged=int(
            (segment_counts(current, settings.levels)["n"] >= settings.segment_min_legs).sum()
        ),
        trigger=bool(reasons),
        reasons=reasons,
    )
