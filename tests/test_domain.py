"""The model's domain: which legs it was trained on, why it refuses the others, and that it ships with it."""

from __future__ import annotations

import json
import os

import h3.api.basic_int as h3
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts.limits import ContractLimits
from data_contracts.synthetic import simulate_trips
from data_contracts.synthetic.city import haversine_np
from models.bundle import EtaModel
from models.domain import DISTANCE_MARGIN, DISTANCE_QUANTILE, ModelDomain

# Nairobi places (lat, lng); the training legs join them in pairs, each in its own part of the city
PLACES = {
    "cbd": (-1.2864, 36.8172),
    "upper_hill": (-1.2995, 36.8150),
    "westlands": (-1.2676, 36.8108),
    "parklands": (-1.2614, 36.8186),
    "karen": (-1.3197, 36.7076),
    "karen_south": (-1.3370, 36.7170),
    "kilimani": (-1.2892, 36.7840),
    "lavington": (-1.2800, 36.7700),
}
LEGS = [
    ("cbd", "upper_hill"),
    ("westlands", "parklands"),
    ("karen", "karen_south"),
    ("kilimani", "lavington"),
    ("cbd", "kilimani"),
]
AREA = "15 H3 res-6 cells around (-1.29, 36.80), Africa/Nairobi"
COLUMNS = ("origin_lat", "origin_lng", "dest_lat", "dest_lng")


