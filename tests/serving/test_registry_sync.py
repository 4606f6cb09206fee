"""The registry sidecar (serving.registry_sync): a real child process on the package's MLflow store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from data_contracts.home import PROJECT_ROOT
from models.bundle import EtaModel
from models.tracking import CHAMPION, set_alias, tracking_uri
from serving import registry_sync
from serving.frames import probe_frame
from serving.registry_sync import ENV_ADDRESS, RegistrySync, RegistrySyncError, sidecar_for
from tests.serving.servers import python_output


@pytest.fixture(scope="module")
def sidecar(champion):
    """A sidecar of this module's own (not the process-wide one the service tests share)."""
    sync = RegistrySync.start(tracking_uri())
    yield sync
    sync.stop()


def test_it_resolves_the_alias_and_hands_over_a_loadable_bundle(
    sidecar, champion, challenger, champion_alias
):
    first = sidecar.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})
    assert first["version"] == champion.version
    assert len(first["run_id"]) == 32
    loaded = EtaModel.load(Path(first["bundle"]))
    legs = probe_frame()
    np.testing.assert_array_equal(loaded.predict_quantiles(legs), champion.model.predict_quantiles(legs))

    set_alias(CHAMPION, int(challenger.version))  # every resolve asks the registry again
    moved = sidecar.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})
    assert moved["version"] == challenger.version
    assert moved["bundle"] != first["bundle"]
    # a version is downloaded once: asking for it again gives the same folder
    again = sidecar.ask({"op": "fetch", "name": "eta-model", "version": champion.version})
    assert again == first


def test_only_the_latest_downloads_are_kept(champion, challenger, tmp_path):
    """A long-lived service sees a new version every retraining: old downloads are removed."""
    from serving.registry_sync import Registry

    registry = Registry(tracking_uri(), tmp_path, keep_versions=1)
    first = registry.fetch("eta-model", champion.version)
    assert Path(first["bundle"], "conformal.json").is_file()
    second = registry.fetch("eta-model", challenger.version)
    assert Path(second["bundle"], "conformal.json").is_file()
    assert not Path(first["bundle"]).exists()
    again = registry.fetch("eta-model", champion.version)  # asked for again: downloaded again
    assert again == first
    assert Path(again["bundle"], "conformal.json").is_file()
    assert not Path(second["bundle"]).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["models"]  # no staging folder left behind


def test_what_it_cannot_answer_is_said_by_name(sidecar, champion):
    missing = sidecar.ask({"op": "resolve", "name": "eta-model", "alias": "no-such-alias"})
    assert missing["version"] is None
    assert "no-such-alias" in missing["detail"]
    with pytest.raises(RegistrySyncError, match="version=99"):
        sidecar.ask({"op": "fetch", "name": "eta-model", "version": "99"})
    other = RegistrySync(sidecar.address, "sqlite:///elsewhere.db")
    with pytest.raises(RegistrySyncError, match=r"serves sqlite:///.*not sqlite:///elsewhere\.db"):
        other.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})
    # still answering after the refusals
    assert (
        sidecar.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})["version"]
        == champion.version
    )


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has exited; only its exit status is left to collect


def test_the_serving_process_never_imports_mlflow_and_its_sidecar_ends_with_it(champion):
    """A fresh process loads the champion through the registry source, then ends without stopping its
    sidecar (os._exit: no atexit); the sidecar notices and removes its folder."""
    code = (
        "import json, os, sys\n"
        "from serving.model_source import ModelHolder, RegistrySource\n"
        "from models.tracking import tracking_uri\n"
        "from serving.registry_sync import sidecar_for\n"
        "loaded = ModelHolder(RegistrySource('eta-model', 'champion')).load_initial()\n"
        "sync = sidecar_for(tracking_uri())  # the one the source started\n"
        "print(json.dumps([loaded.version, loaded.info.source, 'mlflow' in sys.modules,"
        " sync.process.pid, sync.address]), flush=True)\n"
        "os._exit(0)\n"
    )
    version, source, imported_mlflow, pid, address = json.loads(python_output(code, PROJECT_ROOT))
    assert (version, source, imported_mlflow) == (champion.version, "registry", False)
    deadline = time.monotonic() + 30
    while (_running(pid) or Path(address).parent.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(pid)
    assert not Path(address).parent.exists()


def test_a_process_adopts_the_sidecar_its_environment_names(sidecar, monkeypatch, tmp_path):
    monkeypatch.setattr(registry_sync, "_shared", {})
    monkeypatch.setenv(ENV_ADDRESS, sidecar.address)
    adopted = sidecar_for(tracking_uri())
    assert adopted.address == sidecar.address
    assert adopted.process is None
    assert adopted.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})["version"] == "1"
    assert sidecar_for(tracking_uri()) is adopted  # once per process and URI

    # a variable naming a sidecar that is gone: this process starts its own
    monkeypatch.setattr(registry_sync, "_shared", {})
    monkeypatch.setenv(ENV_ADDRESS, str(tmp_path / "gone" / "socket"))  # its folder was removed
    own = sidecar_for(tracking_uri())
    try:
        assert own.process is not None
        assert own.address != sidecar.address
        assert own.ask({"op": "resolve", "name": "eta-model", "alias": "champion"})["version"] == "1"
    finally:
        own.stop()
    assert own.process.returncode is not None
    assert not Path(own.address).parent.exists()  # stopped, it removed its folder
