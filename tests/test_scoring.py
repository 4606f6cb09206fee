"""Reading files of legs and of scored legs for `eta predict` / `eta evaluate`: every row scored, or rejected
(evaluate: left out) with its reason, and a file that cannot be read named in a one-line error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from models.scoring import evaluate_scored, read_legs, read_scored, read_table

HEADER = "trip_id,origin_lat,origin_lng,dest_lat,dest_lng,start_ts,tz,duration_s,temperature_c\n"
GOOD = "-1.28,36.82,-1.26,36.80"


def write(path, rows: list[str]) -> None:
    path.write_text(HEADER + "".join(row + "\n" for row in rows))


def test_each_bad_value_rejects_its_row_with_reason_and_column(tmp_path) -> None:
    rows = [
        f"a,{GOOD},2026-02-02T10:00:00+03:00,Africa/Nairobi,600,21.5",  # 1 good: offset
        "b,nan,36.82,-1.26,36.80,2026-02-02T10:00:00Z,Africa/Nairobi,600,",  # 2 NaN latitude
        "c,-1.28,36.82,99.5,36.80,2026-02-02T10:00:00Z,Africa/Nairobi,600,",  # 3 latitude > 90
        "d,,36.82,-1.26,36.80,2026-02-02T10:00:00Z,Africa/Nairobi,600,",  # 4 blank
        "e,-1.28,east,-1.26,36.80,2026-02-02T10:00:00Z,Africa/Nairobi,600,",  # 5 text
        f"f,{GOOD},2026-02-02 07:00:00,Africa/Nairobi,,",  # 6 good: naive = UTC, no label
        f"g,{GOOD},2026-02-02T07:00:00Z, ,600,",  # 7 blank zone
        f"h,{GOOD},2026-02-02T07:00:00Z,Mars/Olympus,600,",  # 8 unknown zone
        f"i,{GOOD},next tuesday,Africa/Nairobi,600,",  # 9 timestamp
        f"j,{GOOD},2026-02-02T07:00:00Z,Africa/Nairobi,ten minutes,",  # 10 label text
        f"k,{GOOD},2026-02-02T07:00:00Z,Africa/Nairobi,600,inf",  # 11 infinite measurement
        f"l,{GOOD},2026-02-02T07:00:00.250Z,Africa/Nairobi,600,",  # 12 good: fraction, Z
        "m,-1.28,181,-1.26,36.80,2026-02-02T10:00:00Z,Africa/Nairobi,600,",  # 13 longitude > 180
    ]
    path = tmp_path / "legs.csv"
    write(path, rows)
    read = read_legs(path)
    assert read.rows_in == len(rows)
    assert read.legs["row_number"].to_list() == [1, 6, 12]
    assert read.legs["trip_id"].to_list() == ["a", "f", "l"]
    assert read.legs["start_ts"].to_list() == [
        datetime(2026, 2, 2, 7, 0, 0, us, tzinfo=UTC) for us in (0, 0, 250_000)
    ]
    assert read.legs["duration_s"].to_list() == [600.0, None, 600.0]
    assert read.legs["temperature_c"].to_list() == [21.5, None, None]
    rejected = {
        row["row_number"]: (row["reason"], row["column"]) for row in read.rejected.iter_rows(named=True)
    }
    assert rejected == {
        2: ("out_of_range_coord", "origin_lat"),
        3: ("out_of_range_coord", "dest_lat"),
        4: ("missing_value", "origin_lat"),
        5: ("invalid_value", "origin_lng"),
        7: ("missing_value", "tz"),
        8: ("unknown_time_zone", "tz"),
        9: ("unparseable_timestamp", "start_ts"),
        10: ("invalid_value", "duration_s"),
        11: ("invalid_value", "temperature_c"),
        13: ("out_of_range_coord", "origin_lng"),
    }
    # nothing lost: a rejected row keeps the text it had in the file
    assert read.rejected.filter(pl.col("row_number") == 5)["origin_lng"].item() == "east"
    assert read.reasons() == {
        "invalid_value": 3,
        "missing_value": 2,
        "out_of_range_coord": 3,
        "unknown_time_zone": 1,
        "unparseable_timestamp": 1,
    }


def test_timestamps_are_parsed_value_by_value(tmp_path) -> None:
    # polars' own parser guesses one format from the first value and would fail every other row here
    stamps = [
        "2026-01-24 10:23:14",
        "2026-01-24T10:23:14+03:00",
        "2026-01-24T10:23:14+0300",
        "2026-01-24T07:23Z",
    ]
    path = tmp_path / "mixed.csv"
    write(path, [f"t{i},{GOOD},{s},Africa/Nairobi,600," for i, s in enumerate(stamps)])
    read = read_legs(path)
    assert read.rejected.height == 0
    assert read.legs["start_ts"].to_list() == [
        datetime(2026, 1, 24, 10, 23, 14, tzinfo=UTC),  # no offset: UTC
        datetime(2026, 1, 24, 7, 23, 14, tzinfo=UTC),
        datetime(2026, 1, 24, 7, 23, 14, tzinfo=UTC),
        datetime(2026, 1, 24, 7, 23, tzinfo=UTC),
    ]


def test_typed_parquet_keeps_its_instants(tmp_path) -> None:
    nairobi = timezone(timedelta(hours=3))
    legs = pl.DataFrame(
        {
            "origin_lat": pl.Series([-1.28, -1.28], dtype=pl.Float32),
            "origin_lng": [36, 36],  # integers are numbers too
            "dest_lat": [-1.26, float("nan")],
            "dest_lng": [36.80, 36.80],
            "start_ts": [datetime(2026, 2, 2, 10, tzinfo=nairobi)] * 2,
            "tz": pl.Series(["Africa/Nairobi"] * 2, dtype=pl.Categorical),
        }
    ).with_columns(pl.col("start_ts").dt.convert_time_zone("Africa/Nairobi"))
    path = tmp_path / "legs.PARQUET"  # the extension in any case
    legs.write_parquet(path)
    read = read_legs(path)
    assert read.legs["start_ts"].to_list() == [datetime(2026, 2, 2, 7, tzinfo=UTC)]
    assert read.legs.schema["origin_lng"] == pl.Float64
    assert read.rejected.select("row_number", "reason", "column").rows() == [
        (2, "out_of_range_coord", "dest_lat")
    ]


def test_a_file_that_cannot_be_read_is_named(tmp_path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "latin1.csv").write_bytes(
        HEADER.encode() + "a,-1.2,36.8,-1.2,36.8,2026-02-02T07:00Z,Caf\xe9\n".encode("latin-1")
    )
    (tmp_path / "fake.parquet").write_text("not parquet")
    (tmp_path / "folder").mkdir()
    for name, message in [
        ("empty.csv", "empty.csv is not a readable CSV file"),
        ("latin1.csv", "latin1.csv is not a readable CSV file: invalid utf-8"),
        ("fake.parquet", "fake.parquet is not a readable Parquet file"),
        ("folder", "is a folder"),
    ]:
        with pytest.raises(ValueError, match=message):
            read_table(tmp_path / name)
    pl.DataFrame(
        {
            "origin_lat": [1.0],
            "origin_lng": [1.0],
            "dest_lat": [1.0],
            "dest_lng": [1.0],
            "start_ts": [17],
            "tz": ["UTC"],
        }
    ).write_parquet(tmp_path / "epoch.parquet")
    with pytest.raises(ValueError, match="column start_ts holds Int64"):
        read_legs(tmp_path / "epoch.parquet")
    (tmp_path / "no_tz.csv").write_text("origin_lat,origin_lng,dest_lat,dest_lng,start_ts\n")
    with pytest.raises(ValueError, match=r"lacks required column\(s\) \['tz'\]"):
        read_legs(tmp_path / "no_tz.csv")


def scored_file(tmp_path, labels: list[str], q50: list[str]):
    rows = [
        f"{label},{100 + i},{q},{300 + i},{200 + i}"
        for i, (label, q) in enumerate(zip(labels, q50, strict=True))
    ]
    path = tmp_path / "scored.csv"
    path.write_text("duration_s,q10,q50,q90,extra\n" + "\n".join(rows) + "\n")
    return path


def test_rows_without_label_or_quantile_are_left_out_and_counted(tmp_path) -> None:
    labels = ["150", "nan", "", "-5", "abc", "250", "260"]
    q50 = ["200", "200", "200", "200", "200", "", "inf"]
    usable, excluded = read_scored(scored_file(tmp_path, labels, q50))
    assert excluded == {"missing_label": 4, "missing_quantile": 2}
    assert usable["duration_s"].to_list() == [150.0]
    report = evaluate_scored(usable)
    assert report["metrics"]["n"] == 1
    assert report["metrics"]["mae_s"] == pytest.approx(50.0)  # |150 - q50 200|
    with pytest.raises(ValueError, match="no row has both a finite duration_s and every quantile"):
        read_scored(scored_file(tmp_path, ["nan", ""], ["200", "200"]))


def test_evaluate_a_file_with_the_median_only(tmp_path) -> None:
    path = tmp_path / "median.csv"
    path.write_text("duration_s,q50,local_hour\n100,110,9\n200,190,9\n")
    usable, excluded = read_scored(path)
    report = evaluate_scored(usable)
    assert excluded == {}
    assert report["metrics"]["mae_s"] == pytest.approx(10.0)
    assert report["segments"] == {}  # no 80% interval to cover
    assert np.isfinite(report["metrics"]["pinball_q50"])
