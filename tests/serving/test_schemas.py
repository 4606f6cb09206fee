"""Request validation: every bad value is rejected with the path of the field that holds it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from serving.errors import InvalidRequest, check_count, dotted, error_body
from serving.schemas import Leg, Levels, OrderLeg, SlotMinutes, Stop
from tests.serving.payloads import leg_json

LEGS = TypeAdapter(list[Leg])


def rejected(raw: str) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        LEGS.validate_json(raw)
    return info.value.errors()


def test_a_valid_leg_parses_with_its_offset() -> None:
    (leg,) = LEGS.validate_json(json.dumps([leg_json(courier_id="c-7")]))
    assert leg.departure_time.utcoffset().total_seconds() == 3 * 3600
    assert (leg.courier_id, leg.road_distance_km) == ("c-7", None)


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("origin_lat", 90.5, "less_than_equal"),
        ("dest_lat", -91, "greater_than_equal"),
        ("origin_lng", 180.01, "less_than_equal"),
        ("dest_lng", "east", "float_type"),
        ("tz", "Mars/Olympus_Mons", "value_error"),
        ("tz", "localtime", "value_error"),
        ("departure_time", "2026-01-20T09:30:00", "timezone_aware"),
        ("departure_time", "1900-01-01T00:00:00Z", "value_error"),
        ("departure_time", "yesterday", "datetime_from_date_parsing"),
        ("precipitation_mm", -1, "greater_than_equal"),
        ("temperature_c", 200, "less_than_equal"),
        ("road_distance_km", -0.1, "greater_than_equal"),
        ("courier_id", "x" * 65, "string_too_long"),
        ("origin_lat", None, "missing"),
    ],
)
def test_bad_values_name_their_field(field: str, value: object, error_type: str) -> None:
    leg = leg_json(**{field: value})
    if value is None:
        leg.pop(field, None)
    (error,) = rejected(json.dumps([leg]))
    assert (error["loc"], error["type"]) == ((0, field), error_type)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(token: str) -> None:
    raw = json.dumps([leg_json()]).replace('"origin_lat": -1.2841', f'"origin_lat": {token}')
    (error,) = rejected(raw)
    assert (error["loc"], error["type"]) == ((0, "origin_lat"), "finite_number")


def test_unknown_fields_are_rejected_not_ignored() -> None:
    (error,) = rejected(json.dumps([leg_json(orgin_lat=1.0)]))
    assert (error["loc"], error["type"]) == ((0, "orgin_lat"), "extra_forbidden")


@pytest.mark.parametrize(
    ("levels", "ok"),
    [
        ([0.8, 0.9], True),
        ([0.5], True),
        ([0.9], True),
        ([], False),
        ([0.8, 0.8], False),
        ([0.95], False),  # wider than the default quantiles 0.05..0.95 allow (and so the schema says)
        ([1.0], False),
        ([0.0], False),
    ],
)
def test_levels(levels: list[float], ok: bool) -> None:
    adapter = TypeAdapter(Levels)
    if ok:
        assert adapter.validate_python(levels) == levels
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(levels)


@pytest.mark.parametrize(
    ("minutes", "ok"), [(15, True), (5, True), (60, True), (7, False), (0, False), (480, False)]
)
def test_slots_must_divide_a_day(minutes: int, ok: bool) -> None:
    adapter = TypeAdapter(SlotMinutes)
    if ok:
        assert adapter.validate_python(minutes) == minutes
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(minutes)


NUMBER_FIELDS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng", "road_distance_km", "temperature_c")


@given(
    field=st.sampled_from(NUMBER_FIELDS),
    value=st.one_of(st.booleans(), st.floats(-90, 90).map(str), st.just("1.0"), st.just([1.0]), st.just({})),
)
def test_a_number_field_takes_only_a_json_number(field: str, value: object) -> None:
    """true, false and "-1.28" are refused, not read as 1, 0 and -1.28."""
    (error,) = rejected(json.dumps([leg_json(**{field: value})]))
    assert (error["loc"], error["type"]) == ((0, field), "float_type")


@given(field=st.sampled_from(NUMBER_FIELDS), whole=st.integers(0, 1))
def test_a_whole_number_is_a_number(field: str, whole: int) -> None:
    (leg,) = LEGS.validate_json(json.dumps([leg_json(**{field: whole})]))
    assert getattr(leg, field) == whole


@pytest.mark.parametrize(
    ("value", "error_type"), [(15.0, "int_type"), ("15", "int_type"), (True, "int_type")]
)
def test_slot_minutes_take_only_a_json_integer(value: object, error_type: str) -> None:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(SlotMinutes).validate_json(json.dumps(value))
    assert info.value.errors()[0]["type"] == error_type


def test_an_order_leg_may_omit_its_departure_and_a_stop_needs_coordinates() -> None:
    assert OrderLeg.model_validate(leg_json(departure_time=None)).departure_time is None
    with pytest.raises(ValidationError) as info:
        Stop.model_validate({"lat": 1.0, "service_time_s": 5})
    assert info.value.errors()[0]["loc"] == ("lng",)


def test_error_bodies_name_the_field() -> None:
    assert dotted(["legs", 3, "origin_lat"]) == "legs[3].origin_lat"
    assert dotted([]) == "body"
    body = error_body([{"type": "x", "loc": ["legs", 0, "tz"], "msg": "unknown time zone"}])
    assert body["error"] == "legs[0].tz: unknown time zone"
    with pytest.raises(InvalidRequest) as info:
        check_count(("legs",), 0, 10, "leg")
    assert (info.value.status, info.value.body()["error"]) == (400, "legs: at least one leg is required")
    with pytest.raises(InvalidRequest) as info:
        check_count(("legs",), 11, 10, "leg")
    assert (info.value.status, info.value.loc) == (413, ("legs",))
    check_count(("legs",), 10, 10, "leg")
