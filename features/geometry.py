"""Straight-line geometry of a leg: great-circle distance (shared with the contract) and initial bearing."""

from __future__ import annotations

import polars as pl

from data_contracts.geo import haversine_km

__all__ = ["bearing_deg", "haversine_km", "leg_haversine_km"]


def bearing_deg(
    lat1: str | pl.Expr, lng1: str | pl.Expr, lat2: str | pl.Expr, lng2: str | pl.Expr
) -> pl.Expr:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north in [0, 360).

    Identical points give 0 (atan2(0, 0)).
    """
    lat1, lng1, lat2, lng2 = (pl.col(c) if isinstance(c, str) else c for c in (lat1, lng1, lat2, lng2))
    phi1, phi2 = lat1.radians(), lat2.radians()
    dlmb = (lng2 - lng1).radians()
    y = dlmb.sin() * phi2.cos()
    x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * dlmb.cos()
    return (pl.arctan2(y, x).degrees() + 360.0) % 360.0


def leg_haversine_km() -> pl.Expr:
    """Great-circle km from the leg's origin to its destination."""
    return haversine_km("origin_lat", "origin_lng", "dest_lat", "dest_lng")
