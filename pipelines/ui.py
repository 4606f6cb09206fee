"""Start and stop the local UIs: Dagster webserver, Dagster daemon, MLflow UI, each in its own process group.

A child started in its own session gets no terminal signals from ours, and stopping it means signalling its
whole group (the webserver and daemon start code-server subprocesses): SIGTERM first, SIGKILL if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from data_contracts.home import PROJECT_ROOT

DEFINITIONS_MODULE = "pipelines.definitions"
DAGSTER_PORT, MLFLOW_PORT = 3001, 5000  # `eta serve` uses 3000
# where the MLflow UI runs, for the links Dagster shows; `eta ui` sets it for the processes it starts
MLFLOW_UI_ENV = "ETA_MLFLOW_UI_URL"


def mlflow_ui_url() -> str:
    """The MLflow UI address links should point at: ETA_MLFLOW_UI_URL, else where `eta ui` starts it."""
    return os.environ.get(MLFLOW_UI_ENV, "").rstrip("/") or f"http://127.0.0.1:{MLFLOW_PORT}"


def environment(home: Path, dagster_home: Path, mlflow_url: str) -> dict[str, str]:
    """The environment of the processes `eta ui` starts: one state folder, and links to its MLflow UI."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "ETA_HOME": str(home),
        MLFLOW_UI_ENV: mlflow_url,
    }


def _bin(name: str) -> str:
    """An executable of this environment (beside the running interpreter)."""
    return str(Path(sys.executable).parent / name)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def webserver_command(host: str, port: int) -> list[str]:
    return [_bin("dagster-webserver"), "-h", host, "-p", str(port), "-m", DEFINITIONS_MODULE]


def daemon_command() -> list[str]:
    return [_bin("dagster-daemon"), "run", "-m", DEFINITIONS_MODULE]


def mlflow_command(host: str, port: int, tracking_uri: str) -> list[str]:
    return [
        _bin("mlflow"),
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--registry-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    url: str | None
    log: Path


def start(name: str, command: list[str], env: dict[str, str], log: Path, url: str | None = None) -> Service:
    """Start `command` in a new session (its own process group), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Service(name, process, url, log)


def wait_until_up(service: Service, path: str = "", timeout: float = 240.0) -> bool:
    """Poll the service's URL until it answers (False if it exits or the time runs out)."""
    import urllib.request  # here: `eta --help` imports this module for its port defaults

    if service.url is None:
        return service.process.poll() is None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(service.url + path, timeout=5) as response:
                if response.status < 500:
                    return True
        except OSError:
            pass
        time.sleep(1.0)
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(service: Service, grace: float = 20.0) -> int | None:
    """SIGTERM the service's process group and wait until every member is gone (the leader and the code
    servers it started); SIGKILL the group after `grace` seconds. Returns the leader's exit code."""
    process = service.process
    pgid = process.pid  # started with start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so that a finished leader does not keep the group alive as a zombie
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return process.wait(timeout=10)
