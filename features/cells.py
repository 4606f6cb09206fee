"""H3 cells as polars expressions: one lat/lng conversion per endpoint, parents by bit arithmetic.

Cells are Int64 (polars_h3 can emit Int64 directly). A valid H3 cell id has its top bit clear, so the
signed value equals h3's unsigned id, e.g. `h3.str_to_int("8928308280fffff") == 617700169958293503`.

Coarse cells are the parents of the finest cell, not fresh conversions of the point: H3 children do not tile
their parent exactly, so near a border the two can differ. Parents keep the hierarchy consistent (each
finest cell belongs to exactly one aggregation cell at every coarser resolution).
"""

from __future__ import annotations

import polars as pl
import polars_h3 as plh3

from features.plans import apply_stages

H3_MAX_RES = 15
_RES_SHIFT = 52  # bits 52..55 hold the resolution
_RES_MASK = 0xF << _RES_SHIFT
_DIGIT_BITS = 3  # one 3-bit digit per resolution 1..15, finest digit in the lowest bits


def latlng_to_cell(lat: str | pl.Expr, lng: str | pl.Expr, resolution: int) -> pl.Expr:
    """The H3 cell (Int64) containing each point; null when a coordinate is null."""
    return plh3.latlng_to_cell(lat, lng, resolution, return_dtype=pl.Int64)


def cell_to_parent(cell: str | pl.Expr, resolution: int) -> pl.Expr:
    """Parent of a cell at a coarser (or equal) resolution: set the resolution field, blank finer digits.

    Same result as `h3.cell_to_parent` for any valid cell whose resolution is at least `resolution`.
    """
    if not 0 <= resolution <= H3_MAX_RES:
        raise ValueError(f"H3 resolution {resolution} is outside 0..{H3_MAX_RES}")
    cell = pl.col(cell) if isinstance(cell, str) else cell
    unused_digits = (1 << (_DIGIT_BITS * (H3_MAX_RES - resolution))) - 1  # digit 7 = "no digit"
    keep = ~_RES_MASK  # a negative Python int; fits Int64 as all bits but the resolution field
    return (cell & pl.lit(keep, pl.Int64)) | pl.lit((resolution << _RES_SHIFT) | unused_digits, pl.Int64)


def grid_distance(origin: str | pl.Expr, dest: str | pl.Expr) -> pl.Expr:
    """Grid steps between two cells of one resolution; null when h3 cannot compute it (far apart, pentagons)."""
    return plh3.grid_distance(origin, dest).cast(pl.Int32)


def cell_column(end: str, resolution: int) -> str:
    """Column name of an endpoint's cell: `origin_cell_r9`, `dest_cell_r7`."""
    return f"{end}_cell_r{resolution}"


def cell_stages(resolutions: tuple[int, ...]) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """`{origin,dest}_cell_r{res}` for every resolution: converted once at the finest, parents derived."""
    finest = max(resolutions)
    coarser = [res for res in resolutions if res != finest]
    ends = {"origin": ("origin_lat", "origin_lng"), "dest": ("dest_lat", "dest_lng")}
    converted = [
        latlng_to_cell(lat, lng, finest).alias(cell_column(end, finest)) for end, (lat, lng) in ends.items()
    ]
    parents = [
        cell_to_parent(cell_column(end, finest), res).alias(cell_column(end, res))
        for end in ends
        for res in coarser
    ]
    return converted, parents


def with_cells(frame: pl.LazyFrame, resolutions: tuple[int, ...]) -> pl.LazyFrame:
    """Add `{origin,dest}_cell_r{res}` for every resolution (see `cell_stages`)."""
    return apply_stages(frame, cell_stages(resolutions))
