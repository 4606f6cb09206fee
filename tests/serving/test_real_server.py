"""Level 3: the real server process, started by `eta serve` (registry publisher, then `bentoml serve`) on a
loopback port, over real HTTP."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from data_contracts.home import PROJECT_ROOT
from tests.serving.payloads import ETA_BODY, ROUTE, leg_json
from tests.serving.servers import eta_serve, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory):
    """The real server, started by `eta serve`."""
    log = tmp_path_factory.mktemp("server") / "bentoml.log"
    env = server_env()
    with eta_serve(PROJECT_ROOT, env, log) as running:
        yield running


def test_probes_and_metrics(server) -> None:
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is `pid` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append((status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # a process that ended meanwhile
            continue
    return found


def test_eta_serve_runs_the_registry_publisher_beside_bentoml(server) -> None:
    """`eta serve` started the publisher, then became `bentoml serve` (same process): the publisher is its
    child, and the worker used it instead of starting its own."""
    assert sum("serving.publisher" in command for command in _children(server.process.pid)) == 1
    assert httpx.get(f"{server.url}/readyz").status_code == 200


RISK_BODY = {
    "now": "2026-01-20T09:55:00+03:00",
    "deliveries": [{"leg": leg_json(leg_id="d1"), "promised_by": "2026-01-20T10:00:00+03:00"}],
}
IN_PROGRESS_BODY = {
    "legs": [
        leg_json(elapsed_s=900.0),
        leg_json(elapsed_s=300.0, current_position={"lat": -1.289, "lng": 36.805}),
    ]
}


def test_answers_match_the_in_process_app(server, client) -> None:
    for path, body in (
        ("/eta", ETA_BODY),
        ("/eta", IN_PROGRESS_BODY),
        ("/delivery_window", {"leg": leg_json()}),
        ("/route_eta", ROUTE),
        ("/exception_risk", RISK_BODY),
    ):
        real = httpx.post(f"{server.url}{path}", json=body, timeout=30)
        assert real.status_code == 200, real.text
        assert real.json() == client.post(path, json=body).json()


def test_admin_status_by_get_and_the_document_name_the_served_model(server, champion) -> None:
    status = httpx.get(f"{server.url}/admin/status", timeout=30)
    assert status.status_code == 200, status.text
    assert status.json()["model"] == httpx.post(f"{server.url}/admin/status", json={}).json()["model"]
    info = httpx.get(f"{server.url}/docs.json", timeout=30).json()["info"]
    assert f"Serving `eta-model@champion`, version {champion.version} " in info["description"]
    assert info["version"] != "None"


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


SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing_with_every_check(server, tmp_path: Path) -> None:
    """schemathesis' CLI with --checks all (server errors, status codes, content types, response schemas,
    headers, schema-valid data accepted and schema-invalid data refused, unsupported methods...) over the
    published schema of the real server: bounded cases, a fixed seed."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{server.url}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--exclude-path",
        "/metrics",  # Prometheus text, not JSON: checked by test_probes_and_metrics
        # the year bound (a pattern beside format date-time) makes Hypothesis discard many drawn moments
        "--suppress-health-check",
        "filter_too_much",
        "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Tested: 10" in run.stdout, run.stdout[-3000:]  # every operation but /metrics


def test_a_repeated_key_is_refused_by_name(server) -> None:
    leg = json.dumps(leg_json())
    body = '{"legs": [' + leg[:-1] + ', "origin_lat": 40.7}]}'
    response = httpx.post(f"{server.url}/eta", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "body: the key 'origin_lat' appears twice in one object"


def test_readiness_answers_get_and_head_only(server) -> None:
    assert httpx.head(f"{server.url}/readyz").status_code == 200
    response = httpx.request("TRACE", f"{server.url}/readyz")
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")
