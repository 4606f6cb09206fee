"""models.drift: the monitoring frame, coverage decay, the trigger's one-request-per-event rule, and
Evidently on identical data and on data shifted by a known amount."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from models import drift, drift_trigger
from models.drift import (
    CATEGORICAL_INPUTS,
    NUMERIC_INPUTS,
    ColumnDrift,
    DriftReference,
    DriftSettings,
)
from models.drift_trigger import MonitorEvent, TriggerState
from tests.drift_frames import drawn_monitoring

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


def _features(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    numeric = {c: rng.normal(10.0, 2.0, n) for c in NUMERIC_INPUTS}
    categorical = {c: rng.integers(0, 4, n) for c in CATEGORICAL_INPUTS}
    return pl.DataFrame({**numeric, **categorical, "origin_cell_r7": rng.integers(0, 3, n)})


def test_monitoring_frame_scores_each_leg_by_hand() -> None:
    features = _features(3)
    # one row of quantiles per leg; 80% interval = (q10, q90), 90% = (q05, q95)
    q = np.array(
        [
            [50, 60, 80, 100, 120, 150, 170],
            [50, 60, 80, 100, 120, 150, 170],
            [50, 60, 80, 100, 120, 150, 170],
        ],
        dtype=float,
    )
    y = np.array([100.0, 160.0, 55.0])  # inside both, inside 90% only, inside 90% only
    frame = drift.monitoring_frame(features, q, QUANTILES, y)
    assert frame["covered_80"].to_list() == [True, False, False]
    assert frame["covered_90"].to_list() == [True, True, True]
    assert frame["log_residual"].to_list() == pytest.approx([0.0, math.log(1.6), math.log(0.55)])
    assert frame["pred_log_q50"].to_list() == pytest.approx([math.log(100)] * 3)
    assert frame["pred_log_width_80"].to_list() == pytest.approx([math.log(90)] * 3)
    assert frame["segment"].to_list() == [str(v) for v in features["origin_cell_r7"].to_list()]
    assert frame["hour_band"].dtype == pl.String  # categorical inputs travel as strings


def test_proportion_drop_z_matches_the_textbook_formula() -> None:
    # 80/100 vs 60/100: pooled 0.7, se = sqrt(0.7 * 0.3 * 0.02) = 0.0648..., z = 0.2 / se
    assert drift.proportion_drop_z(80, 100, 60, 100) == pytest.approx(0.2 / math.sqrt(0.7 * 0.3 * 0.02))
    assert drift.proportion_drop_z(80, 100, 80, 100) == 0.0
    assert drift.proportion_drop_z(0, 0, 5, 10) == 0.0


def _labelled(covered_80: list[bool], segments: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"segment": segments, "covered_80": covered_80, "covered_90": [True] * len(covered_80)}
    )


def _reference(frame: pl.DataFrame) -> DriftReference:
    return DriftReference(
        sample=frame,
        segments=drift.segment_counts(frame, (0.8, 0.9)),
        coverage={"80": float(frame["covered_80"].mean()), "90": float(frame["covered_90"].mean())},
        rows=frame.height,
    )


def test_a_decayed_area_is_found_and_an_unchanged_one_is_not() -> None:
    settings = DriftSettings(segment_min_legs=50, segment_drop=0.12, z_threshold=3.0, coverage_drop=0.05)
    # reference: areas a and b, 400 legs each, 80% covered
    ref = _labelled([True] * 320 + [False] * 80 + [True] * 320 + [False] * 80, ["a"] * 400 + ["b"] * 400)
    # today: a still 80% (80 of 100), b down to 50% (50 of 100)
    today = _labelled([True] * 80 + [False] * 20 + [True] * 50 + [False] * 50, ["a"] * 100 + ["b"] * 100)
    summary = drift.coverage_decay(today, _reference(ref), settings)
    assert summary.coverage["80"] == pytest.approx(0.65)
    assert summary.segments_judged == 2
    assert [s["segment"] for s in summary.decayed_segments] == ["b"]
    assert summary.decayed_segments[0]["coverage"] == pytest.approx(0.5)
    assert summary.decayed_segments[0]["reference"] == pytest.approx(0.8)
    assert summary.decayed_segments[0]["expected"] == pytest.approx(0.8)
    assert summary.trigger
    # overall 0.65 vs 0.80 is also a decay
    assert any(r.startswith("80% coverage 0.650") for r in summary.reasons)


def test_identical_coverage_gives_no_decay() -> None:
    ref = _labelled([True] * 320 + [False] * 80, ["a"] * 400)
    summary = drift.coverage_decay(ref, _reference(ref), DriftSettings(segment_min_legs=50))
    assert not summary.trigger
    assert summary.decayed_segments == []
    assert summary.coverage == {"80": pytest.approx(0.8), "90": pytest.approx(1.0)}


def test_a_degraded_reference_does_not_silence_the_alarm() -> None:
    """A model tested on drifted days carries the damage in its reference: judge against nominal then."""
    settings = DriftSettings(segment_min_legs=50, segment_drop=0.12, z_threshold=4.0)
    ref = _labelled([True] * 240 + [False] * 160 + [True] * 304 + [False] * 96, ["a"] * 400 + ["b"] * 400)
    # a: reference 0.60, today 0.60; b: reference 0.76 (a little under nominal), today 0.76
    today = _labelled([True] * 120 + [False] * 80 + [True] * 152 + [False] * 48, ["a"] * 200 + ["b"] * 200)
    decayed = drift.area_decay(today, _reference(ref), settings)
    assert [d["segment"] for d in decayed] == ["a"]
    assert decayed[0]["expected"] == pytest.approx(0.75)  # nominal 0.8 minus the 0.05 slack
    assert decayed[0]["reference"] == pytest.approx(0.6)
    # one-sample z against 0.75: (0.75 - 0.6) / sqrt(0.75 * 0.25 / 200)
    assert decayed[0]["z"] == pytest.approx(0.15 / math.sqrt(0.75 * 0.25 / 200))


def test_an_area_missing_from_the_reference_is_judged_against_nominal() -> None:
    ref = _labelled([True] * 80 + [False] * 20, ["a"] * 100)
    today = _labelled([True] * 50 + [False] * 50, ["new"] * 100)
    decayed = drift.area_decay(today, _reference(ref), DriftSettings(segment_min_legs=50))
    assert [(d["segment"], d["reference"]) for d in decayed] == [("new", None)]
    assert decayed[0]["expected"] == pytest.approx(0.75)


def test_small_areas_are_not_judged() -> None:
    ref = _labelled([True] * 320 + [False] * 80, ["a"] * 400)
    today = _labelled([False] * 20, ["a"] * 20)  # 0% covered, but only 20 legs
    summary = drift.coverage_decay(
        today, _reference(ref), DriftSettings(segment_min_legs=50, coverage_drop=1.0)
    )
    assert summary.segments_judged == 0
    assert not summary.trigger


def _col(name: str, kind: str, score: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(name, kind, "wasserstein", 0.1, score, drifted)


def test_summary_share_flags_and_reasons() -> None:
    columns = [
        _col("a", "input", 0.3, True),
        _col("b", "input", 0.01, False),
        _col("c", "input", 0.2, True),
        _col("pred_log_q50", "prediction", 0.05, False),
        _col("log_residual", "residual", 0.5, True),
    ]
    summary = drift.summarize_drift(columns, 1000, 500, 800, DriftSettings(drift_share=0.5))
    assert summary.drifted_share == pytest.approx(2 / 3)
    assert summary.dataset_drift
    assert not summary.prediction_drift
    assert summary.residual_drift
    assert summary.trigger
    assert summary.reasons == [
        "input drift: 67% of inputs drifted (>= 50%): a, c",
        "residual drift: log_residual wasserstein 0.500 >= 0.1",
    ]
    quiet = drift.summarize_drift(columns[1:2], 10, 10, 10, DriftSettings())
    assert not quiet.trigger
    assert quiet.reasons == []


def _event(storage_id: int, day: str, version: int | None, trigger: bool) -> MonitorEvent:
    return MonitorEvent(storage_id, day, version, trigger, "drift_report")


@pytest.mark.parametrize(
    ("events", "state", "requested", "cursor"),
    [
        # one drift event (three triggering days against v1) -> one request, on its first day
        (
            [
                _event(1, "2026-02-04", 1, True),
                _event(2, "2026-02-05", 1, True),
                _event(3, "2026-02-06", 1, True),
            ],
            TriggerState(),
            ["2026-02-04"],
            TriggerState(3, 1, "2026-02-04"),
        ),
        # quiet days only advance the cursor
        ([_event(5, "2026-02-04", 1, False)], TriggerState(), [], TriggerState(5, None, None)),
        # events at or below the cursor were seen before
        (
            [_event(4, "2026-02-07", 2, True)],
            TriggerState(4, 1, "2026-02-04"),
            [],
            TriggerState(4, 1, "2026-02-04"),
        ),
        # a new champion that drifts again is a new event
        (
            [_event(9, "2026-02-06", 2, True)],
            TriggerState(8, 1, "2026-02-04"),
            ["2026-02-06"],
            TriggerState(9, 2, "2026-02-06"),
        ),
        # the same champion still drifting three days after the request (candidate not promoted): ask again
        (
            [_event(9, "2026-02-06", 1, True), _event(10, "2026-02-07", 1, True)],
            TriggerState(8, 1, "2026-02-04"),
            ["2026-02-07"],
            TriggerState(10, 1, "2026-02-07"),
        ),
        # both monitors firing on one day are one request
        (
            [_event(1, "2026-02-04", 1, True), MonitorEvent(2, "2026-02-04", 1, True, "performance_monitor")],
            TriggerState(),
            ["2026-02-04"],
            TriggerState(2, 1, "2026-02-04"),
        ),
    ],
)
def test_one_drift_event_makes_one_retraining_request(events, state, requested, cursor) -> None:
    requests, new_state = drift_trigger.retraining_requests(events, state, cooldown_days=3)
    assert [r.partition for r in requests] == requested
    assert new_state == cursor


def test_trigger_state_round_trips_through_the_cursor_string() -> None:
    state = TriggerState(42, 3, "2026-02-04")
    assert TriggerState.from_json(state.to_json()) == state
    assert TriggerState.from_json(None) == TriggerState()


@pytest.fixture(scope="module")
def reference_frame() -> pl.DataFrame:
    return drawn_monitoring(600, seed=1)


def test_evidently_sees_no_drift_in_identical_data(reference_frame, tmp_path) -> None:
    settings = DriftSettings(reference_sample=1000, current_sample=1000)
    reference = drift.build_reference(reference_frame, settings)
    summary = drift.data_drift(reference_frame, reference, settings, tmp_path / "same.html")
    assert {c.column for c in summary.columns} == {
        *NUMERIC_INPUTS,
        *CATEGORICAL_INPUTS,
        "pred_log_q50",
        "pred_log_width_80",
        "log_residual",
    }
    assert all(c.score == pytest.approx(0.0, abs=1e-12) for c in summary.columns)
    assert not any(c.drifted for c in summary.columns)
    assert summary.drifted_share == 0.0
    assert not summary.trigger
    assert (tmp_path / "same.html").stat().st_size > 10_000


def test_evidently_measures_a_known_shift_exactly(reference_frame, tmp_path) -> None:
    """Shifting a sample by c standard deviations moves it a normed Wasserstein distance of exactly c."""
    settings = DriftSettings(reference_sample=1000, current_sample=1000)
    reference = drift.build_reference(reference_frame, settings)
    shifted = reference_frame.with_columns(
        pl.col(c) + 0.5 * float(np.std(reference_frame[c].to_numpy())) for c in NUMERIC_INPUTS
    )
    summary = drift.data_drift(shifted, reference, settings, None)
    scores = {c.column: c for c in summary.columns if c.kind != "weather"}
    for column in NUMERIC_INPUTS:
        assert scores[column].score == pytest.approx(0.5, rel=1e-9)
        assert scores[column].drifted
    for column in CATEGORICAL_INPUTS:
        assert scores[column].score == pytest.approx(0.0, abs=1e-12)
        assert not scores[column].drifted
    assert summary.drifted_share == pytest.approx(
        len(NUMERIC_INPUTS) / (len(NUMERIC_INPUTS) + len(CATEGORICAL_INPUTS))
    )
    assert summary.dataset_drift
    assert summary.trigger
    assert summary.reasons[0].startswith("input drift: 69% of inputs drifted")


def test_large_days_are_sampled_to_the_stated_size() -> None:
    frame = drawn_monitoring(2000, seed=3)
    sampled = drift.sample_rows(frame, 500, seed=7)
    assert sampled.height == 500
    assert sampled.equals(drift.sample_rows(frame, 500, seed=7))  # seeded: the same rows every time
    assert drift.sample_rows(frame, 5000, seed=7).height == 2000


def test_reference_round_trips_and_keeps_whole_window_counts(tmp_path) -> None:
    frame = drawn_monitoring(900, seed=4)
    reference = drift.build_reference(frame, DriftSettings(reference_sample=300), model_version=7)
    assert reference.sample.height == 300
    assert reference.rows == 900
    assert int(reference.segments["n"].sum()) == 900  # counts come from every row, not the sample
    loaded = DriftReference.load(reference.save(tmp_path / "ref"))
    assert loaded.sample.equals(reference.sample)
    assert loaded.segments.equals(reference.segments)
    assert loaded.coverage == reference.coverage
    assert loaded.model_version == 7
    with pytest.raises(ValueError, match="needs labels"):
        drift.build_reference(frame.drop("log_residual"))


def test_a_storm_is_weather_drift_and_a_shower_is_not(reference_frame) -> None:
    """Energy distance of precipitation in mm/h, hand-computed: point masses at 0 and 8 are sqrt(2 * 8) = 4
    apart; a day with 2 mm/h on 20% of legs against a dry reference is sqrt(2*0.4 - 0.64) = 0.4 away."""
    settings = DriftSettings(reference_sample=1000, current_sample=1000)
    dry = reference_frame.with_columns(pl.lit(0.0).alias("precipitation_mm"))
    reference = drift.build_reference(dry, settings)
    storm = drift.data_drift(dry.with_columns(pl.lit(8.0).alias("precipitation_mm")), reference, settings)
    shower_mm = np.where(np.arange(dry.height) % 5 == 0, 2.0, 0.0)
    shower = drift.data_drift(dry.with_columns(pl.Series("precipitation_mm", shower_mm)), reference, settings)

    def weather(summary):
        (column,) = [c for c in summary.columns if c.kind == "weather"]
        return column

    assert weather(storm).score == pytest.approx(4.0, rel=1e-9)
    assert weather(storm).drifted
    assert weather(storm).metric_name == "precipitation_mm_ed"
    assert storm.trigger
    assert not storm.dataset_drift
    assert "weather drift: precipitation_mm ed 4.000 >= 3.5" in storm.reasons
    assert weather(shower).score == pytest.approx(0.4, rel=1e-9)
    assert not weather(shower).drifted
    assert not any("weather" in r for r in shower.reasons)
