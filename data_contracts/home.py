"""Where runtime state lives: one folder, `.eta/` in the project root unless ETA_HOME says otherwise.

Nothing here creates folders at import time; callers ask for a path and create it when they write.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def eta_home() -> Path:
    """The runtime state folder (MLflow store, Dagster home, data partitions, reports)."""
    configured = os.environ.get("ETA_HOME")
    return Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / ".eta"


def shared_data_dir() -> Path:
    """The real public data sets beside the checkout (`../shared/data`), or ETA_SHARED_DATA."""
    configured = os.environ.get("ETA_SHARED_DATA")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"


# SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (3); the driver installed here, and the one
# dagster-postgres is written for, is psycopg2, so PostgreSQL URLs name it
POSTGRES_SCHEME = "postgresql+psycopg2"


def require_postgres_driver(url: str, variable: str) -> str:
    """`url` as given; ValueError (naming `variable`, not echoing a password) for a PostgreSQL URL that
    leaves the driver to SQLAlchemy."""
    scheme, separator, _ = url.partition("://")
    if separator and scheme in ("postgresql", "postgres"):
        raise ValueError(
            f"{variable} starts with {scheme}://; write {POSTGRES_SCHEME}:// (the psycopg2 driver this "
            "project installs): SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which it does not"
        )
    return url
