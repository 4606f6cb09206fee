"""Service configuration: defaults in one place, overridden by ETA_SERVE_* variables when the service starts.

Read by `ServingConfig.from_env()` when the service and the guard middleware are constructed, never at import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

ENV_PREFIX = "ETA_SERVE_"
API_KEY_HEADER = "x-api-key"
ADMIN_KEY_HEADER = "x-admin-key"
ADMIN_PREFIX = "/admin/"
STATUS_PATH = ADMIN_PREFIX + "status"  # answers GET too (serving.guard): BentoML endpoints take POST only
MODEL_ENDPOINTS = ("/eta", "/delivery_window", "/route_eta", "/exception_risk")


class ServingConfig(BaseModel):
    """Every knob of the service; `ETA_SERVE_<FIELD>` (upper case) sets a field."""

    model_source: Literal["auto", "registry", "bento"] = Field(
        "auto", description="auto: the model carried by the Bento when served from one, else the registry."
    )
    model_name: str = "eta-model"
    model_alias: str = "champion"
    poll_seconds: float = Field(
        30.0, ge=0.0, description="How often to check whether the alias moved; 0 turns polling off."
    )
    api_key: str | None = Field(None, description="When set, every request but the probes needs X-API-Key.")
    admin_key: str | None = Field(
        None,
        description="When set, /admin/* needs X-Admin-Key; unset, /admin/* answers loopback callers only "
        "(403 otherwise), and eta serve refuses a non-loopback address.",
    )
    max_legs: int = Field(5000, ge=1, description="Most legs one /eta request may carry.")
    max_stops: int = Field(200, ge=1, description="Most stops one /route_eta request may carry.")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="Larger request bodies get 413.")
    batching: bool = Field(True, description="Coalesce concurrent requests into one model call.")
    max_batch_legs: int = Field(2000, ge=1, description="Most legs the micro-batcher puts in one call.")
    tree_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads a LightGBM model's call may use: from 256 legs its boosters run side by side; "
        "1 runs them one after another.",
    )
    online_calibration: bool = Field(
        True,
        description="Adjust the champion's windows by the newest online calibration state of its version "
        "(models.online; written daily by the pipeline's online_calibration asset), picked up by polling.",
    )
    online_state_dir: str = Field(
        "", description="Where the online calibration states are; empty: ETA_HOME/online (the pipeline's)."
    )
    route_samples: int = Field(4000, ge=100, le=100_000, description="Monte Carlo draws per route.")
    route_leg_correlation: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Correlation of consecutive legs' latent normal scores (Gaussian copula); estimate it "
        "with serving.route.latent_scores_of + leg_correlation (0.07 on the synthetic city).",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingConfig:
        """Defaults overridden by ETA_SERVE_* variables; raises ValueError naming a bad variable."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(ENV_PREFIX + name.upper()) not in (None, "")
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            bad = ", ".join(ENV_PREFIX + str(e["loc"][0]).upper() for e in exc.errors())
            raise ValueError(f"invalid service configuration in {bad}: {exc}") from exc

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key)


def untraced_patterns(paths: Sequence[str]) -> list[str]:
    """One regular expression per path, matching that path exactly (with or without a query string)."""
    return [rf"^[a-z]+://[^/]+{re.escape(path)}(\?.*)?$" for path in paths]
