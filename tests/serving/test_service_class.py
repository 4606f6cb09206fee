"""Level 1: the BentoML service class called in-process (no HTTP), answers checked against the model."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.bundle import interval_from_quantiles
from serving import intervals
from serving.schemas import DeliveryWindow, EtaResponse, Leg, OrderLeg, PlannedStop, Point, RouteEta, Stop
from tests.serving.payloads import DEPARTURE, NAIROBI, leg_json, legs_frame_for


def eta(service, legs: list[dict], levels=(0.8, 0.9)) -> EtaResponse:
    response = asyncio.run(service.eta(legs=[Leg.model_validate(leg) for leg in legs], levels=list(levels)))
    assert response.status_code == 200, response.body
    return EtaResponse.model_validate_json(response.body)  # the bytes conform to the declared schema


def oracle(champion, legs: list[dict]) -> np.ndarray:
    return champion.model.predict_quantiles(legs_frame_for(legs))


LEGS = [
    leg_json(),
    leg_json(dest_lat=-1.2230, dest_lng=36.8980, courier_id="c-00012"),  # CBD -> Kasarani, longer
    leg_json(
        origin_lat=-1.3150, origin_lng=36.8920, departure_time="2026-01-20T17:45:00Z", vehicle_type="car"
    ),
]


def test_eta_returns_the_models_calibrated_quantiles(service, champion) -> None:
    answer = eta(service, LEGS)
    q = oracle(champion, LEGS)
    assert answer.model.version == champion.version
    assert answer.model.alias == "champion"
    assert answer.quantile_levels == champion.model.quantiles
    for leg, expected in zip(answer.legs, q, strict=True):
        np.testing.assert_allclose(leg.quantiles_s, expected, atol=0.051)
        assert leg.median_s == pytest.approx(expected[champion.model.quantiles.index(0.5)], abs=0.051)
        assert leg.quantiles_s == sorted(leg.quantiles_s)  # never crossing


def test_intervals_come_from_the_calibrated_levels_and_interpolate_between_them(service, champion) -> None:
    taus = champion.model.quantiles
    answer = eta(service, LEGS, levels=(0.8, 0.5, 0.7))
    q = oracle(champion, LEGS)
    for i, leg in enumerate(answer.legs):
        by_level = {interval.level: interval for interval in leg.intervals}
        assert by_level[0.8].lower_s == pytest.approx(q[i, taus.index(0.1)], abs=0.051)
        assert by_level[0.8].upper_s == pytest.approx(q[i, taus.index(0.9)], abs=0.051)
        assert by_level[0.5].lower_s == pytest.approx(q[i, taus.index(0.25)], abs=0.051)
        lower_70, upper_70 = interval_from_quantiles(q[i : i + 1], taus, 0.7)
        assert by_level[0.7].lower_s == pytest.approx(lower_70[0], abs=0.051)
        assert q[i, taus.index(0.1)] < by_level[0.7].lower_s < q[i, taus.index(0.25)]
        assert by_level[0.7].upper_s == pytest.approx(upper_70[0], abs=0.051)


def test_arrival_times_are_departure_plus_seconds_on_the_legs_clock(service) -> None:
    answer = eta(service, LEGS)
    for raw, leg in zip(LEGS, answer.legs, strict=True):
        departure = datetime.fromisoformat(str(raw["departure_time"]))
        assert leg.median_arrival.utcoffset() == timedelta(hours=3)  # Nairobi, whatever the input offset
        assert leg.median_arrival == departure + timedelta(seconds=round(leg.median_s))
        for interval in leg.intervals:
            assert interval.earliest_arrival == departure + timedelta(seconds=round(interval.lower_s))
            assert interval.latest_arrival == departure + timedelta(seconds=round(interval.upper_s))


def test_a_leg_gets_the_same_answer_alone_as_in_a_batch(service) -> None:
    together = eta(service, LEGS).legs
    alone = [eta(service, [leg]).legs[0] for leg in LEGS]
    assert together == alone


def test_a_large_batch_answers_as_a_small_one(service) -> None:
    """Past `PYTHON_LEGS_MAX` legs the answer is written column-wise by polars; same answers as the dicts."""
    small = eta(service, LEGS).legs
    many = [{**leg, "leg_id": f"leg-{i}"} for i in range(34) for leg in LEGS]
    assert len(many) > intervals.PYTHON_LEGS_MAX
    large = eta(service, many).legs
    assert [leg.leg_id for leg in large] == [leg["leg_id"] for leg in many]
    expected = [leg.model_dump(exclude={"leg_id"}) for leg in small] * 34
    assert [leg.model_dump(exclude={"leg_id"}) for leg in large] == expected


def test_longer_legs_take_longer_and_ids_change_nothing(service) -> None:
    near, far = eta(service, LEGS[:2]).legs
    assert far.median_s > near.median_s
    renamed = eta(service, [leg_json(leg_id="order-42")]).legs[0]
    assert renamed.leg_id == "order-42"
    assert renamed.model_dump(exclude={"leg_id"}) == near.model_dump(exclude={"leg_id"})


def test_levels_the_model_cannot_support_are_refused_by_name(service) -> None:
    response = asyncio.run(service.eta(legs=[Leg.model_validate(LEGS[0])], levels=[0.8, 0.95]))
    body = json.loads(response.body)
    assert response.status_code == 400
    assert body["detail"][0]["loc"] == ["levels", 1]
    assert "levels up to 0.9" in body["error"]


def window(service, **kwargs) -> DeliveryWindow:
    answer = asyncio.run(service.delivery_window(**{"confidence": 0.9, "slot_minutes": 15, **kwargs}))
    assert isinstance(answer, DeliveryWindow), getattr(answer, "body", answer)
    return answer


def test_delivery_window_covers_the_calibrated_interval_rounded_outward(service, champion) -> None:
    taus = champion.model.quantiles
    q = oracle(champion, LEGS[:1])[0]
    answer = window(service, leg=OrderLeg.model_validate(LEGS[0]), planned_stop=None)
    assert answer.unrounded_start == DEPARTURE + timedelta(seconds=round(q[taus.index(0.05)]))
    assert answer.unrounded_end == DEPARTURE + timedelta(seconds=round(q[taus.index(0.95)]))
    assert answer.window_start <= answer.unrounded_start < answer.window_start + timedelta(minutes=15)
    assert answer.window_end - timedelta(minutes=15) < answer.unrounded_end <= answer.window_end
    assert answer.window_start.minute % 15 == 0
    assert answer.window_end.minute % 15 == 0
    assert answer.text == f"arrives between {answer.local_start} and {answer.local_end}"
    assert (answer.tz, answer.confidence, answer.model.version) == (NAIROBI, 0.9, "1")
    narrower = window(service, leg=OrderLeg.model_validate(LEGS[0]), planned_stop=None, confidence=0.5)
    assert narrower.unrounded_start > answer.unrounded_start
    assert narrower.unrounded_end < answer.unrounded_end


def test_delivery_window_after_a_planned_stop(service) -> None:
    leg = OrderLeg.model_validate(leg_json(departure_time=None))
    stop = PlannedStop(arrival=DEPARTURE - timedelta(minutes=5), service_time_s=300)
    after_stop = window(service, leg=leg, planned_stop=stop)
    direct = window(service, leg=OrderLeg.model_validate(LEGS[0]), planned_stop=None)
    assert after_stop.departure_time == DEPARTURE
    assert after_stop.model_dump() == direct.model_dump()


def test_a_departure_and_a_planned_stop_depart_at_the_later_of_the_two(service) -> None:
    late_stop = PlannedStop(arrival=DEPARTURE, service_time_s=600)
    early_stop = PlannedStop(arrival=DEPARTURE - timedelta(hours=1), service_time_s=60)
    leg = OrderLeg.model_validate(LEGS[0])
    assert window(service, leg=leg, planned_stop=late_stop).departure_time == DEPARTURE + timedelta(
        minutes=10
    )
    assert window(service, leg=leg, planned_stop=early_stop).departure_time == DEPARTURE


def test_a_window_with_no_departure_departs_now(service) -> None:
    before = datetime.now(DEPARTURE.tzinfo)
    answer = window(service, leg=OrderLeg.model_validate(leg_json(departure_time=None)), planned_stop=None)
    assert before <= answer.departure_time <= datetime.now(DEPARTURE.tzinfo)


def route(service, stops: list[Stop], **kwargs) -> RouteEta:
    from serving.schemas import LegContext

    args = {
        "origin": Point(lat=-1.2841, lng=36.8233),
        "departure_time": DEPARTURE,
        "tz": NAIROBI,
        "stops": stops,
        "context": LegContext(vehicle_type="motorbike", temperature_c=22.0, precipitation_mm=0.0),
        "levels": [0.8, 0.9],
        "seed": 0,
        **kwargs,
    }
    answer = asyncio.run(service.route_eta(**args))
    assert isinstance(answer, RouteEta), getattr(answer, "body", answer)
    return answer


STOPS = [
    Stop(lat=-1.2930, lng=36.7880, service_time_s=120, stop_id="a"),
    Stop(lat=-1.2980, lng=36.8140, service_time_s=60, stop_id="b"),
    Stop(lat=-1.3100, lng=36.8380, service_time_s=90, stop_id="c"),
    Stop(lat=-1.2880, lng=36.8800, service_time_s=0, stop_id="d"),
]


def test_a_one_stop_route_is_the_leg(service) -> None:
    (stop,) = route(service, STOPS[:1]).stops
    leg = eta(service, [LEGS[0]]).legs[0]
    assert stop.leg_median_s == leg.median_s
    for simulated, calibrated in zip(stop.windows, leg.intervals, strict=True):
        assert simulated.lower_s == pytest.approx(calibrated.lower_s, rel=0.03)
        assert simulated.upper_s == pytest.approx(calibrated.upper_s, rel=0.03)


def test_route_arrivals_accumulate_and_later_windows_are_not_added_quantiles(service) -> None:
    answer = route(service, STOPS)
    assert [s.stop_id for s in answer.stops] == ["a", "b", "c", "d"]
    medians = [s.arrival_median_s for s in answer.stops]
    assert medians == sorted(medians)
    widths = [s.windows[0].upper_s - s.windows[0].lower_s for s in answer.stops]
    assert widths[-1] > widths[0]
    singles = eta(service, [leg_json(**leg) for leg in _route_legs_json()], levels=(0.8,)).legs
    added_width = sum(leg.intervals[0].upper_s - leg.intervals[0].lower_s for leg in singles)
    assert widths[-1] < 0.8 * added_width
    last = answer.stops[-1]
    assert last.arrival_median == DEPARTURE + timedelta(seconds=round(last.arrival_median_s))


def _route_legs_json() -> list[dict]:
    points = [(-1.2841, 36.8233)] + [(s.lat, s.lng) for s in STOPS]
    return [
        {"origin_lat": a[0], "origin_lng": a[1], "dest_lat": b[0], "dest_lng": b[1]}
        for a, b in itertools.pairwise(points)
    ]


def test_route_answers_are_reproducible_by_seed(service) -> None:
    assert route(service, STOPS, seed=7) == route(service, STOPS, seed=7)
    assert route(service, STOPS, seed=7) != route(service, STOPS, seed=8)


def test_ready_and_reload_without_a_new_champion(service) -> None:
    assert service.__is_ready__() is True
    swap = asyncio.run(service.reload())
    assert (swap.swapped, swap.version, swap.detail) == (False, "1", "already serving this version")


def test_a_leg_in_progress_gets_its_remaining_time_from_the_enroute_calibration(service, champion) -> None:
    """A leg still running after 20 minutes: its quantiles are the remaining seconds the model's en-route
    calibration gives, counted from departure + 20 minutes; at elapsed 0 the answer is today's."""
    running = leg_json(elapsed_s=1200.0, leg_id="late")
    answer = eta(service, [running, leg_json()])
    q = oracle(champion, [running])
    expected = champion.model.enroute.remaining(q, np.array([1200.0]))
    assert answer.legs[0].elapsed_s == 1200.0
    assert answer.legs[0].quantiles_s == [round(float(v), 1) for v in expected[0]]
    start = DEPARTURE + timedelta(seconds=1200)
    assert answer.legs[0].median_arrival == (
        start + timedelta(seconds=round(answer.legs[0].median_s))
    ).astimezone(answer.legs[0].median_arrival.tzinfo)
    fresh = eta(service, [leg_json()])
    assert answer.legs[1] == fresh.legs[0]
    assert answer.legs[1].elapsed_s is None


