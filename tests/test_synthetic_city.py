"""The simulated city: known cells, determinism, contract round trip, realism and scenario ground truth."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import h3
import numpy as np
import polars as pl
import pytest

from data_contracts.sources.base import files_for, ingest
from data_contracts.sources.synthetic import SyntheticCityAdapter
from data_contracts.synthetic import (
    DEFECTS,
    GenerationSummary,
    build_city,
    build_model,
    generate_city,
    scenario_ground_truth,
    simulate_trips,
)
from data_contracts.synthetic.city import ROAD_CLASSES, offset_points
from data_contracts.synthetic.couriers import courier_count
from data_contracts.validate import validate_trips

START = date(2024, 3, 4)  # a Monday
DAYS, ONSET, TRIPS, SEED = 10, 5, 1500, 11


def _generate(root: Path, scenario: str, **kwargs: object) -> GenerationSummary:
    params: dict[str, object] = {"trips_per_day": TRIPS, "onset_day": ONSET, "dirty_fraction": 0.02} | kwargs
    return generate_city(root / scenario, DAYS, START, SEED, scenario, **params)  # type: ignore[arg-type]


def _clean_legs(summary: GenerationSummary) -> pl.DataFrame:
    """Valid rows of every partition with the day index and km/h, keyed by trip_id."""
    adapter = SyntheticCityAdapter()
    frames = []
    for day, path in enumerate(summary.partitions):
        valid = validate_trips(adapter.stage(path)).valid
        frames.append(valid.with_columns(pl.lit(day).alias("day")))
    local = pl.col("start_ts").dt.convert_time_zone("Africa/Nairobi")
    return pl.concat(frames).with_columns(
        (pl.col("road_distance_km") / (pl.col("duration_s") / 3600)).alias("kmh"),
        (local.dt.hour() + local.dt.minute() / 60).alias("local_hour"),
        local.dt.weekday().alias("weekday"),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GenerationSummary]:
    root = tmp_path_factory.mktemp("city")
    return {
        name: _generate(root, name)
        for name in ("stationary", "regional_slowdown", "rain_week", "demand_surge")
    }


@pytest.fixture(scope="module")
def legs(runs: dict[str, GenerationSummary]) -> dict[str, pl.DataFrame]:
    return {name: _clean_legs(summary) for name, summary in runs.items()}


def _paired(legs: dict[str, pl.DataFrame], scenario: str) -> pl.DataFrame:
    """The same clean legs in `stationary` and `scenario` side by side (same seed -> same legs)."""
    other = legs[scenario].select(
        "trip_id", pl.col("duration_s").alias("duration_scenario"), "precipitation_mm"
    )
    base = legs["stationary"].drop("precipitation_mm")
    return base.join(other, on="trip_id", how="inner").with_columns(
        (pl.col("duration_scenario") / pl.col("duration_s")).alias("ratio")
    )


# --- the static city: known answers ---------------------------------------------------------------


def test_known_places_land_in_their_cells_and_districts() -> None:
    city = build_city()
    sarit_centre, kenyatta_avenue, indian_ocean = (-1.2614, 36.8025), (-1.2841, 36.8233), (-4.0, 40.0)
    lat = np.array([sarit_centre[0], kenyatta_avenue[0], indian_ocean[0]])
    lng = np.array([sarit_centre[1], kenyatta_avenue[1], indian_ocean[1]])
    index = city.cell_index(lat, lng, exact=True)
    assert h3.int_to_str(int(city.cells[index[0]])) == "887a6e4295fffff"
    assert city.district_names[city.district[index[0]]] == "Westlands"
    assert ROAD_CLASSES[city.road_class[index[1]]] == "cbd"
    assert index[2] == city.n_cells
    assert ROAD_CLASSES[city.road_class[index[2]]] == "outside"
    assert "887a6e4295fffff" in city.district_cells("Westlands")


def test_exact_lookup_matches_h3_and_the_fast_lookup_almost_always_does() -> None:
    city = build_city()
    rng = np.random.default_rng(0)
    lat, lng = -1.29 + rng.normal(0, 0.05, 3000), 36.82 + rng.normal(0, 0.05, 3000)
    ids = np.array(
        [h3.str_to_int(h3.latlng_to_cell(a, b, 8)) for a, b in zip(lat, lng, strict=True)], np.uint64
    )
    known = {int(c): i for i, c in enumerate(city.cells)}
    oracle = np.array([known.get(int(c), city.n_cells) for c in ids])
    assert np.array_equal(city.cell_index(lat, lng, exact=True), oracle)
    assert np.mean(city.cell_index(lat, lng) != oracle) < 0.03  # pixel-centre reading near hexagon edges


# --- determinism and the contract -----------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate_city(tmp_path / "a", 2, START, 5, "rain_week", trips_per_day=300, onset_day=1)
    again = generate_city(tmp_path / "b", 2, START, 5, "rain_week", trips_per_day=300, onset_day=1)
    other = generate_city(tmp_path / "c", 2, START, 6, "rain_week", trips_per_day=300, onset_day=1)
    for a, b, c in zip(first.partitions, again.partitions, other.partitions, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
    assert (tmp_path / "a" / "ground_truth.json").read_bytes() == (
        tmp_path / "b" / "ground_truth.json"
    ).read_bytes()
    assert [p.relative_to(tmp_path / "a").as_posix() for p in first.partitions] == [
        "date=2024-03-04/trips.parquet",
        "date=2024-03-05/trips.parquet",
    ]
    assert sorted(p.name for p in (tmp_path / "a" / "date=2024-03-04").iterdir()) == [
        "trips.parquet"
    ]  # no temp files


def test_every_injected_row_is_quarantined_with_its_reason_and_no_clean_row_is(
    runs: dict[str, GenerationSummary],
) -> None:
    adapter = SyntheticCityAdapter()
    summary = runs["stationary"]
    assert files_for(adapter, summary.out_dir) == list(summary.partitions)
    injected_total = 0
    for path in summary.partitions:
        raw = (
            pl.read_parquet(path)
            .with_row_index("row_number", offset=1)
            .with_columns(pl.col("row_number").cast(pl.Int64))
        )
        result = validate_trips(adapter.stage(path))
        assert result.rows_in == result.rows_valid + result.rows_quarantined == raw.height
        injected = raw.filter(pl.col("injected_defect").is_not_null())
        assert injected.height == round(0.02 * raw.height)
        got = result.quarantine.select("row_number", "reason").sort("row_number")
        expected = injected.select("row_number", pl.col("injected_defect").alias("reason")).sort("row_number")
        assert got.to_dicts() == expected.to_dicts()
        injected_total += injected.height
    assert summary.dirty_rows == injected_total
    assert set(summary.rows_by_defect) == set(DEFECTS)


def test_ingesting_the_whole_run_accounts_for_every_row(runs: dict[str, GenerationSummary]) -> None:
    summary = runs["demand_surge"]
    result = ingest(SyntheticCityAdapter(), summary.out_dir)
    assert result.rows_in == summary.rows
    assert result.rows_quarantined == summary.dirty_rows
    assert result.reasons == summary.rows_by_defect
    assert result.quarantine.select("source_file", "row_number").is_unique().all()  # lineage names each row


def test_a_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pl.DataFrame({"trip_id": ["a"], "duration_s": [60.0]}).write_parquet(path)
    with pytest.raises(ValueError, match="not a synthetic-city partition"):
        SyntheticCityAdapter().stage(path)


def test_staged_row_keeps_lineage_and_parses_the_local_clock(runs: dict[str, GenerationSummary]) -> None:
    path = runs["stationary"].partitions[0]
    staged = SyntheticCityAdapter().stage(path)
    first = staged.row(0, named=True)
    raw = json.loads(first["raw"])
    assert first["source"] == "synthetic"
    assert first["source_file"] == "date=2024-03-04/trips.parquet"
    assert first["row_number"] == 1
    local = datetime.strptime(raw["start_local"], "%Y-%m-%d %H:%M:%S")
    assert (local - first["start_ts"].replace(tzinfo=None)).total_seconds() == 3 * 3600  # Nairobi = UTC+3
    assert raw["trip_id"] == first["trip_id"] == "syn-20240304-00001"


def test_in_memory_legs_are_contract_valid_and_deterministic() -> None:
    trips = simulate_trips(5000, seed=3, start=START, days=7)
    assert trips.height == 5000
    assert trips["trip_id"].n_unique() == 5000
    result = validate_trips(
        trips.with_row_index("row_number").with_columns(pl.col("row_number").cast(pl.Int64))
    )
    assert result.rows_quarantined == 0
    assert trips.equals(simulate_trips(5000, seed=3, start=START, days=7))
    assert not trips["duration_s"].equals(simulate_trips(5000, seed=4, start=START, days=7)["duration_s"])


def test_progress_is_called_once_per_day_and_the_summary_is_json_ready(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = generate_city(
        tmp_path,
        3,
        START,
        1,
        "regional_slowdown",
        trips_per_day=100,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    payload = json.loads(json.dumps(summary.as_dict()))
    assert payload["rows"] == 100 + 98 + 98  # Monday, Tuesday, Wednesday volumes
    assert payload["dirty_rows"] == 3
    assert payload["ground_truth"]["onset_day"] == 1
    assert payload["ground_truth"]["affected_h3_cell_count"] == len(build_city().district_cells("Westlands"))
    on_disk = json.loads((tmp_path / "ground_truth.json").read_text())
    assert on_disk["ground_truth"] == summary.ground_truth
    assert on_disk["parameters"]["seed"] == 1


# --- realism --------------------------------------------------------------------------------------


def test_legs_look_like_last_mile_delivery(legs: dict[str, pl.DataFrame]) -> None:
    frame = legs["stationary"]
    km, minutes = frame["road_distance_km"], frame["duration_s"] / 60
    assert km.min() >= 0.3
    assert km.max() <= 15.0
    assert 3.0 <= km.median() <= 4.5
    assert 0.85 <= ((minutes >= 5) & (minutes <= 60)).mean() <= 0.97
    shares = frame["vehicle_type"].value_counts(normalize=True).to_dict(as_series=False)
    share = dict(zip(shares["vehicle_type"], shares["proportion"], strict=True))
    assert share["motorbike"] > 0.7
    assert 0.05 < share["bicycle"] < 0.2
    assert 0.04 < share["car"] < 0.2
    by_vehicle = frame.group_by("vehicle_type").agg(pl.col("kmh").median()).to_dict(as_series=False)
    speed = dict(zip(by_vehicle["vehicle_type"], by_vehicle["kmh"], strict=True))
    assert speed["bicycle"] < speed["motorbike"]
    assert frame["courier_id"].n_unique() == courier_count(
        TRIPS
    )  # a persistent fleet, not a fresh id per leg
    assert frame["temperature_c"].is_between(5, 35).all()


def test_rush_hour_is_slower_than_night(legs: dict[str, pl.DataFrame]) -> None:
    weekdays = legs["stationary"].filter(pl.col("weekday") <= 5)
    rush = weekdays.filter(pl.col("local_hour").is_between(7, 9) | pl.col("local_hour").is_between(17, 19))
    night = weekdays.filter((pl.col("local_hour") >= 21) | (pl.col("local_hour") < 5))
    assert rush["kmh"].median() < 0.85 * night["kmh"].median()


def test_longer_legs_have_wider_spread(legs: dict[str, pl.DataFrame]) -> None:
    frame = legs["stationary"]
    short = frame.filter(pl.col("road_distance_km").is_between(1.5, 2.5))["duration_s"]
    long = frame.filter(pl.col("road_distance_km").is_between(8, 12))["duration_s"]
    assert long.quantile(0.9) - long.quantile(0.1) > 2.5 * (short.quantile(0.9) - short.quantile(0.1))
    # the model itself: same origin and departure, destinations further east
    km = np.array([2.0, 4.0, 7.0, 10.0])
    d_lat, d_lng = offset_points(np.full(4, -1.29), np.full(4, 36.80), km, np.full(4, np.pi / 2))
    one_leg = {"origin_lat": [-1.29] * 4, "origin_lng": [36.80] * 4, "dest_lat": d_lat, "dest_lng": d_lng}
    departures = pl.DataFrame(one_leg | {"start_ts": [datetime(2024, 3, 5, 9, tzinfo=UTC)] * 4})
    q10, q50, q90 = (
        build_model(SEED).true_quantiles(departures, 0, "stationary", (0.1, 0.5, 0.9), n_draws=4000).T
    )
    assert np.all(np.diff(q50) > 0)
    assert np.all(np.diff(q90 - q10) > 0)
    assert np.log(q90[-1] / q10[-1]) > 1.4 * np.log(q90[0] / q10[0])  # wider even relative to the median


def test_true_quantiles_cover_generated_durations_at_the_nominal_rate(legs: dict[str, pl.DataFrame]) -> None:
    frame = legs["stationary"].filter(pl.col("day") < 4)
    model = build_model(SEED)
    q10, q90 = model.true_quantiles(frame, frame["day"].to_numpy(), "stationary", (0.1, 0.9), n_draws=1000).T
    covered = ((frame["duration_s"].to_numpy() >= q10) & (frame["duration_s"].to_numpy() <= q90)).mean()
    assert 0.77 <= covered <= 0.83


def test_sample_durations_ignores_ids_it_does_not_use_and_knows_couriers(
    legs: dict[str, pl.DataFrame],
) -> None:
    model = build_model(SEED)
    frame = legs["stationary"].head(500)
    base = model.sample_durations(frame, 0, "stationary", np.random.default_rng(1))
    renamed = frame.with_columns(pl.concat_str(pl.lit("x-"), "trip_id").alias("trip_id"))
    assert np.array_equal(base, model.sample_durations(renamed, 0, "stationary", np.random.default_rng(1)))
    fast = int(np.argmax(model.roster.skill[:100]))
    slow = int(np.argmin(model.roster.skill[:100]))
    riders = (
        frame.head(1)
        .select(pl.exclude("courier_id"))
        .join(pl.DataFrame({"courier_id": [f"courier-{fast:05d}", f"courier-{slow:05d}"]}), how="cross")
    )
    terms = model.leg_terms(riders, 0, "stationary")
    ratio = terms.travel_s[1] / terms.travel_s[0]
    assert ratio == pytest.approx(model.roster.skill[fast] / model.roster.skill[slow])


# --- scenarios: ground truth visible in the data --------------------------------------------------


def test_ground_truth_is_machine_readable() -> None:
    truth = scenario_ground_truth("regional_slowdown", START, 60)
    assert truth["onset_day"] == 30
    assert truth["active_dates"][0] == "2024-04-03"
    assert len(truth["active_days"]) == 30
    assert truth["effects"]["district"] == "Westlands"  # type: ignore[index]
    assert truth["effects"]["district_travel_speed_factor"] == 0.6  # type: ignore[index]
    assert truth["affected_h3_cells"] == build_city().district_cells("Westlands")
    rain = scenario_ground_truth("rain_week", START, 20)
    assert rain["active_days"] == list(range(10, 17))
    assert rain["effects"]["citywide_travel_speed_factor"] == 0.75  # type: ignore[index]
    assert scenario_ground_truth("stationary", START, 20)["active_days"] == []
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_ground_truth("earthquake", START, 20)


def test_regional_slowdown_slows_westlands_from_the_onset_and_nothing_else(
    legs: dict[str, pl.DataFrame],
) -> None:
    paired = _paired(legs, "regional_slowdown")
    share = build_model(SEED).district_share(paired, "Westlands")
    paired = paired.with_columns(pl.Series("share", share))
    before, after = paired.filter(pl.col("day") < ONSET), paired.filter(pl.col("day") >= ONSET)
    assert (before["ratio"] == 1.0).all()
    assert (after.filter(pl.col("share") == 0)["ratio"] == 1.0).all()  # other districts: identical legs
    inside = after.filter(pl.col("share") == 1)
    assert inside.height > 100
    # travel slows x1/0.6; the unchanged service time at the door dilutes it a little
    assert inside["ratio"].min() > 1.0
    assert inside["ratio"].max() <= 1 / 0.6 + 1e-3
    speed_drop = (1 / inside["ratio"]).median()
    assert 0.6 <= speed_drop <= 0.75
    partly = after.filter((pl.col("share") > 0) & (pl.col("share") < 1))
    assert 1.0 < partly["ratio"].median() < inside["ratio"].median()


def test_rain_week_brings_heavy_rain_and_slower_legs_on_its_seven_days(legs: dict[str, pl.DataFrame]) -> None:
    paired = _paired(legs, "rain_week")
    storm = paired.filter(pl.col("day").is_between(ONSET, ONSET + 6))
    calm = paired.filter(~pl.col("day").is_between(ONSET, ONSET + 6))
    assert storm["precipitation_mm"].min() >= 8.0
    assert (calm["ratio"] == 1.0).all()
    assert 0.75 <= (1 / storm["ratio"]).median() <= 0.85  # travel x0.75 vs dry, diluted by service time
    ordinary = legs["stationary"].filter(pl.col("day").is_between(ONSET, ONSET + 6))["precipitation_mm"]
    assert (ordinary >= 8.0).mean() < 0.05  # the same days without the storm are mostly dry


def test_demand_surge_doubles_volume_and_fills_rush_hours(runs: dict[str, GenerationSummary]) -> None:
    def per_day(summary: GenerationSummary) -> list[int]:
        return [pl.scan_parquet(p).select(pl.len()).collect().item() for p in summary.partitions]

    base, surge = per_day(runs["stationary"]), per_day(runs["demand_surge"])
    assert surge[:ONSET] == base[:ONSET]
    assert all(abs(s / b - 2.0) < 0.002 for s, b in zip(surge[ONSET:], base[ONSET:], strict=True))


def test_demand_surge_shifts_trips_into_rush_hours(legs: dict[str, pl.DataFrame]) -> None:
    def rush_share(frame: pl.DataFrame) -> float:
        hour = frame["local_hour"].floor().cast(pl.Int64)
        return float(hour.is_in([7, 8, 17, 18, 19]).mean())

    base = legs["stationary"].filter(pl.col("day") >= ONSET)
    surge = legs["demand_surge"]
    assert rush_share(surge.filter(pl.col("day") < ONSET)) == pytest.approx(
        rush_share(legs["stationary"].filter(pl.col("day") < ONSET))
    )
    # half of the surge days' trips come from the rush profile, the other half from the ordinary one
    assert rush_share(surge.filter(pl.col("day") >= ONSET)) == pytest.approx(
        0.5 + 0.5 * rush_share(base), abs=0.02
    )
    assert rush_share(base) < 0.35
