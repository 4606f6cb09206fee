"""Accuracy and calibration on the real data sets and the synthetic city -> results/accuracy.{md,json}.

    .venv/bin/python benchmarks/accuracy.py                  # all sets that are present, with the ablation
    .venv/bin/python benchmarks/accuracy.py sendy            # one set
    .venv/bin/python benchmarks/accuracy.py --no-ablation    # the main table only

Each set is validated through its adapter, split in time the way its source's calendar says (train /
calibration / test), and evaluated on the test window only; the numbers describe the evaluated model (the
shipped one is refit on the newest days, see models.train). Nothing is tuned against these splits. The
ablation retrains each set with one calibration choice changed, so that every layer's effect is visible.
Sets under ../shared/data are skipped with a reason when absent.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from data_contracts.home import shared_data_dir
from data_contracts.sources import get_adapter
from data_contracts.sources.base import ingest
from models.conformal import CalibrationConfig
from models.metrics import HEADLINE_METRICS
from models.train import PROFILES, TrainConfig, split_for, train_eta_model

ROOT = Path(__file__).resolve().parent.parent

COMMAND = "make results  (= .venv/bin/python benchmarks/accuracy.py)"
KEYS = HEADLINE_METRICS
COVERAGE_TOLERANCE = 0.015  # 80% and 90% coverage, overall
SEGMENT_TOLERANCE = 0.05  # every hour, region and distance segment with >= 200 test legs
PROFILE_TOLERANCE = 0.02  # callers that leave optional inputs out, and unseen couriers
NARROWER_THAN_CELL = 0.15  # the 80% window at least this much narrower than the cell-hour band
AREAS = ("origin_region", "origin_cell", "dest_region", "dest_cell")
# (label, what changes from the default) -> a TrainConfig
ABLATION: dict[str, dict] = {
    "global offsets only": {"calibration": {"profile_inputs": (), "layers": ()}},
    "+ caller profiles": {"calibration": {"layers": ()}},
    "+ distance band": {"calibration": {"layers": ("distance",)}},
    "+ areas (the default)": {},
    "+ hour band": {"calibration": {"layers": ("distance", "hour", *AREAS)}},
    "areas without evidence (z = 0)": {"calibration": {"evidence_z": 0.0}},
    "score: log seconds, per level (until 2026-12)": {"calibration": {"space": "log", "symmetric": False}},
    "score: log seconds, symmetric": {"calibration": {"space": "log"}},
    "score: seconds, per level": {"calibration": {"symmetric": False}},
    "no input dropout in training": {"input_dropout": 0.0},
}


def _synthetic():
    from data_contracts.synthetic import simulate_trips

    trips = simulate_trips(168_000, seed=7, start=date(2026, 1, 5), days=42)
    return trips, "date", "simulated Nairobi, 42 days"


def _real(name: str, relative: str, note: str):
    path = shared_data_dir() / relative
    if not path.exists():
        return None, None, f"skipped: {path} is absent"
    result = ingest(get_adapter(name), path)
    return (
        result.valid,
        split_for(result.calendar, None),
        f"{note}; {result.rows_in} rows in, {result.rows_quarantined} quarantined",
    )


SETS = {
    "synthetic": _synthetic,
    "sendy": lambda: _real(
        "sendy", "sendy_nairobi/deliveries.csv", "Sendy Nairobi motorbike deliveries, days of month 1-24"
    ),
    "nyc_taxi": lambda: _real(
        "nyc_taxi", "nyc_taxi_sample/nyc_taxi.csv", "NYC yellow-taxi sample (Manhattan), May 2016"
    ),
    "citibike": lambda: _real(
        "citibike", "citibike_jersey_city", "Citi Bike Jersey City, 10 months; test = the latest months"
    ),
}


def noise_floor(counts: list[int], level: float = 0.8, draws: int = 4000, seed: int = 0) -> float | None:
    """The worst segment gap a perfectly calibrated model would show 95% of the time: segments of these
    sizes, each a binomial draw at `level` (the bar the measured worst gap is read against)."""
    if not counts:
        return None
    rng = np.random.default_rng(seed)
    shares = rng.binomial(np.asarray(counts), level, size=(draws, len(counts))) / np.asarray(counts)
    return float(np.quantile(np.abs(shares - level).max(axis=1), 0.95))


def _segments(result) -> dict[str, dict]:
    out = {}
    for name, table in result.segments.items():
        counts = table["n"].to_list() if table.height else []
        out[name] = {
            "count": table.height,
            "worst_abs_gap": float(table["abs_gap"].max()) if table.height else None,
            "noise_floor_95": noise_floor(counts),
        }
    return out


def evaluate_set(name: str, ablation: bool) -> dict:
    trips, split_by, note = SETS[name]()
    if trips is None:
        return {"set": name, "note": note}
    started = time.perf_counter()
    config = TrainConfig(split_by=split_by)
    result = train_eta_model(trips, config)
    entry = {
        "set": name,
        "note": note,
        "rows": result.rows,
        "windows": result.windows.as_dict(),
        "refit": result.refit,
        "warnings": result.warnings,
        "model": {k: result.metrics[k] for k in KEYS},
        "profiles": {k: v for k, v in result.metrics.items() if k.startswith("profile_")},
        "calibration_groups": {k: v for k, v in result.metrics.items() if k.startswith("calibration_")},
        "enroute": {k: v for k, v in result.metrics.items() if k.startswith(("enroute_", "late_"))},
        "baselines": {b: {k: m[k] for k in KEYS} for b, m in result.baseline_metrics.items()},
        "beats_baselines": result.beats_baselines(),
        "segments_80": _segments(result),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if ablation:
        entry["ablation"] = {}
        for label, change in ABLATION.items():
            calibration = replace(CalibrationConfig(), **change.get("calibration", {}))
            others = {k: v for k, v in change.items() if k != "calibration"}
            variant = replace(config, refit=False, calibration=calibration, **others)
            trial = train_eta_model(trips, variant)
            entry["ablation"][label] = {
                **{k: trial.metrics[k] for k in ("coverage_80", "coverage_90", "width_80_s", "mae_s")},
                "worst_gap": {k: v["worst_abs_gap"] for k, v in _segments(trial).items()},
            }
            print(f"   {label}: {entry['ablation'][label]}", flush=True)
    return entry


def acceptance(entry: dict) -> dict[str, bool]:
    m, cell = entry["model"], entry["baselines"]["cell_hour"]
    gaps = [s["worst_abs_gap"] for s in entry["segments_80"].values() if s["count"]]
    profiles = [v - 0.8 for k, v in entry["profiles"].items() if k.endswith("coverage_80")]
    return {
        "coverage_80_within_1.5pts": abs(m["coverage_80"] - 0.8) <= COVERAGE_TOLERANCE,
        "coverage_90_within_1.5pts": abs(m["coverage_90"] - 0.9) <= COVERAGE_TOLERANCE,
        "segments_within_5pts": all(g <= SEGMENT_TOLERANCE for g in gaps),
        "profiles_within_2pts": all(abs(g) <= PROFILE_TOLERANCE for g in profiles),
        "15pct_narrower_than_cell_hour_at_no_lower_coverage": m["width_80_s"]
        <= (1 - NARROWER_THAN_CELL) * cell["width_80_s"]
        and m["coverage_80"] >= cell["coverage_80"] - 1e-9,
        "median_mae_beats_distance_only": m["mae_s"] < entry["baselines"]["distance_only"]["mae_s"],
        "enroute_windows_within_2pts": all(
            abs(v - 0.8) <= PROFILE_TOLERANCE
            for k, v in entry.get("enroute", {}).items()
            if k.endswith("_coverage_80") and not k.startswith("enroute_0x")
        ),
        "late_risk_ece_at_most_0.02_and_skill_above_0": entry.get("enroute", {}).get("late_ece", 1.0) <= 0.02
        and entry.get("enroute", {}).get("late_brier_skill", 0.0) > 0,
    }


def _gap(s: dict) -> str:
    if not s["count"]:
        return "n/a"
    return f"{s['worst_abs_gap']:.3f} ({s['count']}; {s['noise_floor_95']:.3f})"


def to_markdown(entries: list[dict], measured: str) -> str:
    lines = [
        f"Measured {measured} with `{COMMAND}` (test windows only, the evaluated model; widths and errors in "
        "seconds).",
        "",
        "| set | rows train/cal/test | MAE | pinball | CRPS | cov 80 | cov 90 | width 80 | cell-hour width 80 (cov) "
        "| distance-only MAE | worst 80% segment gap (hour / region / distance) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        if "model" not in e:
            lines.append(f"| {e['set']} | {e['note']} |" + " |" * 9)
            continue
        m, cell, dist, s = (
            e["model"],
            e["baselines"]["cell_hour"],
            e["baselines"]["distance_only"],
            e["segments_80"],
        )
        rows = "/".join(str(e["rows"][k]) for k in ("train", "calibration", "test"))
        lines.append(
            f"| {e['set']} | {rows} | {m['mae_s']:.0f} | {m['pinball_mean']:.1f} | {m['crps_s']:.0f} "
            f"| {m['coverage_80']:.3f} | {m['coverage_90']:.3f} | {m['width_80_s']:.0f} "
            f"| {cell['width_80_s']:.0f} ({cell['coverage_80']:.3f}) | {dist['mae_s']:.0f} "
            f"| {' / '.join(_gap(s[k]) for k in ('hour', 'region', 'distance'))} |"
        )
    lines += [
        "",
        "Segments count only those with at least 200 test legs: worst gap (how many segments; the worst gap a "
        "perfectly calibrated model would show 95% of the time on segments of those sizes).",
        "",
        "80% coverage and width by caller profile (the same test legs with inputs left out; unseen couriers: "
        "the test legs whose courier has no history):",
        "",
        "| set | " + " | ".join(p.replace("_", " ") for p in (*PROFILES, "unseen_courier")) + " |",
        "|---|" + "---|" * (len(PROFILES) + 1),
    ]
    for e in entries:
        if "model" not in e:
            continue
        cells = []
        for profile in (*PROFILES, "unseen_courier"):
            cov = e["profiles"].get(f"profile_{profile}_coverage_80")
            width = e["profiles"].get(f"profile_{profile}_width_80_s")
            cells.append("-" if cov is None else f"{cov:.3f} ({width:.0f})")
        lines.append(f"| {e['set']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Legs in progress (issue 21): 80% coverage (width s) of the remaining-time window for the test legs still "
        "running at 0.5, 1, 1.5 and 2 times their predicted median, and the calibrated probability of missing a "
        "promise at the 80% or 90% window's end (judged at every checkpoint): Brier skill against the base rate "
        "and expected calibration error.",
        "",
        "| set | 0.5x | 1x | 1.5x | 2x | late: base rate / Brier skill / ECE |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        r = e.get("enroute") or {}
        if not r:
            continue
        cells = [
            f"{r[f'enroute_{c}_coverage_80']:.3f} ({r[f'enroute_{c}_width_80_s']:.0f}; n {r[f'enroute_{c}_n']:.0f})"
            for c in ("0.5x", "1x", "1.5x", "2x")
        ]
        risk = f"{r['late_base_rate']:.3f} / {r['late_brier_skill']:.3f} / {r['late_ece']:.4f}"
        lines.append(f"| {e['set']} | " + " | ".join(cells) + f" | {risk} |")
    lines.append("")
    for e in entries:
        if "model" in e:
            failed = [k for k, ok in acceptance(e).items() if not ok]
            verdict = "all acceptance checks hold" if not failed else "NOT met: " + ", ".join(failed)
            lines.append(f"- **{e['set']}** ({e['note']}): {verdict}.")
            lines += [f"  - warning: {w}" for w in e.get("warnings", [])]
        else:
            lines.append(f"- **{e['set']}**: {e['note']}.")
    if any("ablation" in e for e in entries):
        lines += ["", ablation_markdown(entries)]
    return "\n".join(lines) + "\n"


def ablation_markdown(entries: list[dict]) -> str:
    done = [e for e in entries if "ablation" in e]
    lines = [
        "Each calibration layer and score, one change at a time (test window; cov 80 / cov 90 / width 80 s / "
        "worst 80% gap over hour, region and distance segments):",
        "",
        "| variant | " + " | ".join(e["set"] for e in done) + " |",
        "|---|" + "---|" * len(done),
    ]
    for label in ABLATION:
        cells = []
        for e in done:
            a = e["ablation"][label]
            worst = max((g for g in a["worst_gap"].values() if g is not None), default=float("nan"))
            cells.append(
                f"{a['coverage_80']:.3f} / {a['coverage_90']:.3f} / {a['width_80_s']:.0f} / {worst:.3f}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args: list[str]) -> None:
    ablation = "--no-ablation" not in args
    names = [a for a in args if not a.startswith("--")] or list(SETS)
    entries = []
    for name in names:
        print(f"== {name}", flush=True)
        entry = evaluate_set(name, ablation)
        if "model" in entry:
            entry["acceptance"] = acceptance(entry)
        print(
            json.dumps({k: v for k, v in entry.items() if k != "ablation"}, indent=1, default=str), flush=True
        )
        entries.append(entry)
    measured = datetime.now(UTC).strftime("%Y-%m-%d")
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "accuracy.json").write_text(
        json.dumps({"measured": measured, "command": COMMAND, "sets": entries}, indent=1, default=str)
    )
    (out / "accuracy.md").write_text(to_markdown(entries, measured))
    print((out / "accuracy.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