def test_a_current_position_makes_the_rest_a_fresh_leg_from_there(service, champion) -> None:
    """With the courier's position the remaining time is a leg from there to the destination, departing at
    departure + elapsed (not conditioned on the elapsed time: the position says how far it came)."""
    here = leg_json(elapsed_s=600.0, current_position={"lat": -1.2890, "lng": 36.8050})
    answer = eta(service, [here])
    moved = leg_json(
        origin_lat=-1.2890,
        origin_lng=36.8050,
        departure_time=(DEPARTURE + timedelta(seconds=600)).isoformat(),
    )
    assert answer.legs[0].quantiles_s == [round(float(v), 1) for v in oracle(champion, [moved])[0]]


def test_exception_risk_answers_what_the_enroute_calibration_says(service, champion) -> None:
    from models.enroute import expected_lateness
    from serving.schemas import ActiveDelivery, ExceptionRisk

    now = DEPARTURE + timedelta(minutes=25)
    deliveries = [
        ActiveDelivery.model_validate(
            {"leg": leg_json(leg_id=f"d{i}"), "promised_by": (DEPARTURE + timedelta(minutes=m)).isoformat()}
        )
        for i, m in enumerate((30, 45, 90))
    ]
    answer = asyncio.run(service.exception_risk(deliveries=deliveries, now=now, confidence=0.9))
    assert isinstance(answer, ExceptionRisk)
    q = np.repeat(oracle(champion, [leg_json()]), 3, axis=0)
    elapsed = np.full(3, 1500.0)
    promised = np.array([30, 45, 90]) * 60.0
    risk = champion.model.enroute.risk(q, elapsed, promised)
    assert [d.late_probability for d in answer.deliveries] == [round(float(v), 4) for v in risk]
    assert [d.late_probability for d in answer.deliveries] == sorted(
        (d.late_probability for d in answer.deliveries), reverse=True
    )
    lateness = expected_lateness(q, champion.model.quantiles, elapsed, promised)
    assert [d.expected_lateness_s for d in answer.deliveries] == [round(float(v), 1) for v in lateness]
    assert {d.elapsed_s for d in answer.deliveries} == {1500.0}
    window = answer.deliveries[0].revised_window
    assert window.level == 0.9
    assert window.earliest_arrival >= now


