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
