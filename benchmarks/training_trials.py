"""Training time against accuracy for a few boosting settings (a benchmark, not a test).

    .venv/bin/python benchmarks/training_trials.py          # every trial below -> results/training_trials.md
    .venv/bin/python benchmarks/training_trials.py '{"learning_rate": 0.2}'   # one setting, printed only

Trains on the model benchmark's data (1,000,000 synthetic legs, seed 5, 42 days; ~594k training legs)
with the default `BoostingParams` changed by each trial, and prints one JSON line per trial: boosting
seconds, rounds and trees, and the test window's metrics. Each trial takes about two minutes on 2 cores.
The full run writes the trade-off table of README ("Training time"). The test window is the benchmark's,
not one of the acceptance sets, which were left alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from data_contracts.synthetic import simulate_trips
from models.quantile import BoostingParams
from models.train import TrainConfig, train_eta_model

ROOT = Path(__file__).resolve().parent.parent
# the default until 2026-11-22 (learning rate 0.08, 150k rows per spread round), which took 95-125 s
PREVIOUS_DEFAULT: dict[str, object] = {"learning_rate": 0.08, "spread_rows_per_round": 150_000}
TRIALS: list[dict[str, object]] = [
    PREVIOUS_DEFAULT,
    {"spread_rows_per_round": 150_000},  # learning rate 0.15 alone
    {"learning_rate": 0.2, "spread_rows_per_round": 150_000},
    {},  # the default: learning rate 0.15, 80k rows per spread round
    {"median_rows_per_round": 250_000, "spread_rows_per_round": 100_000},
]
SHOWN = ("pinball_mean", "mae_s", "crps_s", "width_80_s", "coverage_80", "coverage_90")
GAPS = ("segment_hour_worst_gap_80", "segment_region_worst_gap_80", "segment_distance_worst_gap_80")


def trial(trips, overrides: dict[str, object]) -> dict[str, object]:
    params = dataclasses.replace(BoostingParams(), **overrides)
    started = time.perf_counter()
    result = train_eta_model(trips, TrainConfig(params=params))
    rounds = {q: b.current_iteration() for q, b in result.model.regressor.boosters.items()}
    return {
        "overrides": overrides,
        "boosting_s": round(result.metrics["seconds_fit"], 1),
        "whole_run_s": round(time.perf_counter() - started, 1),
        "rounds": rounds,
        "trees": sum(rounds.values()),
        **{key: round(float(result.metrics[key]), 4) for key in (*SHOWN, *GAPS)},
    }


def markdown(rows: list[dict[str, object]], load: float) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `.venv/bin/python benchmarks/training_trials.py` on "
        f"{os.cpu_count()} cores (load average at start {load:.1f}; the machine is shared); test window of "
        "the 1,000,000-leg benchmark run, one run per setting.",
        "",
        "| setting (changed from the default) | boosting | trees | pinball | MAE s | CRPS s | width 80 s "
        "| cov 80 / 90 | worst 80% gap hour / region |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setting = ", ".join(f"{k} {v:,}" for k, v in r["overrides"].items()) or "none (the default)"
        if r["overrides"] == PREVIOUS_DEFAULT:
            setting += " (the default until 2026-11-22)"
        lines.append(
            f"| {setting} | {r['boosting_s']} s | {r['trees']} | {r['pinball_mean']:.2f} | {r['mae_s']:.1f} "
            f"| {r['crps_s']:.1f} | {r['width_80_s']:.0f} | {r['coverage_80']:.3f} / {r['coverage_90']:.3f} "
            f"| {r[GAPS[0]]:.3f} / {r[GAPS[1]]:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    load = os.getloadavg()[0]
    trips = simulate_trips(1_000_000, seed=5, start=date(2026, 1, 5), days=42)
    rows = []
    for overrides in [json.loads(a) for a in argv] or TRIALS:
        rows.append(trial(trips, overrides))
        print(json.dumps(rows[-1]), flush=True)
    if not argv:
        out = ROOT / "results" / "training_trials.md"
        out.write_text(markdown(rows, load))
        print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
