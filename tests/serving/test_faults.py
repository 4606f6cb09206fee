"""Fault injection on a real `eta serve` (issue 24, "Faults"): the registry publisher killed, the registry
file replaced by an older backup, no registry and no champion, and shutdown right after all that. Each step
is bounded in time: conditions are polled with a deadline, never waited for with a long sleep.

Two servers: one on the package's registry (killed publisher, replaced registry, shutdown), one on an empty
ETA_HOME (no registry, an empty one, then a champion appearing; a publisher killed while its parent does not
reap it; shutdown). Each has an ETA_HOME of its own, so its
publisher's folder is not shared with the in-process services of other test modules."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from data_contracts.home import PROJECT_ROOT
from serving.publisher import sqlite_file
from tests.serving.payloads import leg_json
from tests.serving.servers import READY_TIMEOUT_S, Server, _stop, eta_serve, free_port, server_env

pytestmark = pytest.mark.slow

POLL = "1"  # ETA_SERVE_POLL_SECONDS of both servers
ETA_BODY = {"legs": [leg_json()]}
REQUEST_TIMEOUT_S = 30.0  # any one HTTP answer; the hang was a 504 after 60 s
RECOVERY_S = 30.0  # a new publisher, a swap, a reason on /readyz: seconds on this shared, noisy machine
RELOAD_S = 20.0  # an /admin/reload answers within this (the source waits up to 15 s for a check)
SHUTDOWN_S = 30.0  # SIGTERM to exit
NOTICE_S = 10.0  # a dead publisher noticed and replaced: one poll, and slack for a noisy machine
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """`condition()` once it is truthy, polled every 0.2 s; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what} (last: {value!r})"
        time.sleep(0.2)


def registry_uri() -> str:
    """The package's registry (tests/serving/conftest.py), as the test process reads it."""
    from models.tracking import tracking_uri

    return tracking_uri()


# ---- processes, from /proc ------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, int]]:
    """Every living (not zombie) process: pid -> (parent pid, command line, start time in ticks)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # a process that ended meanwhile
            continue
        if fields[0] != "Z":
            found[int(stat.parent.name)] = (int(fields[1]), command, int(fields[19]))
    return found


def _descendants(pid: int) -> dict[int, tuple[int, str, int]]:
    """The living processes below `pid` (children, their children...)."""
    processes = _processes()
    found, parents = {}, {pid}
    while parents:
        children = {p: v for p, v in processes.items() if v[0] in parents and p not in found}
        found.update(children)
        parents = set(children)
    return found


def _publishers(pid: int) -> dict[int, tuple[int, str, int]]:
    """The registry publishers below `pid`: the one `eta serve` started, or one a worker started."""
    return {p: v for p, v in _descendants(pid).items() if "serving.publisher" in v[1]}


def _still_alive(processes: dict[int, tuple[int, str, int]]) -> list[str]:
    """Those of `processes` still alive (the same process: same pid and start time)."""
    now = _processes()
    return [v[1] for p, v in processes.items() if p in now and now[p][2] == v[2]]


# ---- servers ------------------------------------------------------------------------------------------


@contextmanager
def eta_serve_live(env: dict[str, str], log: Path) -> Iterator[Server]:
    """`eta serve` waited for until /livez answers (servers.eta_serve waits for /readyz, which a server
    without a model never gives), always stopped."""
    port = free_port()
    command = [sys.executable, "-m", "eta_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                assert process.poll() is None, f"the server exited:\n{log.read_text()[-4000:]}"
                assert time.monotonic() - started < READY_TIMEOUT_S, f"no /livez:\n{log.read_text()[-4000:]}"
                try:
                    if httpx.get(f"{url}/livez", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            yield Server(url, time.monotonic() - started, process, log)
        finally:
            _stop(process)


def _get(server: Server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=REQUEST_TIMEOUT_S)


def _post(server: Server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=REQUEST_TIMEOUT_S)


def _reload(server: Server) -> tuple[int, dict, float]:
    """POST /admin/reload: its status, body and how long it took."""
    started = time.monotonic()
    response = _post(server, "/admin/reload", {})
    return response.status_code, response.json(), time.monotonic() - started


def _logged(server: Server, line: str) -> bool:
    """The server's log has a structured line containing `line` (the service logs one per event)."""
    return any(line in logged for logged in server.log.read_text(errors="replace").splitlines())


def _served_version(server: Server) -> str:
    response = _post(server, "/eta", ETA_BODY)
    assert response.status_code == 200, response.text
    return response.json()["model"]["version"]


def _answers(server: Server, path: str) -> tuple[int, dict]:
    response = _get(server, path) if path != "/eta" else _post(server, path, ETA_BODY)
    return response.status_code, response.json()


