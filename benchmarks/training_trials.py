"""Training time against accuracy for a few boosting settings (a benchmark, not a test).

    .venv/bin/python benchmarks/training_trials.py                      # every trial below, in turn
    .venv/bin/python benchmarks/training_trials.py '{"learning_rate": 0.2}'   # one setting

Trains on the model benchmark's data (1,000,000 synthetic legs, seed 5, 42 days; ~594k training legs)
with the default `BoostingParams` changed by each trial, and prints one JSON line per trial: boosting
seconds, rounds and trees, and the test window's metrics. Each trial takes about two minutes on 2 cores.
This is the trade-off table in README ("Training time"); the test window is the benchmark's, not one of
the acceptance sets, which were left alone.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from datetime import date

from data_contracts.synthetic import simulate_trips
from models.quantile import BoostingParams
from models.train import TrainConfig, train_eta_model

TRIALS: list[dict[str, object]] = [
    {},  # the default
    {"learning_rate": 0.15},
    {"learning_rate": 0.2},
    {"learning_rate": 0.15, "spread_rows_per_round": 80_000},
    {"learning_rate": 0.15, "median_rows_per_round": 250_000, "spread_rows_per_round": 100_000},
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


def main(argv: list[str]) -> None:
    trips = simulate_trips(1_000_000, seed=5, start=date(2026, 1, 5), days=42)
    for overrides in [json.loads(a) for a in argv] or TRIALS:
        print(json.dumps(trial(trips, overrides)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
