"""models.backtest: scoring a served day, the district mask, alarms against ground truth and recovery."""

from __future__ import annotations

import math

import h3
import numpy as np
import polars as pl
import pytest

from models.backtest import (
    BacktestDay,
    alarms,
    coverage_over_time_plot,
    day_scores,
    day_table,
    district_mask,
    pooled_district_coverage,
    recovery,
    weekly_coverage,
)

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


def test_day_scores_by_hand() -> None:
    q = np.tile(np.array([50, 60, 80, 100, 120, 150, 170], dtype=float), (4, 1))
    y = np.array([100.0, 160.0, 55.0, 140.0])
    district = np.array([True, True, False, False])
    scores = day_scores(y, q, QUANTILES, district)
    assert scores == {
        "n": 4,
        "coverage_80": 0.5,  # 100 and 140 inside (60, 150)
        "coverage_90": 1.0,
        "mae_s": pytest.approx((0 + 60 + 45 + 40) / 4),
        "width_80_s": 90.0,
        "district_n": 2,
        "district_covered_80": 1,
        "district_coverage_80": 0.5,
    }
    assert math.isnan(day_scores(y, q, QUANTILES, np.zeros(4, bool))["district_coverage_80"])


def test_district_mask_uses_origin_or_destination_cell() -> None:
    westlands, cbd, karen = (-1.2650, 36.8040), (-1.2841, 36.8233), (-1.3190, 36.7130)
    cell = h3.latlng_to_cell(*westlands, 8)
    legs = pl.DataFrame(
        {
            "origin_lat": [westlands[0], cbd[0], cbd[0]],
            "origin_lng": [westlands[1], cbd[1], cbd[1]],
            "dest_lat": [cbd[0], westlands[0], karen[0]],
            "dest_lng": [cbd[1], westlands[1], karen[1]],
        }
    )
    assert district_mask(legs, [cell], 8).tolist() == [True, True, False]
    assert district_mask(legs, [], 8).tolist() == [False, False, False]


def _days(district: list[float], triggers: list[bool] | None = None, n: int = 100) -> list[BacktestDay]:
    out = []
    for i, cov in enumerate(district):
        covered = round(cov * n)
        out.append(
            BacktestDay(
                "on",
                f"d{i}",
                i,
                False,
                champion_version=1,
                n=1000,
                district_n=n,
                district_covered_80=covered,
                district_coverage_80=covered / n,
                trigger=bool(triggers[i]) if triggers else False,
            )
        )
    return out


def test_pooled_coverage_weights_by_legs() -> None:
    days = _days([0.5, 1.0])
    days[1].district_n, days[1].district_covered_80 = 300, 300
    assert pooled_district_coverage(days) == pytest.approx((50 + 300) / 400)


def test_weekly_coverage_pools_seven_served_days_by_legs() -> None:
    days = _days([0.8] * 9)
    for i, d in enumerate(days):
        d.n, d.coverage_80 = 100 * (i + 1), 0.8 if i < 7 else 0.7
    weekly = weekly_coverage(days)
    assert weekly["weeks"] == 2
    assert weekly["weekly_coverage_80"] == pytest.approx([0.8, 0.7])
    assert weekly["weeks_within_3pts"] == 1


def test_never_recovering_coverage_fails_the_goal() -> None:
    rec = recovery(_days([0.8] * 5 + [0.6] * 12), onset_index=5)
    assert rec.recovered_index is None
    assert rec.days_to_recover is None
    assert rec.pooled_after_3_days == pytest.approx(0.6)
    assert rec.worst_window_after == pytest.approx(0.6)
    assert not rec.goal_met


def test_coverage_back_two_days_after_onset_meets_the_goal() -> None:
    district = [0.8] * 5 + [0.55, 0.65] + [0.8, 0.79, 0.81, 0.8, 0.8, 0.8, 0.78, 0.82, 0.8]
    rec = recovery(_days(district), onset_index=5, window=3)
    assert rec.windows[:3] == pytest.approx(
        [(55 + 65 + 80) / 300, (65 + 80 + 79) / 300, (80 + 79 + 81) / 300]
    )
    assert rec.recovered_index == 7
    assert rec.days_to_recover == 2
    assert rec.goal_met
    # weekly windows: the first one holds both bad days, the one starting at onset+3 none
    weekly = recovery(_days(district), onset_index=5)
    assert weekly.windows[0] == pytest.approx((55 + 65 + 80 + 79 + 81 + 80 + 80) / 700)
    assert weekly.windows[3] == pytest.approx((79 + 81 + 80 + 80 + 80 + 78 + 82) / 700)
    assert weekly.goal_met


