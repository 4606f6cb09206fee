"""Level 3: the real `bentoml serve` process on a loopback port, over real HTTP."""

from __future__ import annotations

import json
import pickle

import httpx
import pytest

from data_contracts.home import PROJECT_ROOT
from tests.serving.payloads import ETA_BODY, ROUTE, leg_json
from tests.serving.servers import bentoml_serve, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "bentoml.log"
    with bentoml_serve("serving.service:EtaService", PROJECT_ROOT, server_env(), log) as running:
        yield running


def test_probes_and_metrics(server) -> None:
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text


def test_answers_match_the_in_process_app(server, client) -> None:
    for path, body in (("/eta", ETA_BODY), ("/delivery_window", {"leg": leg_json()}), ("/route_eta", ROUTE)):
        real = httpx.post(f"{server.url}{path}", json=body, timeout=30)
        assert real.status_code == 200, real.text
        assert real.json() == client.post(path, json=body).json()


def test_a_pickle_payload_is_refused(server) -> None:
    """BentoML's own e2e negative test: the main server must never unpickle a request body."""
    response = httpx.post(
        f"{server.url}/eta",
        content=pickle.dumps(ETA_BODY),
        headers={"content-type": "application/vnd.bentoml+pickle"},
    )
    assert response.status_code == 415


def test_bad_input_is_a_4xx_and_the_server_keeps_serving(server) -> None:
    bad = json.dumps({"legs": [leg_json(origin_lat=95)]})
    response = httpx.post(f"{server.url}/eta", content=bad, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["legs", 0, "origin_lat"]
    assert httpx.post(f"{server.url}/eta", json=ETA_BODY, timeout=30).status_code == 200
