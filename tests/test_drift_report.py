"""The daily Evidently report and the drift decision agree: its tests are the decision's rules (same methods,
thresholds and share), it opens with the verdict, and the HTML stays small and self-contained. Everything is
read back from Evidently's own `Snapshot.dict()` / `dump_dict()`, not from the HTML."""

from __future__ import annotations

import base64
import gzip
import re
import warnings
from datetime import timedelta

import polars as pl
import pytest

from models import drift
from models.drift import CATEGORICAL_INPUTS, NUMERIC_INPUTS, DriftSettings
from models.drift_html import compact_html, evidently_bundle_path
from models.quantile import qtag
from tests.drift_frames import drawn_monitoring

# Measured on a 5,000-leg day of the simulated city with 3 inputs drifted: 1.76 MB (4.24 MB before the
# bundle was compressed); every drifted input adds one ~35 KB distribution widget, 16 of them ~0.5 MB.
HTML_BOUND_BYTES = 2_500_000
WEATHER = ("temperature_c", "precipitation_mm", "is_raining")


def _tests(run: drift.DriftRun) -> list[dict]:
    return run.snapshot.dict()["tests"]


def _failed(run: drift.DriftRun) -> set[str]:
    """The failed tests, named by the column they judge (`inputs` for the share of drifted inputs)."""
    names = set()
    for test in _tests(run):
        if test["status"] == "FAIL":
            params = test["metric_config"]["params"]
            names.add(f"{params['column']}:{params['method']}" if "column" in params else "inputs")
    return names


def _verdict(run: drift.DriftRun) -> str:
    (first, *_) = run.snapshot.dump_dict()["widgets"]
    assert first["title"] == "Drift decision"
    return first["params"]["text"]


@pytest.fixture(scope="module")
def weather_reference() -> drift.DriftReference:
    """Several days: rain on a third of the legs."""
    return drift.build_reference(drawn_monitoring(3000, seed=1, rainy_share=1 / 3), DriftSettings())


def test_a_rainy_day_drifts_its_weather_inputs_yet_every_test_passes(weather_reference) -> None:
    """The report of issue 22: one day's weather differs from a reference of several (3 of 16 inputs drift),
    which the decision does not count as drift; the report's tests now say the same."""
    run = drift.run_report(drawn_monitoring(2000, seed=2, rainy_share=1.0), weather_reference)
    summary = run.summary
    assert set(summary.drifted("input")) == set(WEATHER)
    assert summary.drifted_share == pytest.approx(3 / 16)
    assert not summary.trigger
    assert summary.reasons == []
    statuses = [t["status"] for t in _tests(run)]
    assert statuses == ["SUCCESS"] * 5  # share of drifted inputs, 2 predictions, residual, weather
    assert _verdict(run).startswith("### Retrain: no, no drift\n")
    assert "3 of 16 drifted (19%)" in _verdict(run)


def test_the_report_tests_use_the_decisions_methods_and_thresholds(weather_reference) -> None:
    settings = DriftSettings(numeric_threshold=0.2, drift_share=0.3, residual_threshold=0.5)
    run = drift.run_report(drawn_monitoring(1000, seed=3, rainy_share=1 / 3), weather_reference, settings)
    by_kind = {}
    for test in _tests(run):
        params = test["metric_config"]["params"]
        by_kind[params.get("column", "inputs"), params.get("method")] = (params, test["test_config"])
    share, share_test = by_kind["inputs", None]
    assert share["drift_share"] == share_test["threshold"] == 0.3
    assert share["per_column_method"] == {
        **dict.fromkeys(NUMERIC_INPUTS, "wasserstein"),
        **dict.fromkeys(CATEGORICAL_INPUTS, "jensenshannon"),
    }
    assert share["per_column_threshold"] == {
        **dict.fromkeys(NUMERIC_INPUTS, 0.2),
        **dict.fromkeys(CATEGORICAL_INPUTS, 0.1),
    }
    assert sorted((k, p["threshold"]) for k, (p, _) in by_kind.items() if k[0] != "inputs") == [
        (("log_residual", "wasserstein"), 0.5),
        (("precipitation_mm", "ed"), 3.5),
        (("pred_log_q50", "wasserstein"), 0.4),
        (("pred_log_width_80", "wasserstein"), 0.4),
    ]
    assert len(by_kind) == 5  # and no input carries a test of its own: alone, it decides nothing


def test_shifted_inputs_fail_the_share_test_and_trigger(weather_reference) -> None:
    """11 numeric inputs moved by half a standard deviation: 11 of 16 inputs drift (69% >= 50%)."""
    day = drawn_monitoring(2000, seed=4, rainy_share=1 / 3)
    shifted = day.with_columns(pl.col(c) + 0.5 * day[c].std() for c in NUMERIC_INPUTS)
    run = drift.run_report(shifted, weather_reference)
    assert run.summary.dataset_drift
    assert run.summary.trigger
    assert run.summary.drifted_share == pytest.approx(11 / 16)
    # the storm rule reads precipitation in mm/h: half a std of a shower is no storm
    assert _failed(run) == {"inputs"}
    assert _verdict(run).startswith("### Retrain: yes\n\n- **input drift: 69% of inputs drifted (>= 50%)")


