"""The pipeline's simulated-city source: a missing day is simulated without touching the days on disk, and a
folder holding a city simulated with other settings is refused by name (or followed, when asked)."""

from __future__ import annotations

import pytest

from pipelines.resources import SyntheticCitySource


def test_a_missing_day_is_added_and_no_day_on_disk_is_rewritten(tmp_path) -> None:
    source = SyntheticCitySource(raw_dir=str(tmp_path / "raw"), trips_per_day=50)
    source.simulate(2)
    first = tmp_path / "raw" / "date=2026-01-05" / "trips.parquet"
    first.write_bytes(first.read_bytes() + b"")  # same bytes; the stamp below tells a rewrite
    stamp = first.stat().st_mtime_ns
    (tmp_path / "raw" / "date=2026-01-06" / "trips.parquet").unlink()
    assert source.files_for("2026-01-07") == [tmp_path / "raw" / "date=2026-01-07" / "trips.parquet"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "date=2026-01-05",
        "date=2026-01-06",
        "date=2026-01-07",
        "ground_truth.json",
    ]
    assert first.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # the scratch folder is gone
    # the days it added are the city's own: the same bytes a full simulation writes
    again = SyntheticCitySource(raw_dir=str(tmp_path / "again"), trips_per_day=50)
    again.simulate(3)
    for day in ("2026-01-06", "2026-01-07"):
        name = f"date={day}/trips.parquet"
        assert (tmp_path / "raw" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_a_city_simulated_with_other_settings_is_refused_or_followed(tmp_path) -> None:
    SyntheticCitySource(raw_dir=str(tmp_path), trips_per_day=50, seed=3).simulate(1)
    other = SyntheticCitySource(raw_dir=str(tmp_path), trips_per_day=60, seed=3)
    with pytest.raises(
        ValueError, match=r"other settings \(folder, this source\): \{'trips_per_day': \(50, 60\)\}"
    ):
        other.files_for("2026-01-06")
    assert not (tmp_path / "date=2026-01-06").exists()
    follower = SyntheticCitySource(raw_dir=str(tmp_path), trips_per_day=60, follow_folder=True)
    assert follower.settings()["trips_per_day"] == 50
    assert follower.settings()["seed"] == 3
    follower.files_for("2026-01-06")
    assert (tmp_path / "date=2026-01-06" / "trips.parquet").exists()