def _with_and_without_tz(service) -> dict[str, list]:
    """Each endpoint's answer, called twice: with tz (Nairobi) and with no tz (leg_json drops a None)."""
    from serving.schemas import ActiveDelivery

    def risk(tz):
        body = {"leg": leg_json(tz=tz), "promised_by": (DEPARTURE + timedelta(minutes=40)).isoformat()}
        return asyncio.run(
            service.exception_risk(
                deliveries=[ActiveDelivery.model_validate(body)],
                now=DEPARTURE + timedelta(minutes=25),
                confidence=0.9,
            )
        )

    return {
        "eta": [eta(service, [leg_json(tz=tz, leg_id="x"), leg_json()]) for tz in (NAIROBI, None)],
        "window": [window(service, leg=OrderLeg.model_validate(leg_json(tz=tz))) for tz in (NAIROBI, None)],
        "route": [route(service, STOPS[:2], tz=tz) for tz in (NAIROBI, None)],
        "risk": [risk(tz) for tz in (NAIROBI, None)],
    }


def test_a_leg_without_tz_is_answered_in_the_zone_of_a_one_zone_model(service, champion) -> None:
    """The synthetic city's model knows one zone: a leg (or route) without tz gets exactly the answer it
    gets with that zone, which the answer names."""
    assert champion.model.domain.zones == (NAIROBI,)
    answers = _with_and_without_tz(service)
    for name, (given, omitted) in answers.items():
        assert omitted == given, name
    assert [leg.tz for leg in answers["eta"][1].legs] == [NAIROBI, NAIROBI]
    assert answers["eta"][1].legs[0].median_arrival.utcoffset() == timedelta(hours=3)
    assert answers["window"][1].tz == NAIROBI
    assert answers["route"][1].tz == NAIROBI
    assert answers["risk"][1].deliveries[0].tz == NAIROBI


