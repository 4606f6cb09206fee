"""Model-side performance -> results/model_performance.md (a benchmark, not a test).

    .venv/bin/python benchmarks/model_performance.py [n_legs]     # default 1,000,000

Reports: feature-build throughput for n synthetic legs (serving and training paths) against a per-row
pandas + h3 apply (20k legs, extrapolated); training time for n legs x 7 quantiles on this machine; model
compute per leg (all quantiles, calibrated) for batches of 1 and 1,000. Medians of repeated runs; the
machine is shared, so the load average is printed with the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

# sibling scripts in benchmarks/: the per-row pandas baseline, and the gap metrics that README's
# "Training time" table shows too
from feature_throughput import pandas_baseline
from training_trials import GAPS

from data_contracts.synthetic import simulate_trips
from features.aggregates import AggregateTable
from features.build import build_features
from features.spec import FeatureSpec
from models.bundle import feature_matrix
from models.train import TrainConfig, train_eta_model

ROOT = Path(__file__).resolve().parent.parent


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


COMPARED = ("pinball_mean", "mae_s", "width_80_s", "coverage_80", "coverage_90")


def train_and_time(trips, config: TrainConfig, label: str):
    """Train once; (result, table row with fit-and-calibrate time, whole-run time and rounds per quantile)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train_eta_model(trips, config)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    fit = result.metrics["seconds_fit_and_calibrate"]
    rows = result.rows["train"]
    rounds = {q: b.current_iteration() for q, b in result.model.regressor.boosters.items()}
    line = (
        f"| training, {rows:,} training legs x 7 quantiles ({label}) | fit and calibrate {fit:.1f} s; whole run "
        f"(features, calibration, evaluation, baselines) {total:.1f} s wall / {cpu:.0f} CPU-s; rounds {rounds} "
        f"({sum(rounds.values())} trees) | <= 60 s |"
    )
    return result, line


def window_metrics(result) -> str:
    m = result.metrics
    shown = ", ".join(f"{k} {m[k]:.4g}" for k in COMPARED)
    return f"{shown}; worst 80% gap hour / region {m[GAPS[0]]:.3f} / {m[GAPS[1]]:.3f}"


def main(n: int) -> None:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `.venv/bin/python benchmarks/model_performance.py {n}` "
        f"on {os.cpu_count()} cores (load average at start {os.getloadavg()[0]:.1f}; the machine is shared).",
        "",
    ]
    spec = FeatureSpec()
    trips = simulate_trips(n, seed=5, start=date(2026, 1, 5), days=42)
    table = AggregateTable.from_trips(trips, spec)
    frozen = table.freeze(date(2026, 2, 16))
    legs = trips.drop("duration_s")
    build_features(legs.head(1000), frozen, spec)
    serving = median_seconds(lambda: build_features(legs, frozen, spec), 3)
    training_path = median_seconds(lambda: build_features(trips, table, spec), 1)
    sample = 20_000
    per_row = pandas_baseline(legs.head(sample), frozen, spec) * n / sample
    lines += [
        "| measure | figure | target |",
        "|---|---|---|",
        f"| feature build, serving path (frozen aggregates), {n:,} legs | {serving:.2f} s = {n / serving:,.0f} legs/s | >= 1M legs/s |",
        f"| feature build, training path (as-of snapshots), {n:,} legs | {training_path:.2f} s = {n / training_path:,.0f} legs/s | |",
        f"| per-row pandas + h3 apply (20k legs, extrapolated to {n:,}) | {per_row:.0f} s = {n / per_row:,.0f} legs/s; polars is {per_row / serving:.0f}x faster | >= 10x |",
    ]
    print("\n".join(lines), flush=True)

    result, line = train_and_time(trips, TrainConfig(), "LightGBM, 2 threads")
    lines += [line, f"| test window of that run | {window_metrics(result)} | |"]
    print("\n".join(lines[-2:]), flush=True)

    model = result.model
    features = model.features(legs.head(1000))
    x = feature_matrix(features, spec)
    model.regressor.predict(x)
    for batch in (1, 1000):
        f = features.head(batch)
        compute = median_seconds(lambda f=f: model.predict_from_features(f), 50 if batch == 1 else 20)
        whole = median_seconds(
            lambda b=batch: model.predict_quantiles(legs.head(b)), 50 if batch == 1 else 20
        )
        lines.append(
            f"| per leg, batch of {batch:,}: model compute (7 quantiles + calibration) / with features | "
            f"{compute / batch * 1e6:,.1f} us / {whole / batch * 1e6:,.1f} us | <= 10 us batched |"
        )
        print(lines[-1], flush=True)
    out = ROOT / "results" / "model_performance.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