def _sqlite_copy(source: Path, target: Path) -> None:
    """`source`'s content written into `target` (SQLite's online backup: consistent while in use; an
    existing `target` is overwritten in place)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _shuts_down_in_bounded_time(server: Server) -> None:
    """SIGTERM to the `eta serve` process (which became `bentoml serve`): it exits within SHUTDOWN_S, and
    nothing it started (workers, publishers) outlives it."""
    below = _descendants(server.process.pid)
    assert any("serving.publisher" in command for _, command, _ in below.values()), below
    started = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=SHUTDOWN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"SIGTERM: still running after {SHUTDOWN_S:.0f} s:\n{server.log.read_text()[-3000:]}")
    took = time.monotonic() - started
    wait_for(lambda: not _still_alive(below), 10.0, f"the server's processes to end ({_still_alive(below)})")
    assert took < SHUTDOWN_S


# ---- a server on the package's registry: publisher killed, registry replaced, shutdown -----------------


@pytest.fixture(scope="class")
def registry_server(champion, challenger, tmp_path_factory) -> Iterator[Server]:
    """`eta serve` on the package's registry (champion version 1, version 2 registered), polling every
    second, with an ETA_HOME of its own for the publisher's downloads."""
    root = tmp_path_factory.mktemp("faults-registry")
    env = server_env(
        ETA_HOME=str(root / "eta_home"), MLFLOW_TRACKING_URI=registry_uri(), ETA_SERVE_POLL_SECONDS=POLL
    )
    with eta_serve(PROJECT_ROOT, env, root / "server.log") as running:
        yield running


class TestOnTheRegistry:
    def test_readiness_is_answered_from_the_last_check(self, registry_server) -> None:
        with httpx.Client(base_url=registry_server.url, timeout=REQUEST_TIMEOUT_S) as client:
            started = time.monotonic()
            codes = {client.get("/readyz").status_code for _ in range(50)}
            took = time.monotonic() - started
        assert codes == {200}
        assert took < 1.0, f"50 /readyz took {took:.2f} s"

    def test_a_killed_publisher_is_replaced_and_reloads_answer(self, registry_server, champion) -> None:
        """kill -9 of the publisher `eta serve` started: the model stays served and ready, the worker starts
        a publisher of its own, and /admin/reload answers at once (the issue saw 504 after 60 s each time)."""
        server = registry_server
        publishers = _publishers(server.process.pid)
        assert [v[0] for v in publishers.values()] == [server.process.pid]  # `eta serve` started it
        (first,) = publishers
        os.kill(first, signal.SIGKILL)
        assert _served_version(server) == champion.version  # the model is still served

        new = wait_for(lambda: set(_publishers(server.process.pid)) - {first}, RECOVERY_S, "a new publisher")
        assert len(new) == 1
        (replacement,) = new
        wait_for(
            lambda: _logged(server, f"event=publisher_started pid={replacement} "), RECOVERY_S, "its log line"
        )
        assert _get(server, "/readyz").status_code == 200
        assert _served_version(server) == champion.version

        # right away, while the new publisher imports mlflow: an answer, not a 504 after 60 s
        status, body, took = _reload(server)
        described = f"models:/eta-model@champion at {registry_uri()}"
        unchanged = {
            "previous_version": champion.version,
            "version": champion.version,
            "swapped": False,
            "detail": "already serving this version",
        }
        assert (status, body) in (
            (200, unchanged),
            (503, {"error": f"the registry publisher did not check {described} within 15 s"}),
        ), (status, body, took)
        assert took < RELOAD_S

        # once the new publisher has checked, /readyz says so and reloads answer 200 at once
        settled = {"ready": True, "detail": f"serving eta-model v{champion.version}"}
        wait_for(lambda: _get(server, "/readyz").json() == settled, RECOVERY_S, "/readyz without an error")
        status, body, took = _reload(server)
        assert (status, body) == (200, unchanged)
        assert took < 5.0
        assert _served_version(server) == champion.version

    def test_a_replaced_registry_file_is_read_as_it_is_now(
        self, registry_server, champion, challenger, champion_alias
    ) -> None:
        """A restored backup whose champion is the older version, moved over the live sqlite file (a new
        inode at the same path): the next reload serves the older version again."""
        from models.tracking import CHAMPION, set_alias, store_client

        server = registry_server
        database = sqlite_file(registry_uri())
        backup, original = database.with_name("restored.db"), database.with_name("original.db")
        _sqlite_copy(database, backup)  # champion: version 1
        # the live file stays reachable under a second name, to be put back (the test process and the
        # other modules' publishers may hold connections to it)
        os.link(database, original)
        try:
            set_alias(CHAMPION, int(challenger.version))
            status, body, _ = _reload(server)
            assert (status, body["version"]) == (200, challenger.version), body
            assert _served_version(server) == challenger.version

            inode = database.stat().st_ino
            os.replace(backup, database)
            assert database.stat().st_ino != inode
            status, body, took = _reload(server)
            assert (status, body["previous_version"], body["version"]) == (
                200,
                challenger.version,
                champion.version,
            ), body
            assert took < RELOAD_S
            assert _served_version(server) == champion.version
            swap = f"event=swap from={challenger.version} to={champion.version} source=models:/eta-model@champion"
            wait_for(lambda: _logged(server, swap), RECOVERY_S, "the swap's log line")
        finally:
            set_alias(CHAMPION, int(champion.version), client=store_client(f"sqlite:///{original}"))
            os.replace(original, database)
            backup.unlink(missing_ok=True)
        wait_for(lambda: _served_version(server) == champion.version, RECOVERY_S, "the champion back")

    def test_shutdown_is_bounded_after_the_faults(self, registry_server) -> None:
        _shuts_down_in_bounded_time(registry_server)


