"""Hot swap: the service follows the champion alias, atomically, while requests keep flowing."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from models.tracking import CHAMPION, set_alias
from serving.model_source import InMemorySource, ModelHolder, SourceUnavailable
from tests.serving.conftest import LOOPBACK, wait_ready
from tests.serving.payloads import leg_json, legs_frame_for

BODY = {"legs": [leg_json(), leg_json(dest_lat=-1.2230, dest_lng=36.8980)], "levels": [0.8]}


def expected_medians(registered) -> list[float]:
    q = registered.model.predict_quantiles(legs_frame_for(BODY["legs"]))
    return [round(float(v), 1) for v in q[:, registered.model.quantiles.index(0.5)]]


@pytest.fixture
def polling_client(champion, challenger, champion_alias):
    from starlette.testclient import TestClient

    from serving.service import EtaService

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ETA_SERVE_POLL_SECONDS", "0.2")
        with TestClient(EtaService.to_asgi(), raise_server_exceptions=False, client=LOOPBACK) as test_client:
            wait_ready(test_client)
            yield test_client


def test_moving_the_alias_under_load_swaps_once_without_failures(
    polling_client, champion, challenger
) -> None:
    answers = {champion.version: expected_medians(champion), challenger.version: expected_medians(challenger)}
    assert answers[champion.version] != answers[challenger.version]  # the two models are distinguishable
    seen: dict[int, list[tuple[int, str | None, list[float] | None]]] = {i: [] for i in range(3)}
    stop = threading.Event()

    def client_loop(index: int) -> None:
        while not stop.is_set():
            response = polling_client.post("/eta", json=BODY)
            if response.status_code != 200:
                seen[index].append((response.status_code, None, None))
                continue
            payload = response.json()
            medians = [leg["median_s"] for leg in payload["legs"]]
            seen[index].append((200, payload["model"]["version"], medians))

    def count(version: str) -> int:
        return min(sum(1 for _, v, _ in answers_ if v == version) for answers_ in seen.values())

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in seen]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while count(champion.version) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        set_alias(CHAMPION, int(challenger.version))
        while count(challenger.version) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    for trace in seen.values():
        assert all(status == 200 for status, _, _ in trace)
        versions = [version for _, version, _ in trace]
        switches = sum(1 for a, b in itertools.pairwise(versions) if a != b)
        assert (versions[0], versions[-1], switches) == (champion.version, challenger.version, 1)
        # every answer is wholly one model's: numbers match the version it names
        assert all(medians == answers[version] for _, version, medians in trace)
    # the published document names the model served when it is asked for
    served = polling_client.get("/docs.json").json()["info"]["description"]
    assert served.endswith(f"Serving `eta-model@champion`, version {challenger.version} (from the registry).")


def test_the_admin_endpoint_swaps_now(client, champion, challenger, champion_alias) -> None:
    set_alias(CHAMPION, int(challenger.version))
    swap = client.post("/admin/reload", json={}).json()
    assert swap == {
        "previous_version": champion.version,
        "version": challenger.version,
        "swapped": True,
        "detail": "swapped",
    }
    assert client.post("/eta", json=BODY).json()["model"]["version"] == challenger.version
    assert client.post("/admin/reload", json={}).json()["swapped"] is False
    set_alias(CHAMPION, int(champion.version))
    assert client.post("/admin/reload", json={}).json()["version"] == champion.version
    assert client.post("/eta", json=BODY).json()["model"]["version"] == champion.version


class BrokenLoads(InMemorySource):
    def load(self, version: str):
        if version == "broken":
            raise OSError("artifact store unreachable")
        return super().load(version)


def test_a_failed_load_keeps_serving_the_old_model(champion) -> None:
    source = BrokenLoads(models={"1": champion.model}, version="1")
    holder = ModelHolder(source)
    holder.refresh()
    before = holder.current
    source.version = "broken"
    with pytest.raises(SourceUnavailable, match="unreachable"):
        holder.refresh()
    assert holder.current is before
    source.version = None  # alias deleted: keep serving, say why
    assert holder.refresh().detail == "no model registered as eta-model@champion in memory"
    assert holder.current is before
    assert source.loads == ["1"]


def test_a_registry_outage_leaves_a_serving_replica_ready_and_says_so(champion) -> None:
    from serving.config import ServingConfig
    from serving.predictor import EtaPredictor

    source = InMemorySource(models={"1": champion.model}, version=None)
    predictor = EtaPredictor(ModelHolder(source), ServingConfig())
    predictor.holder.refresh()
    assert predictor.readiness() == (False, "no model registered as eta-model@champion in memory")
    source.version = "1"
    predictor.holder.refresh()
    assert predictor.readiness() == (True, "serving eta-model v1")
    source.unavailable = "registry at memory cannot be read: locked"
    with pytest.raises(SourceUnavailable):
        predictor.holder.refresh()
    ready, detail = predictor.readiness()
    assert ready
    assert detail.startswith("serving eta-model v1; the last check failed")
    assert detail.endswith("registry at memory cannot be read: locked")


def test_a_new_online_state_is_picked_up_without_a_restart(polling_client, champion) -> None:
    """The pipeline records an online calibration state for the champion (a day whose legs took 1.5 times
    the median): the service picks it up by polling, every answer names it, and the answer is the champion's
    quantiles adjusted by that state."""
    import shutil

    import numpy as np

    from data_contracts.home import eta_home
    from models import online

    store = online.StateStore(eta_home() / "online")
    shutil.rmtree(store.root, ignore_errors=True)
    first = polling_client.post("/eta", json=BODY).json()
    assert first["model"]["online_calibration"] is None
    day = legs_frame_for(BODY["legs"] * 150)
    q = champion.model.predict_quantiles(day)
    keys = {name: np.full(len(q), "elsewhere", dtype=object) for name in online.OnlineConfig().layers}
    blank = online.OnlineState(int(champion.version), champion.model.quantiles)
    state = online.update(blank, online.CompletedDay("2026-01-20", q[:, 3] * 1.5, q, keys))
    try:
        store.write("eta-model", state)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = polling_client.post("/eta", json=BODY).json()
            if answer["model"]["online_calibration"]:
                break
            time.sleep(0.1)
        assert answer["model"]["online_calibration"] == state.describe()
        expected = champion.model.predict_quantiles(legs_frame_for(BODY["legs"]), state)
        medians = [leg["median_s"] for leg in answer["legs"]]
        assert medians == [round(float(v), 1) for v in expected[:, 3]]
        assert medians != [leg["median_s"] for leg in first["legs"]]
    finally:
        shutil.rmtree(store.root, ignore_errors=True)
