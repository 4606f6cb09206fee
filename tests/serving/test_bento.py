"""Shipping: `eta build-bento` builds a Bento that carries the champion and serves the same answers
without the registry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.serving.payloads import ETA_BODY, ROUTE, leg_json
from tests.serving.servers import bentoml_serve, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(champion):
    from serving.packaging import build_bento

    return build_bento()


def test_the_bento_carries_the_champion(built, champion) -> None:
    import bentoml

    bento = bentoml.bentos.get(built.tag)
    assert built.model_tag == f"eta-model:v{champion.version}"
    assert [str(m.tag) for m in bento.info.all_models] == [built.model_tag]
    assert bento.info.labels["eta_model"] == built.model_tag
    assert bento.info.service == "serving.service:EtaService"
    stored = bentoml.models.get(built.model_tag)
    assert stored.info.labels["mlflow_version"] == champion.version
    requirements = Path(bento.path_of("env/python/requirements.txt")).read_text()
    assert "mlflow" not in requirements
    assert "lightgbm==" in requirements


def test_building_again_reuses_the_exported_model(built) -> None:
    from serving.packaging import export_champion

    assert export_champion() == (built.model_tag, built.model_tag.split(":v")[1])


def test_the_built_bento_serves_the_same_answers_without_the_registry(built, client, tmp_path) -> None:
    # no registry: an empty ETA_HOME and a tracking URI nothing listens on (loopback only)
    env = server_env(ETA_HOME=str(tmp_path / "empty_home"), MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    with bentoml_serve(built.tag, tmp_path, env, tmp_path / "bento.log") as server:
        for path, body in (
            ("/eta", ETA_BODY),
            ("/delivery_window", {"leg": leg_json()}),
            ("/route_eta", ROUTE),
        ):
            from_bento = httpx.post(f"{server.url}{path}", json=body, timeout=30)
            assert from_bento.status_code == 200, from_bento.text
            answer, expected = from_bento.json(), client.post(path, json=body).json()
            assert answer["model"].pop("source") == "bento"
            assert expected["model"].pop("source") == "registry"
            assert answer == expected