# ---- a server on an empty ETA_HOME: no registry, an empty registry, then a champion ---------------------


@pytest.fixture(scope="class")
def empty_home(tmp_path_factory) -> tuple[Path, Path, str]:
    """An empty ETA_HOME, the registry file it would hold (absent) and its URI."""
    home = tmp_path_factory.mktemp("faults-empty") / "eta_home"
    home.mkdir()
    database = home / "mlflow" / "mlflow.db"
    return home, database, f"sqlite:///{database}"


@pytest.fixture(scope="class")
def empty_server(empty_home) -> Iterator[Server]:
    home, _, uri = empty_home
    env = server_env(ETA_HOME=str(home), MLFLOW_TRACKING_URI=uri, ETA_SERVE_POLL_SECONDS=POLL)
    with eta_serve_live(env, home.parent / "server.log") as running:
        yield running


class TestWithoutAChampion:
    def test_without_a_registry_the_server_is_alive_not_ready_and_says_why(
        self, empty_server, empty_home
    ) -> None:
        """The server starts and answers /livez (the fixture waited for it); /readyz and /eta give the
        reason; the registry database is not created by a service that only reads it."""
        _, database, uri = empty_home
        workers = {p for p, v in _descendants(empty_server.process.pid).items() if "publisher" not in v[1]}
        assert _get(empty_server, "/livez").status_code == 200
        reason = {"error": f"registry at {uri} cannot be read: no registry database at {database}"}
        wait_for(lambda: _answers(empty_server, "/readyz") == (503, reason), RECOVERY_S, "/readyz's reason")
        assert _answers(empty_server, "/eta") == (503, reason)
        assert _get(empty_server, "/livez").status_code == 200
        failed = f"event=check_failed serving=None reason={reason['error']}"
        wait_for(lambda: _logged(empty_server, failed), RECOVERY_S, "the failed check's log line")
        assert not database.exists()
        assert not database.parent.exists()
        # the worker did not restart meanwhile
        assert workers <= set(_descendants(empty_server.process.pid))

    def test_an_empty_registry_has_no_model_registered(self, empty_server, empty_home) -> None:
        from models.tracking import store_client

        _, database, uri = empty_home
        database.parent.mkdir()
        staged = database.with_name("staged.db")
        store_client(f"sqlite:///{staged}").search_registered_models()  # an MLflow store, no model in it
        os.replace(staged, database)
        reason = {"error": f"no model registered as eta-model@champion at {uri}"}
        wait_for(lambda: _answers(empty_server, "/readyz") == (503, reason), RECOVERY_S, "/readyz's reason")
        assert _answers(empty_server, "/eta") == (503, reason)
        assert _get(empty_server, "/livez").status_code == 200

    def test_a_champion_that_appears_is_picked_up(self, empty_server, empty_home, champion) -> None:
        """The package's registry restored here (its artifacts are where it recorded them): the server
        serves its champion within a few polls, without a reload."""
        _, database, _ = empty_home
        # written into the registry file the server reads (same inode), as a promotion there would be; a
        # file moved over it is the replaced-registry fault, tested above
        _sqlite_copy(sqlite_file(registry_uri()), database)
        ready = {"ready": True, "detail": f"serving eta-model v{champion.version}"}
        wait_for(lambda: _answers(empty_server, "/readyz") == (200, ready), RECOVERY_S, "the champion served")
        assert _served_version(empty_server) == champion.version
        assert _logged(
            empty_server, f"event=load from=None to={champion.version} source=models:/eta-model@champion"
        )

    def test_a_killed_publisher_is_noticed_before_its_parent_reaps_it(self, empty_server) -> None:
        server = empty_server
        publishers = _publishers(server.process.pid)
        assert [v[0] for v in publishers.values()] == [server.process.pid]  # `eta serve` started it
        (first,) = publishers
        os.kill(server.process.pid, signal.SIGSTOP)  # the arbiter: it reaps no child meanwhile
        try:
            os.kill(first, signal.SIGKILL)
            new = set()
            new = wait_for(
                lambda: set(_publishers(server.process.pid)) - {first}, NOTICE_S, "a new publisher"
            )
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
            if not new:  # once the arbiter has reaped the dead one, the worker replaces it
                wait_for(
                    lambda: set(_publishers(server.process.pid)) - {first}, RECOVERY_S, "a new publisher"
                )

    def test_shutdown_is_bounded(self, empty_server) -> None:
        _shuts_down_in_bounded_time(empty_server)