def test_coverage_back_only_after_five_days_misses_the_goal() -> None:
    rec = recovery(_days([0.8] * 5 + [0.6] * 5 + [0.8] * 6), onset_index=5, window=3)
    assert rec.days_to_recover == 5
    assert not rec.goal_met
    weekly = recovery(_days([0.8] * 5 + [0.6] * 5 + [0.8] * 10), onset_index=5)
    assert weekly.windows[3] == pytest.approx(
        (2 * 60 + 5 * 80) / 700
    )  # onset+3's week still holds 2 bad days
    assert not weekly.goal_met


def test_a_calibrated_district_passes_weekly_windows_but_often_fails_three_day_ones() -> None:
    """Why the windows are weekly: simulate a perfectly calibrated district (200 legs a day, each covered
    with probability 0.8) over 27 days after onset+3 and count how often each rule calls it broken."""
    rng = np.random.default_rng(5)
    fails = {3: 0, 7: 0}
    runs = 200
    for _ in range(runs):
        covered = rng.binomial(200, 0.8, 30) / 200
        for window in fails:
            fails[window] += not recovery(_days([0.8] * 3 + list(covered)), 0, window=window).goal_met
    assert fails[3] / runs > 0.25
    assert fails[7] / runs < 0.1


def test_alarms_count_false_ones_before_onset_and_time_the_first_after() -> None:
    triggers = [False, True, False, False, False, False, True, True]
    result = alarms(_days([0.8] * 8, triggers), onset_index=4)
    assert result.quiet_days == 4
    assert result.false_alarms == 1
    assert result.false_alarm_rate == 0.25
    assert result.first_alarm_after_onset == 2
    stationary = alarms(_days([0.8] * 8, triggers), onset_index=None)
    assert stationary.quiet_days == 8
    assert stationary.false_alarms == 3
    assert stationary.first_alarm_after_onset is None


def test_unserved_days_are_not_judged() -> None:
    days = _days([0.8, 0.8], [True, True])
    days[0].champion_version = None
    assert alarms(days, None).days_judged == 1


def test_day_table_and_plot(tmp_path) -> None:
    days = _days([0.8, 0.6, 0.7])
    days[1].promoted = True
    table = day_table(days)
    assert table.height == 3
    assert table["district_coverage_80"].to_list() == pytest.approx([0.8, 0.6, 0.7])
    path = coverage_over_time_plot({"on": days, "off": _days([0.8, 0.6, 0.6])}, tmp_path / "p.png", 1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_strategy_that_served_no_day_says_so(tmp_path, capsys) -> None:
    from eta_cli.pipeline_commands import _print_backtest
    from pipelines.backtest import BacktestPlan, judge

    unserved = [BacktestDay("on", f"d{i}", i, False, retrained=True, blocked=True) for i in range(3)]
    plan = BacktestPlan("on", 3, tmp_path, source=None, start="2026-01-05", timezone="UTC", onset_index=1)
    summary = judge(unserved, plan)
    assert summary["days_served"] == 0
    assert summary["mean_coverage_80"] is None
    assert summary["blocked"] == 3
    _print_backtest({"folder": str(tmp_path), "plot": "p.png", "strategies": {"on": summary}}, None)
    printed = capsys.readouterr().out
    assert "on: no day was served, because no model became champion (3 trained, 3 blocked" in printed
    assert "nan" not in printed


def test_until_a_model_is_served_every_strategy_trains_again() -> None:
    """A first model the gate blocks leaves nothing to serve: each strategy, `off` included, trains again
    the next night (the Citi Bike replay's first model over-covers its late-February test days)."""
    from types import SimpleNamespace

    from pipelines.backtest import STRATEGIES, _Replay

    for strategy in STRATEGIES:
        replay = _Replay.__new__(_Replay)  # only the plan is read before a model is served
        replay.plan = SimpleNamespace(strategy=strategy)
        assert replay.requests("2017-03-01", served=False) == [("2017-03-01", "initial", None)]
    off = _Replay.__new__(_Replay)
    off.plan = SimpleNamespace(strategy="off")
    assert off.requests("2017-03-01", served=True) == []
