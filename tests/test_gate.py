"""The promotion gate, as a table of cases."""

from __future__ import annotations

import pytest

from models.gate import GateConfig, promotion_decision

GOOD = {"coverage_80": 0.80, "coverage_90": 0.90, "pinball_mean": 10.0}


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason_part"),
    [
        (GOOD, None, True, "no champion yet"),
        ({**GOOD, "coverage_80": 0.70}, None, False, "80% coverage 0.700 is off nominal by -0.100"),
        (GOOD, {**GOOD, "pinball_mean": 11.0}, True, "not worse"),
        (GOOD, {**GOOD, "pinball_mean": 10.0}, True, "not worse"),
        ({**GOOD, "pinball_mean": 10.5}, GOOD, False, "worse: mean pinball 10.5000 vs champion 10.0000"),
        ({**GOOD, "coverage_90": 0.95, "pinball_mean": 1.0}, GOOD, False, "90% coverage 0.950"),
        ({**GOOD, "coverage_90": 0.925}, GOOD, True, "not worse"),
    ],
)
def test_gate_table(challenger: dict, champion: dict | None, promote: bool, reason_part: str) -> None:
    decision = promotion_decision(challenger, champion)
    assert decision.promote is promote
    assert any(reason_part in r for r in decision.reasons), decision.reasons


def test_tolerances_are_configuration() -> None:
    slightly_worse = {**GOOD, "pinball_mean": 10.05}
    assert not promotion_decision(slightly_worse, GOOD).promote
    assert promotion_decision(slightly_worse, GOOD, GateConfig(pinball_tolerance=0.01)).promote
    loose = GateConfig(coverage_tolerance=0.15)
    assert promotion_decision({**GOOD, "coverage_80": 0.70}, None, loose).promote


def test_missing_metric_is_named() -> None:
    with pytest.raises(KeyError, match="coverage_90"):
        promotion_decision({"coverage_80": 0.8, "pinball_mean": 1.0}, None)


@pytest.mark.parametrize("champion", [None, {"pinball_mean": 1.0}])
def test_the_decision_carries_the_calibration_verdict(champion) -> None:
    """The evaluation asset and its blocking check read these; nothing else re-judges calibration."""
    decision = promotion_decision({"coverage_80": 0.84, "coverage_90": 0.9, "pinball_mean": 0.5}, champion)
    assert decision.coverage_gaps == pytest.approx({"80": 0.04, "90": 0.0})
    assert (decision.coverage_tolerance, decision.calibrated, decision.promote) == (0.03, False, False)
    loose = promotion_decision(
        {"coverage_80": 0.84, "coverage_90": 0.9, "pinball_mean": 0.5},
        champion,
        GateConfig(coverage_tolerance=0.05),
    )
    assert (loose.coverage_tolerance, loose.calibrated, loose.promote) == (0.05, True, True)
