"""The real `dagster-webserver` on a free loopback port: it loads the Definitions and its GraphQL lists the
assets. The server runs in its own process group and is always stopped, group and all."""

from __future__ import annotations

import os

import httpx
import pytest

from pipelines import ui
from pipelines.assets_serving import BENTO
from pipelines.automation import INGEST_KEYS, MONITOR_KEYS, RETRAIN_KEYS
from pipelines.instance import prepare_dagster_home

QUERY = "{ assetNodes { assetKey { path } } }"


@pytest.fixture
def webserver(tmp_path):
    env = {
        **os.environ,
        "ETA_HOME": str(tmp_path),
        "DAGSTER_HOME": str(prepare_dagster_home(tmp_path)),
    }
    port = ui.free_port()
    service = ui.start(
        "dagster-webserver",
        ui.webserver_command("127.0.0.1", port),
        env,
        tmp_path / "webserver.log",
        f"http://127.0.0.1:{port}",
    )
    try:
        yield service
    finally:
        ui.stop(service)
        with pytest.raises(ProcessLookupError):
            os.killpg(service.process.pid, 0)  # nothing of the group survives


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_webserver_lists_the_asset_graph(webserver) -> None:
    assert ui.wait_until_up(webserver, "/server_info", timeout=420), webserver.log.read_text()[-3000:]
    response = httpx.post(f"{webserver.url}/graphql", json={"query": QUERY}, timeout=120)
    assert response.status_code == 200
    keys = {"/".join(node["assetKey"]["path"]) for node in response.json()["data"]["assetNodes"]}
    assert keys == {*INGEST_KEYS, *MONITOR_KEYS, *RETRAIN_KEYS, BENTO}