def frame(pairs: list[tuple[tuple[float, float], tuple[float, float]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "origin_lat": [o[0] for o, _ in pairs],
            "origin_lng": [o[1] for o, _ in pairs],
            "dest_lat": [d[0] for _, d in pairs],
            "dest_lng": [d[1] for _, d in pairs],
            "tz": ["Africa/Nairobi"] * len(pairs),
        }
    )


@pytest.fixture(scope="module")
def nairobi() -> ModelDomain:
    return ModelDomain.from_legs(frame([(PLACES[a], PLACES[b]) for a, b in LEGS]))


def reason(domain: ModelDomain, origin: tuple[float, float], dest: tuple[float, float]) -> str | None:
    (only,) = domain.reasons(
        np.array([origin[0]]), np.array([origin[1]]), np.array([dest[0]]), np.array([dest[1]])
    )
    return only


def test_the_domain_holds_the_training_cells_their_ring_and_the_distance_limit(nairobi) -> None:
    # a second way: h3-py per endpoint, every cell's disk, numpy's quantile of the haversines
    seen = {h3.latlng_to_cell(*PLACES[p], 6) for leg in LEGS for p in leg}
    assert sorted(h3.int_to_str(c) for c in seen) == [
        "867a6e42fffffff",
        "867a6e54fffffff",
        "867a6e557ffffff",
        "867a6e55fffffff",
    ]
    assert set(nairobi.cells) == {n for c in seen for n in h3.grid_disk(c, 1)}
    km = haversine_np(
        *(np.array([PLACES[leg[k]][i] for leg in LEGS]) for k, i in ((0, 0), (0, 1), (1, 0), (1, 1)))
    )
    assert nairobi.max_km == pytest.approx(DISTANCE_MARGIN * np.quantile(km, DISTANCE_QUANTILE), rel=1e-9)
    assert nairobi.max_km == pytest.approx(5.55, abs=0.01)
    assert (nairobi.resolution, nairobi.zones) == (6, ("Africa/Nairobi",))
    assert nairobi.describe() == AREA


def test_a_leg_inside_gets_no_reason(nairobi) -> None:
    assert reason(nairobi, PLACES["westlands"], PLACES["cbd"]) is None
    assert reason(nairobi, PLACES["lavington"], PLACES["upper_hill"]) is None


def test_a_new_york_leg_names_both_ends_and_the_area(nairobi) -> None:
    assert reason(nairobi, (40.7128, -74.0060), (40.7306, -73.9866)) == (
        f"origin (40.71, -74.01) and destination (40.73, -73.99) are outside the area this model was trained on "
        f"({AREA})"
    )
    assert reason(nairobi, PLACES["cbd"], (40.7306, -73.9866)) == (
        f"destination (40.73, -73.99) is outside the area this model was trained on ({AREA}); "
        "the leg is 11,840 km long; this model knows legs up to 5.5 km"
    )


def test_a_leg_longer_than_any_trained_names_its_length_and_the_limit(nairobi) -> None:
    # both ends in trained cells, across the city
    assert reason(nairobi, PLACES["cbd"], PLACES["karen"]) == (
        "the leg is 12.7 km long; this model knows legs up to 5.5 km"
    )
    antipode = (-PLACES["cbd"][0], PLACES["cbd"][1] - 180.0)
    assert reason(nairobi, PLACES["cbd"], antipode) == (
        f"destination (1.29, -143.18) is outside the area this model was trained on ({AREA}); "
        "the leg is 20,015 km long; this model knows legs up to 5.5 km"
    )


def test_null_island_is_refused_by_the_contracts_rule(nairobi) -> None:
    assert nairobi.null_island_tolerance_deg == ContractLimits().null_island_tolerance_deg
    assert reason(nairobi, (0.0, 0.0), PLACES["cbd"]) == "origin is null island (0, 0), a missing GPS fix"
    assert reason(nairobi, (0.0, 0.0), (0.0, 0.0)) == (
        "origin is null island (0, 0), a missing GPS fix; destination is null island (0, 0), a missing GPS fix"
    )
    # half a degree away is a place (in the Gulf of Guinea), just not one this model knows
    assert reason(nairobi, PLACES["cbd"], (0.5, 0.5)).startswith(
        f"destination (0.50, 0.50) is outside the area this model was trained on ({AREA}); the leg is 4,043 km"
    )


def test_coordinates_that_are_no_place_are_named(nairobi) -> None:
    assert reason(nairobi, (np.nan, 36.8), PLACES["cbd"]) == "origin (nan, 36.8) is not a valid coordinate"
    assert (
        reason(nairobi, PLACES["cbd"], (91.0, 36.8)) == "destination (91.0, 36.8) is not a valid coordinate"
    )
    assert nairobi.reasons(np.array([]), np.array([]), np.array([]), np.array([])) == []


def _across_the_edge(inside: int, outside: int, share: float) -> tuple[float, float]:
    """From the middle of the edge between two neighbour cells, `share` of the way to `outside`'s centre
    (a negative share: into `inside`)."""
    (a_lat, a_lng), (b_lat, b_lng) = h3.directed_edge_to_boundary(h3.cells_to_directed_edge(inside, outside))
    mid_lat, mid_lng = (a_lat + b_lat) / 2, (a_lng + b_lng) / 2
    towards = h3.cell_to_latlng(outside if share > 0 else inside)
    return mid_lat + abs(share) * (towards[0] - mid_lat), mid_lng + abs(share) * (towards[1] - mid_lng)


def test_a_leg_just_past_a_trained_cells_edge_is_inside_and_two_cells_out_is_not(nairobi) -> None:
    karen = h3.latlng_to_cell(*PLACES["karen"], 6)
    seen = {h3.latlng_to_cell(*PLACES[p], 6) for leg in LEGS for p in leg}
    untrained = [c for c in h3.grid_ring(karen, 1) if c not in seen]
    assert len(untrained) == 5  # one of Karen's six neighbours holds Kilimani and Lavington
    for neighbour in untrained:  # a few hundred metres over the edge, into a cell no training leg touched
        start, end = _across_the_edge(karen, neighbour, -0.05), _across_the_edge(karen, neighbour, 0.05)
        assert (h3.latlng_to_cell(*start, 6), h3.latlng_to_cell(*end, 6)) == (karen, neighbour)
        assert reason(nairobi, start, end) is None
    far = next(c for c in h3.grid_ring(karen, 2) if min(h3.grid_distance(c, s) for s in seen) == 2)
    lat, lng = h3.cell_to_latlng(far)
    assert reason(nairobi, (lat, lng), PLACES["karen"]).startswith(
        f"origin ({lat:.2f}, {lng:.2f}) is outside the area this model was trained on"
    )


def test_to_dict_from_dict_round_trips_through_json(nairobi) -> None:
    data = json.loads(json.dumps(nairobi.to_dict()))
    assert "867a6e42fffffff" in data["cells"]  # H3 ids as the strings H3 tools read
    assert ModelDomain.from_dict(data) == nairobi
    assert ModelDomain.from_dict(data).reasons(-1.2864, 36.8172, 0.0, 0.0) == nairobi.reasons(
        -1.2864, 36.8172, 0.0, 0.0
    )


def test_no_legs_no_domain() -> None:
    with pytest.raises(ValueError, match="no legs"):
        ModelDomain.from_legs(frame([]))


# properties on a simulated city
@pytest.fixture(scope="module")
def city() -> pl.DataFrame:
    return simulate_trips(3000, seed=5, days=3)


@pytest.fixture(scope="module")
def city_domain(city) -> ModelDomain:
    return ModelDomain.from_legs(city)


def test_every_training_leg_of_the_city_is_inside(city, city_domain) -> None:
    assert city_domain.reasons(*(city[c].to_numpy() for c in COLUMNS)) == [None] * city.height


@settings(max_examples=200, deadline=None)
@given(i=st.integers(0, 2999), j=st.integers(0, 2999))
def test_a_leg_between_two_training_legs_endpoints_is_inside_unless_too_long(city, city_domain, i, j) -> None:
    origin = (city["origin_lat"][i], city["origin_lng"][i])
    dest = (city["dest_lat"][j], city["dest_lng"][j])
    km = haversine_np(*origin, *dest)
    got = reason(city_domain, origin, dest)
    if km <= city_domain.max_km:
        assert got is None
    else:
        assert (
            got == f"the leg is {km:,.1f} km long; this model knows legs up to {city_domain.max_km:,.1f} km"
        )


coordinate = st.tuples(st.floats(-1.6, -0.9), st.floats(36.4, 37.2)) | st.tuples(
    st.floats(-90, 90), st.floats(-180, 180)
)


@settings(max_examples=50, deadline=None)
@given(legs=st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=20))
def test_a_batch_gets_the_reasons_its_legs_get_one_by_one(city_domain, legs) -> None:
    columns = [np.array([leg[k][i] for leg in legs]) for k, i in ((0, 0), (0, 1), (1, 0), (1, 1))]
    assert city_domain.reasons(*columns) == [reason(city_domain, o, d) for o, d in legs]


