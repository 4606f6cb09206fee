"""CLI commands of the serving layer (BentoML). Heavy imports stay inside commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the `eta` app."""
