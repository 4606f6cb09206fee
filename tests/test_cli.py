"""The `eta` command line, driven in-process: generate, ingest, train, predict, evaluate, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from eta_cli.main import app

runner = CliRunner()


def test_help_imports_nothing_heavy() -> None:
    # the full stack takes ~17 s to import; `eta --help` must not pay for it (what is imported, not a timing)
    out = subprocess.run(
        [sys.executable, "-m", "eta_cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "ingest" in out.stdout
    probe = "import eta_cli.main, sys; print(sorted(m for m in ('mlflow','evidently','dagster','lightgbm') if m in sys.modules))"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )


@pytest.mark.parametrize(
    "command", ["generate", "ingest", "train", "predict", "evaluate", "rollback", "demo"]
)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_generate_then_ingest_accounts_for_every_row(tmp_path) -> None:
    out = tmp_path / "city"
    gen = runner.invoke(
        app, ["generate", "--out", str(out), "--days", "3", "--trips-per-day", "300", "--json"]
    )
    assert gen.exit_code == 0, gen.output
    summary = json.loads(gen.stdout)
    assert summary["partitions"] == 3
    ing = runner.invoke(
        app, ["ingest", "--source", "synthetic", "--input", str(out), "--out", str(tmp_path / "v"), "--json"]
    )
    assert ing.exit_code == 0, ing.output
    counts = json.loads(ing.stdout)
    assert counts["rows_in"] == summary["rows"]
    assert counts["valid"] + counts["quarantined"] == counts["rows_in"]
    assert sum(counts["quarantined_by_reason"].values()) == counts["quarantined"] == summary["dirty_rows"]
    assert pl.read_parquet(tmp_path / "v" / "quarantine.parquet").height == counts["quarantined"]


def test_bad_input_names_the_problem(tmp_path) -> None:
    missing = runner.invoke(
        app, ["ingest", "--source", "sendy", "--input", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 2
    assert "nope.csv" in missing.output
    unknown = runner.invoke(
        app, ["ingest", "--source", "carrier-pigeon", "--input", str(tmp_path), "--out", str(tmp_path)]
    )
    assert unknown.exit_code == 2
    assert "carrier-pigeon" in unknown.output
    scenario = runner.invoke(app, ["generate", "--out", str(tmp_path), "--scenario", "meteor"])
    assert scenario.exit_code == 2
    assert "meteor" in scenario.output
    quantiles = runner.invoke(app, ["train", "--data", str(tmp_path), "--quantiles", "0.1,0.9"])
    assert quantiles.exit_code == 2
    assert "include 0.5" in quantiles.output
    (tmp_path / "legs.csv").write_text("a,b\n1,2\n")
    out_is_file = runner.invoke(
        app,
        ["ingest", "--source", "synthetic", "--input", str(tmp_path), "--out", str(tmp_path / "legs.csv")],
    )
    assert out_is_file.exit_code == 2
    assert "legs.csv is a file; give a folder" in out_is_file.output
    not_parquet = runner.invoke(
        app,
        [
            "ingest",
            "--source",
            "synthetic",
            "--input",
            str(tmp_path / "legs.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert not_parquet.exit_code == 2
    assert "legs.csv is not a synthetic-city partition (not a Parquet file)" in not_parquet.output
    generate_into_file = runner.invoke(app, ["generate", "--out", str(tmp_path / "legs.csv"), "--days", "1"])
    assert generate_into_file.exit_code == 2
    assert "is a file; give a folder for the daily partitions" in generate_into_file.output


def test_train_predict_evaluate_round_trip(tmp_path) -> None:
    from data_contracts.synthetic import simulate_trips

    city_trips = simulate_trips(30_000, seed=11, days=24)  # enough legs a day that the gate's 3 points hold
    home = tmp_path / "home"
    env_before = os.environ["ETA_HOME"]
    os.environ["ETA_HOME"] = str(home)
    try:
        data = tmp_path / "valid.parquet"
        city_trips.write_parquet(data)
        trained = runner.invoke(app, ["train", "--data", str(data), "--json"])
        assert trained.exit_code == 0, trained.output
        payload = json.loads(trained.stdout.strip().splitlines()[-1])
        assert payload["version"] == 1
        assert payload["decision"]["promote"] is True
        assert payload["metrics"]["coverage_80"] == pytest.approx(0.8, abs=0.05)

        legs = city_trips.filter(pl.col("start_ts").dt.day() == 23).head(400)  # the test window
        legs_file = tmp_path / "legs.parquet"
        legs.write_parquet(legs_file)
        scored_file = tmp_path / "scored.parquet"
        predicted = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@champion",
                "--input",
                str(legs_file),
                "--out",
                str(scored_file),
            ],
        )
        assert predicted.exit_code == 0, predicted.output
        scored = pl.read_parquet(scored_file)
        assert scored.height == 400
        assert {"q05", "q50", "q95", "lower_80", "upper_80", "lower_90", "upper_90"} <= set(scored.columns)
        assert (scored["lower_80"] <= scored["q50"]).all()
        assert (scored["q50"] <= scored["upper_80"]).all()

        evaluated = runner.invoke(app, ["evaluate", "--predictions", str(scored_file), "--json"])
        assert evaluated.exit_code == 0, evaluated.output
        report = json.loads(evaluated.stdout)
        y = scored["duration_s"]
        expected = ((y >= scored["lower_80"]) & (y <= scored["upper_80"])).mean()
        assert report["metrics"]["coverage_80"] == pytest.approx(expected)

        # legs in progress and promises: the scored file carries the late risk, and evaluate judges it
        promised = legs.with_columns(
            pl.when(pl.int_range(pl.len()) % 2 == 0).then(300.0).otherwise(None).alias("elapsed_s"),
            (pl.col("start_ts") + pl.duration(minutes=20)).alias("promised_by"),
        )
        promised.write_csv(tmp_path / "promised.csv")
        risky = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@champion",
                "--input",
                str(tmp_path / "promised.csv"),
                "--out",
                str(tmp_path / "risk.csv"),
            ],
        )
        assert risky.exit_code == 0, risky.output
        risk = pl.read_csv(tmp_path / "risk.csv")
        assert risk["late_probability"].is_between(0, 1).all()
        assert risk["expected_lateness_s"].min() >= 0
        judged = runner.invoke(app, ["evaluate", "--predictions", str(tmp_path / "risk.csv"), "--json"])
        assert judged.exit_code == 0, judged.output
        judged_metrics = json.loads(judged.stdout)["metrics"]
        assert 0 <= judged_metrics["late_ece"] <= 1
        assert judged_metrics["late_n"] == sum(
            1 for row in promised.iter_rows(named=True) if row["duration_s"] > (row["elapsed_s"] or 0)
        )

        # the output of one command is a valid input of the next: a scored file is scored again (its own
        # columns kept as input_*), and the Sendy deliveries `eta ingest` validated are scored
        rescored_file = tmp_path / "rescored.parquet"
        again = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@champion",
                "--input",
                str(scored_file),
                "--out",
                str(rescored_file),
            ],
        )
        assert again.exit_code == 0, again.output
        rescored = pl.read_parquet(rescored_file)
        assert rescored["q50"].to_list() == scored["q50"].to_list() == rescored["input_q50"].to_list()
        assert rescored["input_row_number"].to_list() == scored["row_number"].to_list()
        ingested = tmp_path / "sendy"
        runner.invoke(
            app,
            [
                "ingest",
                "--source",
                "sendy",
                "--input",
                "tests/fixtures/sendy_deliveries.csv",
                "--out",
                str(ingested),
            ],
        )
        from_ingest = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@champion",
                "--input",
                str(ingested / "valid.parquet"),
                "--out",
                str(tmp_path / "sendy_scored.csv"),
            ],
        )
        assert from_ingest.exit_code == 0, from_ingest.output
        assert "row_number -> input_row_number" in from_ingest.output
        sendy_scored = pl.read_csv(tmp_path / "sendy_scored.csv")
        assert sendy_scored["trip_id"].to_list() == ["Order_No_T1", "Order_No_T2"]
        assert (sendy_scored["q50"] > 0).all()
        assert report["metrics"]["n"] == 400
        assert report["rows"] == {"in": 400, "evaluated": 400, "excluded": {}}

        # a CSV with an impossible latitude on row 3 and an unknown zone on row 6: the other 8 are scored
        position = pl.int_range(pl.len())
        text = (
            legs.head(10)
            .with_columns(pl.col("start_ts").dt.to_string("%Y-%m-%dT%H:%M:%S%z"))
            .cast({"origin_lat": pl.String})
        )
        text.with_columns(
            pl.when(position == 2).then(pl.lit("99.5")).otherwise(pl.col("origin_lat")).alias("origin_lat"),
            pl.when(position == 5).then(pl.lit("Mars/Olympus")).otherwise(pl.col("tz")).alias("tz"),
        ).write_csv(tmp_path / "some_bad.csv")
        out = tmp_path / "some_bad_scored.csv"
        partly = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@champion",
                "--input",
                str(tmp_path / "some_bad.csv"),
                "--out",
                str(out),
            ],
        )
        assert partly.exit_code == 0, partly.output
        assert "rejected 2 of 10 legs (out_of_range_coord 1, unknown_time_zone 1)" in partly.output
        assert pl.read_csv(out)["row_number"].to_list() == [1, 2, 4, 5, 7, 8, 9, 10]
        rejected = pl.read_csv(tmp_path / "some_bad_scored.rejected.csv", infer_schema=False)
        assert rejected.select("row_number", "reason", "column", "origin_lat", "tz").rows() == [
            ("3", "out_of_range_coord", "origin_lat", "99.5", text["tz"][2]),
            ("6", "unknown_time_zone", "tz", text["origin_lat"][5], "Mars/Olympus"),
        ]

        no_alias = runner.invoke(
            app,
            [
                "predict",
                "--model-uri",
                "models:/eta-model@nosuch",
                "--input",
                str(legs_file),
                "--out",
                str(tmp_path / "x.csv"),
            ],
        )
        assert no_alias.exit_code == 2
        assert "cannot load model 'models:/eta-model@nosuch'" in no_alias.output
        no_version = runner.invoke(app, ["rollback", "--to-version", "99"])
        assert no_version.exit_code == 2
        assert "eta-model has no version 99; its versions are [1]" in no_version.output
    finally:
        os.environ["ETA_HOME"] = env_before


def test_an_unanticipated_error_ends_in_one_line(monkeypatch, capsys) -> None:
    from eta_cli import main as cli

    def broken() -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "error: RuntimeError: disk on fire" in err
    assert "second line" not in err
    assert "Traceback" not in err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main()


def test_a_source_with_anonymised_months_is_split_by_day_of_month(tmp_path) -> None:
    """`eta ingest` records that Sendy's months are stand-ins; `eta train` then refuses a calendar split
    with the reason (the split it would choose itself is day_of_month)."""
    from data_contracts.ingest import load_trips
    from models.train import split_for

    out = tmp_path / "sendy"
    ing = runner.invoke(
        app,
        ["ingest", "--source", "sendy", "--input", "tests/fixtures/sendy_deliveries.csv", "--out", str(out)],
    )
    assert ing.exit_code == 0, ing.output
    assert load_trips(out).calendar == "day_of_month"
    assert split_for(load_trips(out).calendar, None) == "day_of_month"
    assert split_for("date", None) == "date"
    refused = runner.invoke(app, ["train", "--data", str(out), "--split-by", "date"])
    assert refused.exit_code == 2
    assert "month and year are anonymised" in refused.output
    assert "use --split-by day_of_month" in refused.output


def test_predict_takes_what_ingest_writes(tmp_path, monkeypatch) -> None:
    """The output of `eta ingest` (with its lineage `row_number`) is a valid `eta predict` input: the lineage
    column is kept as input_row_number and the scored file numbers its own rows."""
    from models.scoring import read_legs

    out = tmp_path / "sendy"
    runner.invoke(
        app,
        ["ingest", "--source", "sendy", "--input", "tests/fixtures/sendy_deliveries.csv", "--out", str(out)],
    )
    read = read_legs(out / "valid.parquet")
    assert read.renamed == {"row_number": "input_row_number"}
    assert read.legs["row_number"].to_list() == [1, 2]
    assert read.legs["input_row_number"].to_list() == [1, 2]  # the rows of the Sendy CSV they came from
    assert read.rejected.height == 0
