"""How training cost grows with legs, in-process and on a Dask LocalCluster -> results/scale.{md,json,png}.

    .venv/bin/python benchmarks/scale.py                          # ladder 625k, 2.5M, 10M + the 1M comparison
    .venv/bin/python benchmarks/scale.py --sizes 100000,400000 --compare 0   # a quick ladder, no comparison
    .venv/bin/python benchmarks/scale.py --render                 # rebuild results/ from results/scale.json

Two measurements, each (engine, size) in its own process so peak memory is that step's own:
- **The ladder**: synthetic legs over 28 days through the training stage that grows with legs (`fit_boosters`:
  as-of features per day partition, then the quantile boosters) at fixed boosting rounds, so the curve
  measures rows, not convergence. Wall time, CPU-seconds (the client plus every worker) and peak resident
  memory per process; the fitted exponent of time and memory against legs.
- **The comparison**: the full `train_eta_model` (features, boosters with early stopping, conformal
  calibration, evaluation, production refit) on the same 1M legs on both engines: metrics and wall time.

The cluster is two worker processes of one thread each (this machine's two cores): it shows Dask's
overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
DAYS = 28
LADDER_QUANTILES = (0.1, 0.5, 0.9)
LADDER_ROUNDS = (150, 50)  # median, spreads: fixed (early stopping never fires)
COMPARED = ("pinball_mean", "mae_s", "width_80_s", "coverage_80", "coverage_90", "segment_hour_worst_gap_80")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cluster():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    return cluster, Client(cluster)


def _worker_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


def _worker_peaks(client) -> list[float]:
    return sorted(client.run(_peak_rss_mb).values())


def ladder_step(legs: int, engine: str) -> dict:
    """One rung: `fit_boosters` on `legs` synthetic legs, in this process or on a fresh LocalCluster."""
    import polars as pl

    from data_contracts.synthetic import simulate_trips
    from features.spec import FeatureSpec
    from models.distributed import DaskEngine
    from models.quantile import BoostingParams
    from models.train import TrainConfig, early_stopping_days, fit_boosters

    trips = simulate_trips(legs, seed=5, days=DAYS).sort("start_ts")
    median_rounds, spread_rounds = LADDER_ROUNDS
    config = TrainConfig(
        quantiles=LADDER_QUANTILES,
        params=BoostingParams(
            median_rounds=median_rounds, spread_rounds=spread_rounds, early_stopping_rounds=median_rounds
        ),
    )
    key = pl.col("start_ts").dt.date()
    days = trips.select(key.unique().sort()).to_series().to_list()
    stop_days = early_stopping_days(days, config)
    spec = FeatureSpec()
    row: dict = {"legs": legs, "engine": engine}
    cluster = client = None
    if engine == "dask":
        cluster, client = _cluster()
        worker_cpu = _worker_cpu(client)
    wall, cpu = time.perf_counter(), time.process_time()
    if client is None:
        regressor, _ = fit_boosters(trips, key, stop_days, spec, config)
    else:
        regressor, _ = DaskEngine(client).fit_boosters(trips, key, stop_days, spec, config)
    row["wall_s"] = time.perf_counter() - wall
    row["cpu_s"] = time.process_time() - cpu
    row["peak_mb"] = [_peak_rss_mb()]
    if client is not None:
        row["cpu_s"] += _worker_cpu(client) - worker_cpu
        row["peak_mb"] += _worker_peaks(client)
        client.close()
        cluster.close()
    row["rounds"] = {str(q): b.current_iteration() for q, b in regressor.boosters.items()}
    return row


def compare_step(legs: int, engine: str) -> dict:
    """The full training on `legs` synthetic legs: its metrics and stage times."""
    from data_contracts.synthetic import simulate_trips
    from models.distributed import DaskEngine
    from models.train import train_eta_model

    trips = simulate_trips(legs, seed=5, days=DAYS)
    cluster = client = None
    if engine == "dask":
        cluster, client = _cluster()
    wall = time.perf_counter()
    result = train_eta_model(trips, engine=DaskEngine(client) if client is not None else None)
    row = {"legs": legs, "engine": engine, "wall_s": time.perf_counter() - wall, "peak_mb": [_peak_rss_mb()]}
    if client is not None:
        row["peak_mb"] += _worker_peaks(client)
        client.close()
        cluster.close()
    row["metrics"] = {k: result.metrics[k] for k in COMPARED if k in result.metrics}
    row["stages_s"] = {k: v for k, v in result.metrics.items() if k.startswith("seconds_")}
    return row


def _run_child(kind: str, legs: int, engine: str) -> dict:
    """A step in its own process: peak memory then belongs to that step alone."""
    command = [sys.executable, __file__, "--step", kind, "--legs", str(legs), "--engine", engine]
    print(f"  {kind} {engine} {legs:,} legs ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"legs": legs, "engine": engine, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _exponent(rows: list[dict], key) -> float:
    """Slope of log(key) against log(legs): 1 is linear."""
    import numpy as np

    x = np.log([r["legs"] for r in rows])
    y = np.log([key(r) for r in rows])
    return float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else math.nan


def render(payload: dict) -> str:
    ladder = [r for r in payload["ladder"] if "error" not in r]
    lines = [
        f"Measured {payload['date']} on this machine (2 cores, shared), `python benchmarks/scale.py`. "
        f"Ladder: `fit_boosters` (as-of features per day partition + quantiles {', '.join(map(str, LADDER_QUANTILES))} "
        f"at a fixed {LADDER_ROUNDS[0]}/{LADDER_ROUNDS[1]} rounds) on synthetic legs over {DAYS} days; "
        "the cluster is a LocalCluster of 2 worker processes x 1 thread. Peak memory: the driving process, then each worker.",
        "",
        "| legs | engine | wall s | CPU s | peak memory MB | s per 1M legs |",
        "|---:|---|---:|---:|---|---:|",
    ]
    for r in payload["ladder"]:
        if "error" in r:
            lines.append(f"| {r['legs']:,} | {r['engine']} | failed: {r['error']} | | | |")
            continue
        peaks = " + ".join(f"{p:,.0f}" for p in r["peak_mb"])
        per_m = r["wall_s"] / r["legs"] * 1e6
        lines.append(
            f"| {r['legs']:,} | {r['engine']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {peaks} | {per_m:.1f} |"
        )
    lines.append("")
    for engine in ("in-process", "dask"):
        rows = [r for r in ladder if r["engine"] == engine]
        if len(rows) > 1:
            lines.append(
                f"- {engine}: wall time grows as legs^{_exponent(rows, lambda r: r['wall_s']):.2f}, "
                f"peak memory (largest process) as legs^{_exponent(rows, lambda r: max(r['peak_mb'])):.2f} "
                f"({rows[0]['legs']:,} to {rows[-1]['legs']:,} legs)"
            )
    compare = [r for r in payload.get("compare", []) if "error" not in r]
    if len(compare) == 2:
        local, dask = sorted(compare, key=lambda r: r["engine"] != "in-process")
        lines += [
            "",
            f"Full `train_eta_model` on the same {local['legs']:,} synthetic legs (default config, refit included):",
            "",
            "| metric | in-process | dask | dask / in-process |",
            "|---|---:|---:|---:|",
        ]
        for k in COMPARED:
            if k in local["metrics"] and k in dask["metrics"]:
                a, b = local["metrics"][k], dask["metrics"][k]
                lines.append(f"| {k} | {a:.4g} | {b:.4g} | {b / a:.3f} |")
        lines.append(
            f"| wall s | {local['wall_s']:.0f} | {dask['wall_s']:.0f} | {dask['wall_s'] / local['wall_s']:.2f} |"
        )
    return "\n".join(lines)


def plot(payload: dict, path: Path) -> Path:
    from models.plots import new_figure, save_png

    fig = new_figure((9, 3.6))
    wall, memory = fig.subplots(1, 2)
    for engine in ("in-process", "dask"):
        rows = [r for r in payload["ladder"] if r["engine"] == engine and "error" not in r]
        if rows:
            legs = [r["legs"] for r in rows]
            wall.loglog(legs, [r["wall_s"] for r in rows], "o-", label=engine)
            memory.loglog(legs, [max(r["peak_mb"]) for r in rows], "o-", label=engine)
    wall.set(xlabel="legs", ylabel="wall s", title="features + boosters")
    memory.set(xlabel="legs", ylabel="peak MB (largest process)", title="memory")
    wall.legend()
    return save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="625000,2500000,10000000")
    parser.add_argument(
        "--compare", type=int, default=1_000_000, help="legs of the full comparison (0: skip)"
    )
    parser.add_argument("--in-process-max", type=int, default=10_000_000, help="largest in-process rung")
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--step", choices=("ladder", "compare"), help=argparse.SUPPRESS)
    parser.add_argument("--legs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("in-process", "dask"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step = ladder_step if args.step == "ladder" else compare_step
        print(json.dumps(step(args.legs, args.engine)))
        return
    store = RESULTS / "scale.json"
    if args.render:
        payload = json.loads(store.read_text())
    else:
        payload = {"date": time.strftime("%Y-%m-%d"), "ladder": [], "compare": []}
        for legs in (int(s) for s in args.sizes.split(",")):
            for engine in ("in-process", "dask"):
                if engine == "dask" or legs <= args.in_process_max:
                    payload["ladder"].append(_run_child("ladder", legs, engine))
        if args.compare:
            # interleaved with nothing else running: the two full trainings back to back
            payload["compare"] = [_run_child("compare", args.compare, e) for e in ("in-process", "dask")]
        RESULTS.mkdir(exist_ok=True)
        store.write_text(json.dumps(payload, indent=2))
    (RESULTS / "scale.md").write_text(render(payload) + "\n")
    plot(payload, RESULTS / "scale.png")
    print(render(payload))


if __name__ == "__main__":
    main()
