"""H3 cells: known answers, parents by bit arithmetic equal to h3's, grid distance equal to h3's (nulls too)."""

from __future__ import annotations

import itertools

import h3
import numpy as np
import polars as pl
import pytest

from features.cells import cell_to_parent, grid_distance, latlng_to_cell, with_cells

# h3-py's own known answer: San Francisco at resolution 9
SF_LAT, SF_LNG = 37.7752702151959, -122.418307270836
SF_RES9 = 617700169958293503  # == h3.str_to_int("8928308280fffff")


def _h3_distance_or_none(a: str, b: str) -> int | None:
    try:
        return h3.grid_distance(a, b)
    except h3.H3BaseException:
        return None


def test_known_cell_at_res9() -> None:
    frame = pl.DataFrame({"lat": [SF_LAT], "lng": [SF_LNG]})
    cell = frame.select(latlng_to_cell("lat", "lng", 9)).item()
    assert cell == SF_RES9
    assert cell == h3.str_to_int(h3.latlng_to_cell(SF_LAT, SF_LNG, 9))
    assert h3.int_to_str(SF_RES9) == "8928308280fffff"


def test_parents_by_bit_arithmetic_equal_h3_at_every_coarser_resolution() -> None:
    rng = np.random.default_rng(7)
    lats = np.concatenate([rng.uniform(-89.9, 89.9, 300), [SF_LAT, -1.2864, 40.7128, 64.7]])
    lngs = np.concatenate([rng.uniform(-180, 180, 300), [SF_LNG, 36.8172, -74.0060, 10.5362]])
    cells = pl.DataFrame({"lat": lats, "lng": lngs}).select(latlng_to_cell("lat", "lng", 9).alias("cell"))
    for res in range(10):
        ours = cells.select(cell_to_parent("cell", res)).to_series().to_list()
        expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), res)) for c in cells["cell"]]
        assert ours == expected, f"resolution {res}"


def test_parent_of_null_is_null_and_bad_resolution_raises() -> None:
    frame = pl.DataFrame({"cell": [None, SF_RES9]}, schema={"cell": pl.Int64})
    assert frame.select(cell_to_parent("cell", 7)).to_series().to_list() == [
        None,
        h3.str_to_int(h3.cell_to_parent("8928308280fffff", 7)),
    ]
    with pytest.raises(ValueError, match="outside"):
        cell_to_parent("cell", 16)


def test_with_cells_derives_coarse_cells_as_parents_of_the_finest() -> None:
    # Coarse cells are parents of the res-9 cell, which near a border can differ from converting the point
    # at the coarse resolution (H3 children do not tile their parent exactly); the second point is such a case.
    legs = pl.DataFrame(
        {"origin_lat": [SF_LAT, -1.2864], "origin_lng": [SF_LNG, 36.8172], "dest_lat": [37.8, -1.3192]}
    ).with_columns(dest_lng=pl.Series([-122.4, 36.9278]))
    out = with_cells(legs.lazy(), (9, 8, 7, 6)).collect()
    for end in ("origin", "dest"):
        for res in (9, 8, 7, 6):
            expected = [
                h3.str_to_int(h3.cell_to_parent(h3.latlng_to_cell(lat, lng, 9), res))
                for lat, lng in zip(legs[f"{end}_lat"], legs[f"{end}_lng"], strict=True)
            ]
            assert out[f"{end}_cell_r{res}"].to_list() == expected
            assert out[f"{end}_cell_r{res}"].dtype == pl.Int64
    direct = h3.str_to_int(h3.latlng_to_cell(-1.2864, 36.8172, 7))
    assert out["origin_cell_r7"][1] != direct


def test_grid_distance_known_steps_and_far_apart_is_null() -> None:
    neighbour = h3.grid_ring("8928308280fffff", 1)[0]
    two_away = h3.grid_ring("8928308280fffff", 2)[0]
    sydney = h3.latlng_to_cell(-33.8688, 151.2093, 9)
    frame = pl.DataFrame(
        {
            "a": [SF_RES9] * 4,
            "b": [SF_RES9, h3.str_to_int(neighbour), h3.str_to_int(two_away), h3.str_to_int(sydney)],
        }
    )
    assert frame.select(grid_distance("a", "b")).to_series().to_list() == [0, 1, 2, None]


def test_grid_distance_near_a_pentagon_equals_h3_including_failures() -> None:
    pentagon = h3.get_pentagons(8)[0]
    disk = h3.grid_disk(pentagon, 3)
    pairs = list(itertools.product(disk, disk))
    expected = [_h3_distance_or_none(a, b) for a, b in pairs]
    frame = pl.DataFrame(
        {"a": [h3.str_to_int(a) for a, _ in pairs], "b": [h3.str_to_int(b) for _, b in pairs]}
    )
    assert frame.select(grid_distance("a", "b")).to_series().to_list() == expected
    assert None in expected  # the disk does cross the pentagon's distortion
