"""Small geometric expressions shared by the contract and the features (polars, vectorized)."""

from __future__ import annotations

import polars as pl

EARTH_RADIUS_KM = 6371.0088


def haversine_km(
    lat1: str | pl.Expr, lng1: str | pl.Expr, lat2: str | pl.Expr, lng2: str | pl.Expr
) -> pl.Expr:
    """Great-circle distance in km between two points given as column names or expressions."""
    lat1, lng1, lat2, lng2 = (pl.col(c) if isinstance(c, str) else c for c in (lat1, lng1, lat2, lng2))
    phi1, phi2 = lat1.radians(), lat2.radians()
    dphi = (lat2 - lat1).radians()
    dlmb = (lng2 - lng1).radians()
    a = (dphi / 2).sin().pow(2) + phi1.cos() * phi2.cos() * (dlmb / 2).sin().pow(2)
    return 2 * EARTH_RADIUS_KM * a.sqrt().arcsin()