@pytest.fixture
def two_zone_model(service, monkeypatch):
    """The served model, as if it had been trained on legs in Nairobi and Kampala."""
    import dataclasses

    model = service.holder.current.model
    domain = dataclasses.replace(model.domain, zones=("Africa/Kampala", NAIROBI))
    monkeypatch.setattr(model, "domain", domain)
    return model


def test_without_tz_a_model_of_several_zones_refuses_naming_tz_and_the_zones(service, two_zone_model) -> None:
    """422 (valid in form, but the model cannot tell which clock): every leg without tz named, with the
    zones the model knows; a leg that gives its zone is still answered."""
    from serving.schemas import ActiveDelivery

    why = (
        "tz is required: this model was trained in several time zones (Africa/Kampala, Africa/Nairobi): "
        "say which"
    )
    legs = [Leg.model_validate(leg) for leg in (leg_json(tz=None), leg_json(), leg_json(tz=None))]
    delivery = ActiveDelivery.model_validate({"leg": leg_json(tz=None), "promised_by": DEPARTURE.isoformat()})
    refused = {
        ("legs", 0, "tz"): asyncio.run(service.eta(legs=legs, levels=[0.8])),
        ("leg", "tz"): asyncio.run(
            service.delivery_window(leg=OrderLeg.model_validate(leg_json(tz=None)), planned_stop=None)
        ),
        ("tz",): asyncio.run(
            service.route_eta(
                origin=Point(lat=-1.2841, lng=36.8233), departure_time=DEPARTURE, stops=STOPS[:1]
            )
        ),
        ("deliveries", 0, "leg", "tz"): asyncio.run(
            service.exception_risk(deliveries=[delivery], now=DEPARTURE)
        ),
    }
    for loc, response in refused.items():
        body = json.loads(response.body)
        assert (response.status_code, body["detail"][0]["loc"], body["detail"][0]["msg"]) == (
            422,
            list(loc),
            why,
        )
        assert body["detail"][0]["type"] == "zone_required"
    assert [f["loc"] for f in json.loads(refused["legs", 0, "tz"].body)["detail"]] == [
        ["legs", 0, "tz"],
        ["legs", 2, "tz"],
    ]
    assert eta(service, [leg_json()]).legs[0].tz == NAIROBI


def test_a_model_without_a_recorded_zone_needs_tz_on_every_leg() -> None:
    """A model saved without its domain (or with no zone in its training legs) has no zone to lend."""
    from types import SimpleNamespace

    from serving.errors import InvalidRequest
    from serving.predictor import model_zone

    one = SimpleNamespace(domain=SimpleNamespace(zones=("Europe/Lisbon",)))
    assert model_zone(one, [("tz",)]) == "Europe/Lisbon"
    for model in (SimpleNamespace(domain=None), SimpleNamespace(domain=SimpleNamespace(zones=()))):
        with pytest.raises(InvalidRequest) as refused:
            model_zone(model, [("legs", 0, "tz")])
        assert (refused.value.status, refused.value.loc, refused.value.message) == (
            422,
            ("legs", 0, "tz"),
            "tz is required: this model was trained in no time zone: give one",
        )
