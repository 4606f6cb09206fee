"""The registry publisher and the source that reads it, against the package's real MLflow store, with faults
injected into the real processes: a killed publisher, a publisher that stops checking, no champion, no
registry database."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from serving.model_source import PublishedSource, SourceUnavailable
from serving.publisher import Publisher, read_status
from tests.serving.conftest import LOOPBACK, wait_ready
from tests.serving.payloads import leg_json


def registry_uri() -> str:
    from models.tracking import tracking_uri

    return tracking_uri()


def wait_for(condition, timeout_s: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
        except SourceUnavailable:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_check_resolves_the_alias_and_downloads_once(champion, tmp_path: Path) -> None:
    publisher = Publisher(tmp_path / "published", registry_uri(), "eta-model", "champion")
    status = publisher.check()
    assert (status["version"], status["error"]) == (champion.version, None)
    assert Path(str(status["bundle"])).is_dir()
    assert read_status(publisher.folder) == status
    downloaded = (publisher.folder / f"v{champion.version}" / "MLmodel").stat().st_mtime_ns
    again = publisher.check()
    assert again["version"] == champion.version
    assert again["checked_at"] > status["checked_at"]
    assert (publisher.folder / f"v{champion.version}" / "MLmodel").stat().st_mtime_ns == downloaded


def test_no_alias_is_a_reason_not_an_error(champion, tmp_path: Path) -> None:
    status = Publisher(tmp_path / "p", registry_uri(), "eta-model", "nobody-here").check()
    assert status["version"] is None
    assert status["error"] is None
    assert status["detail"] == f"no model registered as eta-model@nobody-here at {registry_uri()}"


def test_a_missing_registry_database_is_reported_and_not_created(tmp_path: Path) -> None:
    database = tmp_path / "gone" / "mlflow.db"
    status = Publisher(tmp_path / "p", f"sqlite:///{database}", "eta-model", "champion").check()
    assert status["version"] is None
    assert f"no registry database at {database}" in str(status["error"])
    assert not database.exists()
    assert not database.parent.exists()


def test_a_locked_registry_is_an_error_saying_so_never_no_alias(champion, tmp_path: Path) -> None:
    """A registry another process holds under an exclusive lock (a long migration, a backup): the check
    reports that the registry cannot be read, and keeps the version it had; it never says the alias is gone."""
    import sqlite3

    from serving.publisher import sqlite_file

    database = tmp_path / "mlflow.db"
    with sqlite3.connect(sqlite_file(registry_uri())) as live, sqlite3.connect(database) as copy:
        live.backup(copy)
    uri = f"sqlite:///{database}?timeout=1"  # wait 1 s for the lock, not the store's 60
    publisher = Publisher(tmp_path / "p", uri, "eta-model", "champion")
    assert publisher.check()["version"] == champion.version
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        status = publisher.check()
    finally:
        holder.close()
    assert status["error"].startswith(f"registry at sqlite:///{database}?timeout=1 cannot be read: ")
    assert "database is locked" in status["error"]
    assert "detail" not in status
    assert status["version"] == champion.version  # what it had: the service keeps serving it
    assert publisher.check()["error"] is None  # the lock released, the next check reads it again


@pytest.fixture
def source(champion, tmp_path: Path):
    published = PublishedSource(tmp_path / "published", registry_uri(), "eta-model", "champion", poll_s=0.5)
    yield published
    published.stop()


def test_a_killed_publisher_is_replaced_at_the_next_check(source, champion) -> None:
    assert wait_for(source.current_version, what="the first status") == champion.version
    first = source.process.pid
    os.kill(first, signal.SIGKILL)
    source.process.wait(timeout=10)
    # the dead publisher's status is not current: the source says it waits, then reads the new one's
    assert wait_for(source.current_version, what="a new publisher's status") == champion.version
    assert source.process.pid != first
    assert source.process.poll() is None


def test_a_publisher_that_stops_checking_is_reported_stale(source, champion) -> None:
    assert wait_for(source.current_version, what="the first status") == champion.version
    source.stale_after_s = 1.5
    os.kill(source.process.pid, signal.SIGSTOP)  # alive but not checking, as when blocked on a lock
    try:
        time.sleep(2.0)
        with pytest.raises(SourceUnavailable, match=r"has not checked .* for [0-9]+ s"):
            source.current_version()
    finally:
        os.kill(source.process.pid, signal.SIGCONT)
    assert wait_for(source.current_version, what="checks again") == champion.version


def test_without_a_champion_the_service_is_alive_not_ready_and_says_why(champion) -> None:
    from starlette.testclient import TestClient

    from serving.service import EtaService

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ETA_SERVE_MODEL_ALIAS", "not-promoted-yet")
        with TestClient(EtaService.to_asgi(), raise_server_exceptions=False, client=LOOPBACK) as client:
            reason = f"no model registered as eta-model@not-promoted-yet at {registry_uri()}"

            def not_ready_with_reason():
                response = client.get("/readyz")
                return response.status_code == 503 and response.json() == {"error": reason}

            wait_for(not_ready_with_reason, what="/readyz to give the reason")
            assert client.get("/livez").status_code == 200
            answer = client.post("/eta", json={"legs": [leg_json()]})
            assert (answer.status_code, answer.json()) == (503, {"error": reason})


def test_an_unreadable_registry_is_not_called_a_missing_model(champion, tmp_path: Path) -> None:
    """A registry that cannot be read is a different failure from an alias that names nothing: the
    service says which, and serves again once the registry can be read."""
    from starlette.testclient import TestClient

    from serving.service import EtaService

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'not-yet' / 'mlflow.db'}")
        patch.setenv("ETA_SERVE_POLL_SECONDS", "0.5")
        with TestClient(EtaService.to_asgi(), raise_server_exceptions=False, client=LOOPBACK) as client:

            def unreadable():
                response = client.get("/readyz")
                return response.status_code == 503 and "cannot be read" in response.json()["error"]

            wait_for(unreadable, what="/readyz to report the unreadable registry")
            answer = client.post("/eta", json={"legs": [leg_json()]})
            assert answer.status_code == 503
            assert "no registry database" in answer.json()["error"]


def test_the_service_serves_once_the_publisher_has_checked(client, champion) -> None:
    wait_ready(client)
    assert client.get("/readyz").json()["ready"] is True
    assert client.post("/eta", json={"legs": [leg_json()]}).json()["model"]["version"] == champion.version