def test_a_storm_and_slower_trips_fail_their_own_tests(weather_reference) -> None:
    day = drawn_monitoring(2000, seed=5, rainy_share=1 / 3)
    storm = day.with_columns(pl.lit(16.0).alias("precipitation_mm"), (pl.col("log_residual") + 0.3))
    run = drift.run_report(storm, weather_reference)
    assert _failed(run) == {"precipitation_mm:ed", "log_residual:wasserstein"}
    assert run.summary.trigger
    assert not run.summary.dataset_drift
    assert run.summary.residual_drift
    assert [r.split(":")[0] for r in run.summary.reasons] == ["residual drift", "weather drift"]


def test_the_decision_is_what_the_tests_say_on_every_kind_of_day(weather_reference) -> None:
    """Property: trigger == some test failed; dataset drift == the share test failed; the verdict opens with
    the trigger."""
    days = [
        drawn_monitoring(800, seed=10 + i, rainy_share=share).with_columns(pl.col("od_log_speed") * scale)
        for i, (share, scale) in enumerate([(0.0, 1.0), (1.0, 1.0), (0.3, 1.3), (1.0, 0.7), (0.5, 1.05)])
    ]
    for day in days:
        run = drift.run_report(day, weather_reference)
        failed = _failed(run)
        assert run.summary.trigger == bool(failed)
        assert run.summary.dataset_drift == ("inputs" in failed)
        assert _verdict(run).startswith("### Retrain: yes" if run.summary.trigger else "### Retrain: no")


def test_the_html_is_small_and_needs_nothing_but_itself(weather_reference, tmp_path) -> None:
    path = tmp_path / "day.html"
    summary = drift.data_drift(
        drawn_monitoring(5000, seed=6, rainy_share=1.0), weather_reference, html_path=path
    )
    assert summary.report_path == str(path)
    html = path.read_text(encoding="utf-8")
    assert len(html.encode()) < HTML_BOUND_BYTES
    assert "<script src=" not in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    # the bundle travels compressed, and unpacks to exactly Evidently's own
    (packed,) = re.findall(r'var packed = "([A-Za-z0-9+/=]+)"', html)
    bundle = evidently_bundle_path().read_text(encoding="utf-8")
    assert gzip.decompress(base64.b64decode(packed)).decode("utf-8") == bundle
    assert bundle not in html


def test_a_page_this_code_does_not_know_is_left_whole() -> None:
    page = "<html><script>something else</script></html>"
    assert compact_html(page) == page


@pytest.fixture(scope="module")
def city_day(trained):
    """The simulated city's reference (the model's test window) and the next day of the same city, scored
    by the same model: a stationary day and, with the same draws, a storm day."""
    from data_contracts.synthetic import simulate_trips

    result = trained
    frame = result.test_frame
    q = frame.select([qtag(t) for t in result.model.quantiles]).to_numpy()
    reference = drift.build_reference(
        drift.monitoring_frame(frame, q, result.model.quantiles, frame["duration_s"].to_numpy())
    )
    next_day = result.test_legs["start_ts"].max().date() + timedelta(days=1)

    def served(scenario: str) -> pl.DataFrame:
        legs = simulate_trips(1500, seed=11, start=next_day, days=1, scenario=scenario, onset_day=0)
        features = result.model.features(legs)
        q_day = result.model.predict_from_features(features)
        return drift.monitoring_frame(features, q_day, result.model.quantiles, legs["duration_s"].to_numpy())

    return reference, served("stationary"), served("rain_week")


def test_a_stationary_city_day_passes_every_test(city_day, tmp_path) -> None:
    reference, stationary, _ = city_day
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = drift.run_report(stationary, reference)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert [t["status"] for t in _tests(run)] == ["SUCCESS"] * 5
    assert not run.summary.trigger
    assert _verdict(run).startswith("### Retrain: no, no drift")
    summary = drift.data_drift(stationary, reference, DriftSettings(), tmp_path / "day.html")
    assert summary.as_dict() == {**run.summary.as_dict(), "report_path": str(tmp_path / "day.html")}
    assert (tmp_path / "day.html").stat().st_size < HTML_BOUND_BYTES


def test_a_storm_day_of_the_city_fails_the_weather_test_and_triggers(city_day) -> None:
    reference, _, storm = city_day
    run = drift.run_report(storm, reference)
    assert "precipitation_mm:ed" in _failed(run)
    assert run.summary.trigger
    assert "weather drift: precipitation_mm ed" in " ".join(run.summary.reasons)
    assert _verdict(run).startswith("### Retrain: yes")
