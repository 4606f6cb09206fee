"""Write the simulated city as daily raw partitions, or hand back N clean legs in memory.

Partitions are `out_dir/date=YYYY-MM-DD/trips.parquet` in the *raw* layout a courier app would export:
the local departure clock as a string (`start_local`, Africa/Nairobi), no `source` column, and
`injected_defect` naming the defect of each deliberately dirty row (null on clean rows). The
`SyntheticCityAdapter` maps that layout onto the contract. `ground_truth.json` beside the partitions
records the run's parameters and the scenario's ground truth.

Same arguments -> byte-identical files: every random stream is keyed by (seed, stream, day).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.safe_io import write_atomic
from data_contracts.synthetic import couriers as fleet
from data_contracts.synthetic import geography as geo
from data_contracts.synthetic.dirty import DIRTY_STREAM, inject_defects
from data_contracts.synthetic.legs import LegBatch, daily_volume, draw_legs
from data_contracts.synthetic.model import CityModel, build_model
from data_contracts.synthetic.scenarios import Scenario, make_scenario, scenario_ground_truth
from data_contracts.synthetic.weather import DailyWeather, daily_weather

SOURCE_NAME = "synthetic"
PARTITION_FILE = "trips.parquet"
GROUND_TRUTH_FILE = "ground_truth.json"
LEGS_STREAM = 13
IN_MEMORY_STREAM = 19
IN_MEMORY_CHUNK = 200_000  # legs per batch: bounds memory of the (legs x path points) arrays
RAW_COLUMNS: tuple[str, ...] = (
    "trip_id",
    "start_local",
    "tz",
    "origin_lat",
    "origin_lng",
    "dest_lat",
    "dest_lng",
    "duration_s",
    "courier_id",
    "vehicle_type",
    "road_distance_km",
    "temperature_c",
    "precipitation_mm",
    "injected_defect",
)

ProgressHook = Callable[[int, int], None]  # called as progress(days_done, days_total) after each day


@dataclass(frozen=True)
class GenerationSummary:
    """What one `generate_city` call wrote (`seconds` is wall time, the only non-deterministic field)."""

    out_dir: Path
    scenario: str
    seed: int
    start: date
    days: int
    partitions: tuple[Path, ...]
    rows: int
    dirty_rows: int
    rows_by_defect: dict[str, int] = field(default_factory=dict)
    ground_truth: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary: counts instead of the file and cell lists (those are in ground_truth.json)."""
        truth = {k: v for k, v in self.ground_truth.items() if k != "affected_h3_cells"}
        truth["affected_h3_cell_count"] = len(self.ground_truth.get("affected_h3_cells", []))  # type: ignore[arg-type]
        return {
            "out_dir": str(self.out_dir),
            "scenario": self.scenario,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "days": self.days,
            "partitions": len(self.partitions),
            "rows": self.rows,
            "dirty_rows": self.dirty_rows,
            "rows_by_defect": dict(self.rows_by_defect),
            "ground_truth_file": str(self.out_dir / GROUND_TRUTH_FILE),
            "ground_truth": truth,
            "seconds": round(self.seconds, 2),
        }


def _trips_frame(legs: LegBatch, start: date, trip_ids: pl.Series) -> pl.DataFrame:
    """Contract-shaped frame (start_ts in UTC) from a batch of legs, in departure order."""
    epoch_day = (start - date(1970, 1, 1)).days + legs.day_index
    utc_us = ((epoch_day * 86_400 + legs.local_seconds - geo.UTC_OFFSET_HOURS * 3600) * 1_000_000).astype(
        np.int64
    )
    return pl.DataFrame(
        {
            "trip_id": trip_ids,
            "source": pl.repeat(SOURCE_NAME, legs.day_index.size, eager=True),
            "origin_lat": legs.origin_lat,
            "origin_lng": legs.origin_lng,
            "dest_lat": legs.dest_lat,
            "dest_lng": legs.dest_lng,
            "start_ts": pl.Series(utc_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "tz": pl.repeat(geo.TZ, legs.day_index.size, eager=True),
            "duration_s": legs.duration_s.astype(float),
            "courier_id": fleet.courier_ids(legs.courier),
            "vehicle_type": pl.Series(legs.vehicle).replace_strict(
                dict(enumerate(fleet.VEHICLES)), return_dtype=pl.String
            ),
            "road_distance_km": legs.road_km,
            "temperature_c": legs.temperature_c,
            "precipitation_mm": legs.precipitation_mm,
        }
    )


def _sorted(legs: LegBatch) -> LegBatch:
    order = np.argsort(legs.day_index * 86_400 + legs.local_seconds, kind="stable")
    return LegBatch(**{f.name: getattr(legs, f.name)[order] for f in fields(LegBatch)})


def _numbered(prefix: str, n: int, width: int) -> pl.Series:
    digits = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits).alias("trip_id")).to_series()


