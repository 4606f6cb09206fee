"""Accuracy and calibration on the real data sets and the synthetic city -> results/accuracy.{md,json}.

    .venv/bin/python benchmarks/accuracy.py            # all sets that are present
    .venv/bin/python benchmarks/accuracy.py sendy      # one set

Each set is validated through its adapter, split in time (train / calibration / test), and evaluated on
the test window only. Nothing is tuned against these splits. Sets under ../shared/data are skipped with
a reason when absent.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from data_contracts.home import shared_data_dir
from data_contracts.sources import get_adapter
from data_contracts.sources.base import ingest
from models.metrics import HEADLINE_METRICS
from models.train import TrainConfig, train_eta_model

ROOT = Path(__file__).resolve().parent.parent

COMMAND = "make results  (= .venv/bin/python benchmarks/accuracy.py)"
KEYS = HEADLINE_METRICS


def _synthetic():
    from data_contracts.synthetic import simulate_trips

    return (
        simulate_trips(168_000, seed=7, start=date(2026, 1, 5), days=42),
        "date",
        "simulated Nairobi, 42 days",
    )


def _real(name: str, relative: str, split_by: str, note: str):
    path = shared_data_dir() / relative
    if not path.exists():
        return None, split_by, f"skipped: {path} is absent"
    result = ingest(get_adapter(name), path)
    return result.valid, split_by, f"{note}; {result.rows_in} rows in, {result.rows_quarantined} quarantined"


SETS = {
    "synthetic": _synthetic,
    "sendy": lambda: _real(
        "sendy",
        "sendy_nairobi/deliveries.csv",
        "day_of_month",
        "Sendy Nairobi motorbike deliveries, split by day of month 1-14 / 15-19 / 20-24",
    ),
    "nyc_taxi": lambda: _real(
        "nyc_taxi",
        "nyc_taxi_sample/nyc_taxi.csv",
        "day_of_month",
        "NYC yellow-taxi sample (Manhattan), split by day of month",
    ),
    "citibike": lambda: _real(
        "citibike",
        "citibike_jersey_city",
        "date",
        "Citi Bike Jersey City, 10 months; test = the latest months",
    ),
}


def evaluate_set(name: str) -> dict:
    trips, split_by, note = SETS[name]()
    if trips is None:
        return {"set": name, "note": note}
    started = time.perf_counter()
    result = train_eta_model(trips, TrainConfig(split_by=split_by))
    seg = {k: result.segments[k] for k in ("hour", "region", "distance")}
    return {
        "set": name,
        "note": note,
        "rows": result.rows,
        "windows": result.windows.as_dict(),
        "model": {k: result.metrics[k] for k in KEYS},
        "baselines": {b: {k: m[k] for k in KEYS} for b, m in result.baseline_metrics.items()},
        "beats_baselines": result.beats_baselines(),
        "segments_80": {
            k: {"count": t.height, "worst_abs_gap": float(t["abs_gap"].max()) if t.height else None}
            for k, t in seg.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def acceptance(entry: dict) -> dict[str, bool]:
    m, cell, dist = entry["model"], entry["baselines"]["cell_hour"], entry["baselines"]["distance_only"]
    segs = [
        s["worst_abs_gap"] for k, s in entry["segments_80"].items() if k in ("hour", "region") and s["count"]
    ]
    return {
        "coverage_80_within_2pts": abs(m["coverage_80"] - 0.8) <= 0.02,
        "coverage_90_within_2pts": abs(m["coverage_90"] - 0.9) <= 0.02,
        "hour_and_region_segments_within_6pts": all(g <= 0.06 for g in segs),
        "narrower_than_cell_baseline_at_no_lower_coverage": m["width_80_s"] < cell["width_80_s"]
        and m["coverage_80"] >= cell["coverage_80"] - 1e-9,
        "median_mae_beats_distance_only": m["mae_s"] < dist["mae_s"],
    }


def to_markdown(entries: list[dict], measured: str) -> str:
    lines = [f"Measured {measured} with `{COMMAND}` (test windows only; widths and errors in seconds).", ""]
    lines.append(
        "| set | rows train/cal/test | MAE | MAPE % | pinball | CRPS | cov 50 | cov 80 | cov 90 | width 80 "
        "| cell-hour width 80 (cov) | distance-only MAE | worst 80% segment gap (hour / region / distance) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        if "model" not in e:
            lines.append(f"| {e['set']} | {e['note']} |" + " |" * 11)
            continue
        m, cell, dist, s = (
            e["model"],
            e["baselines"]["cell_hour"],
            e["baselines"]["distance_only"],
            e["segments_80"],
        )
        gaps = " / ".join(
            f"{s[k]['worst_abs_gap']:.3f} ({s[k]['count']})" if s[k]["count"] else "n/a" for k in s
        )
        rows = "/".join(str(e["rows"][k]) for k in ("train", "calibration", "test"))
        lines.append(
            f"| {e['set']} | {rows} | {m['mae_s']:.0f} | {m['mape_pct']:.1f} | {m['pinball_mean']:.1f} | {m['crps_s']:.0f} "
            f"| {m['coverage_50']:.3f} | {m['coverage_80']:.3f} | {m['coverage_90']:.3f} | {m['width_80_s']:.0f} "
            f"| {cell['width_80_s']:.0f} ({cell['coverage_80']:.3f}) | {dist['mae_s']:.0f} | {gaps} |"
        )
    lines.append("")
    lines.append(
        "Segments count only those with at least 200 test trips; the number in brackets is how many."
    )
    for e in entries:
        if "model" in e:
            checks = acceptance(e)
            failed = [k for k, ok in checks.items() if not ok]
            verdict = "all acceptance checks hold" if not failed else "NOT met: " + ", ".join(failed)
            lines.append(f"- **{e['set']}** ({e['note']}): {verdict}.")
        else:
            lines.append(f"- **{e['set']}**: {e['note']}.")
    return "\n".join(lines) + "\n"


def main(names: list[str]) -> None:
    entries = []
    for name in names or list(SETS):
        print(f"== {name}", flush=True)
        entry = evaluate_set(name)
        if "model" in entry:
            entry["acceptance"] = acceptance(entry)
        print(json.dumps(entry, indent=1, default=str), flush=True)
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
