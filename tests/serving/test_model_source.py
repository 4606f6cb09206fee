"""Choosing and holding the served model (registry, Bento store, memory)."""

from __future__ import annotations

import numpy as np
import pytest

from models import quantile
from serving.config import ServingConfig
from serving.model_source import (
    InMemorySource,
    ModelHolder,
    NoModel,
    PublishedSource,
    SourceUnavailable,
    probe,
)
from tests.serving.payloads import leg_json, legs_frame_for


def test_outside_a_bento_the_registry_serves() -> None:
    from serving.service import choose_source

    source = choose_source(ServingConfig(), bento=None)
    assert isinstance(source, PublishedSource)
    assert (source.name, source.alias) == ("eta-model", "champion")
    source.stop()
    with pytest.raises(RuntimeError, match="carries no eta-model"):
        choose_source(ServingConfig(model_source="bento"), bento=None)


def test_nothing_to_serve_is_said_and_waited_for() -> None:
    holder = ModelHolder(InMemorySource(models={}, version=None))
    with pytest.raises(NoModel, match="first check of models:/eta-model@champion in memory has not finished"):
        _ = holder.current
    result = holder.refresh()
    assert (result.swapped, result.detail) == (False, "no model registered as eta-model@champion in memory")
    with pytest.raises(NoModel, match="no model registered as eta-model@champion in memory"):
        _ = holder.current


class Crossing:
    """A model whose quantiles cross: the probe must refuse to serve it."""

    quantiles = (0.1, 0.5, 0.9)

    def predict_quantiles(self, legs) -> np.ndarray:
        return np.array([[300.0, 200.0, 400.0]])


def test_the_probe_refuses_a_broken_model(champion) -> None:
    assert probe(champion.model).shape == (1, len(champion.model.quantiles))
    with pytest.raises(RuntimeError, match="crossing"):
        probe(Crossing())
    holder = ModelHolder(InMemorySource(models={"1": champion.model, "2": Crossing()}, version="1"))
    holder.refresh()
    holder.source.version = "2"
    with pytest.raises(
        SourceUnavailable, match="v2 cannot be served: RuntimeError: probe prediction has crossing"
    ):
        holder.refresh()
    assert holder.current.version == "1"
    assert holder.unavailable_reason().startswith("v2 cannot be served")


def test_configuration_from_the_environment() -> None:
    config = ServingConfig.from_env({"ETA_SERVE_MAX_LEGS": "7", "ETA_SERVE_API_KEY": "", "OTHER": "x"})
    assert (config.max_legs, config.auth_enabled) == (7, False)
    with pytest.raises(ValueError, match="ETA_SERVE_POLL_SECONDS"):
        ServingConfig.from_env({"ETA_SERVE_POLL_SECONDS": "-1"})


def test_a_lightgbm_model_is_served_with_the_configured_tree_threads(champion) -> None:
    source = InMemorySource(models={"1": champion.model}, version="1")
    assert champion.model.regressor.params.num_threads == 1  # as loaded from the registry
    holder = ModelHolder(source, tree_threads=2)
    holder.refresh()
    served = holder.current.model
    assert served.regressor.params.num_threads == 2
    assert champion.model.regressor.params.num_threads == 1  # the source's model is untouched
    # enough legs for the boosters to run side by side: the same answers as one after another
    legs = legs_frame_for(
        [leg_json(dest_lat=-1.30 + i / 1000, dest_lng=36.75 + i / 2000) for i in range(300)]
    )
    assert len(legs) >= quantile.BOOSTERS_SIDE_BY_SIDE_ROWS
    np.testing.assert_array_equal(served.predict_quantiles(legs), champion.model.predict_quantiles(legs))