def simulate_trips(
    n_legs: int,
    seed: int,
    start: date = date(2024, 1, 1),
    days: int = 30,
    scenario: str = "stationary",
    onset_day: int | None = None,
) -> pl.DataFrame:
    """N clean legs in memory as a contract frame (no files, no dirty rows), spread over `days` by volume.

    Same model and seed-keyed roster and weather as `generate_city`, but its own random stream: these are
    not the legs the partitions hold.
    """
    if n_legs < 1 or days < 1:
        raise ValueError("need n_legs >= 1 and days >= 1")
    scen = make_scenario(scenario, days, onset_day)
    weights = daily_volume(1000, start, days, scen).astype(float)
    counts = np.floor(n_legs * weights / weights.sum()).astype(np.int64)
    counts[: n_legs - counts.sum()] += 1
    day_index = np.repeat(np.arange(days), counts)
    model = build_model(seed)
    roster = model.roster.head(fleet.courier_count(max(1, n_legs // days)))
    weather = daily_weather(seed, start, days)
    rng = np.random.default_rng([seed, IN_MEMORY_STREAM])
    batches = [
        draw_legs(model.city, roster, weather, start, day_index[lo : lo + IN_MEMORY_CHUNK], scen, rng)
        for lo in range(0, n_legs, IN_MEMORY_CHUNK)
    ]
    legs = _sorted(
        LegBatch(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(LegBatch)})
    )
    return _trips_frame(legs, start, _numbered(f"sim-{seed}-", n_legs, 7))


@dataclass(frozen=True, eq=False)
class _Run:
    """What every day of one `generate_city` run shares."""

    seed: int
    start: date
    scenario: Scenario
    model: CityModel
    roster: fleet.Roster
    weather: DailyWeather


def _raw_partition(run: _Run, day: int, n_trips: int, dirty_fraction: float) -> pl.DataFrame:
    """One day's raw partition: legs in departure order, numbered, then dirtied."""
    rng = np.random.default_rng([run.seed, LEGS_STREAM, day])
    legs = _sorted(
        draw_legs(
            run.model.city, run.roster, run.weather, run.start, np.full(n_trips, day), run.scenario, rng
        )
    )
    stamp = (run.start + timedelta(days=day)).strftime("%Y%m%d")
    trips = _trips_frame(legs, run.start, _numbered(f"syn-{stamp}-", n_trips, 5))
    raw = trips.with_columns(
        pl.col("start_ts")
        .dt.convert_time_zone(geo.TZ)
        .dt.strftime(geo.LOCAL_TIMESTAMP_FORMAT)
        .alias("start_local"),
        pl.lit(None, dtype=pl.String).alias("injected_defect"),
    ).select(RAW_COLUMNS)
    dirty_rng = np.random.default_rng([run.seed, DIRTY_STREAM, day])
    return inject_defects(raw, dirty_fraction, dirty_rng).select(RAW_COLUMNS)


def generate_city(
    out_dir: Path,
    days: int,
    start: date,
    seed: int,
    scenario: str = "stationary",
    trips_per_day: int = 4000,
    dirty_fraction: float = 0.01,
    progress: ProgressHook | None = None,
    *,
    onset_day: int | None = None,
) -> GenerationSummary:
    """Write `days` daily partitions of the simulated city under `out_dir`; deterministic for a seed.

    Each partition replaces any file already at its path (atomically); other files under `out_dir` are left alone.
    """
    if days < 1 or trips_per_day < 1 or not 0.0 <= dirty_fraction < 1.0:
        raise ValueError("need days >= 1, trips_per_day >= 1 and 0 <= dirty_fraction < 1")
    began = time.perf_counter()
    out_dir = Path(out_dir)
    model = build_model(seed)
    run = _Run(
        seed=seed,
        start=start,
        scenario=make_scenario(scenario, days, onset_day),
        model=model,
        roster=model.roster.head(fleet.courier_count(trips_per_day)),
        weather=daily_weather(seed, start, days),
    )
    volume = daily_volume(trips_per_day, start, days, run.scenario)
    partitions: list[Path] = []
    rows, defects = 0, {}
    for day in range(days):
        raw = _raw_partition(run, day, int(volume[day]), dirty_fraction)
        path = out_dir / f"date={(start + timedelta(days=day)).isoformat()}" / PARTITION_FILE
        write_atomic(
            path, lambda tmp, frame=raw: frame.write_parquet(tmp, compression="zstd", statistics=True)
        )
        partitions.append(path)
        rows += raw.height
        for defect, count in raw["injected_defect"].drop_nulls().value_counts().iter_rows():
            defects[defect] = defects.get(defect, 0) + count
        if progress is not None:
            progress(day + 1, days)
    truth = scenario_ground_truth(scenario, start, days, onset_day)
    params = {
        "seed": seed,
        "trips_per_day": trips_per_day,
        "dirty_fraction": dirty_fraction,
        "scenario": scenario,
    }
    manifest = json.dumps({"parameters": params, "ground_truth": truth}, indent=2, sort_keys=True)
    write_atomic(out_dir / GROUND_TRUTH_FILE, lambda tmp: tmp.write_text(manifest + "\n"))
    return GenerationSummary(
        out_dir=out_dir,
        scenario=scenario,
        seed=seed,
        start=start,
        days=days,
        partitions=tuple(partitions),
        rows=rows,
        dirty_rows=sum(defects.values()),
        rows_by_defect=dict(sorted(defects.items())),
        ground_truth=truth,
        seconds=time.perf_counter() - began,
    )