# the domain ships with the model
def test_the_shipped_model_records_the_legs_it_was_fitted_and_calibrated_on(trained, city_trips) -> None:
    # the refit fits on every day but the newest and calibrates on those: together, every trip
    assert trained.model.domain == ModelDomain.from_legs(city_trips.filter(pl.col("duration_s") > 0))
    assert trained.evaluated.domain is not None
    assert trained.model.domain.reasons(40.7128, -74.0060, 40.7306, -73.9866)[0].startswith(
        "origin (40.71, -74.01) and destination (40.73, -73.99) are outside"
    )


def test_the_domain_is_saved_and_an_old_folder_without_it_loads_with_none(trained, tmp_path) -> None:
    directory = trained.model.save(tmp_path / "bundle")
    assert json.loads((directory / "domain.json").read_text()) == trained.model.domain.to_dict()
    assert EtaModel.load(directory).domain == trained.model.domain
    (directory / "domain.json").unlink()  # a model saved before domains were recorded
    old = EtaModel.load(directory)
    assert old.domain is None
    legs = trained.test_legs.head(20)
    np.testing.assert_allclose(old.predict_quantiles(legs), trained.model.predict_quantiles(legs), rtol=1e-12)


@pytest.fixture
def registry_home(tmp_path):
    previous = os.environ["ETA_HOME"]
    os.environ["ETA_HOME"] = str(tmp_path)
    yield tmp_path
    os.environ["ETA_HOME"] = previous


def test_the_registered_model_loads_with_its_domain(trained, fast_params, registry_home) -> None:
    from models.pyfunc import load_eta_model
    from models.registry import log_and_register
    from models.train import TrainConfig

    run = log_and_register(trained, TrainConfig(params=fast_params), run_name="domain")
    model, _ = load_eta_model(f"models:/eta-model/{run.version}")
    assert model.domain == trained.model.domain
