"""Real processes for the serving tests: a fresh interpreter running a snippet, and a real server
(`bentoml serve`, or `eta serve` which wraps it) on a free loopback port, waited for and always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 300.0  # generous: the test machine is shared; the benchmark reports the real start time


@dataclass
class Server:
    url: str
    seconds_to_ready: float
    process: subprocess.Popen
    log: Path


def python_output(code: str, cwd: Path) -> str:
    """What a fresh interpreter prints running `code` in `cwd` (raises if it fails)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True, timeout=300
    ).stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BENTOML_CONFIG_OVERRIDES"}
    env.update(overrides)
    return env


def bentoml_serve(target: str, cwd: Path, env: dict[str, str], log: Path):
    """`bentoml serve TARGET` (the service in the source tree, or a built Bento by tag)."""
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return _serving(command, port, cwd, env, log)


def eta_serve(cwd: Path, env: dict[str, str], log: Path):
    """`eta serve`: the project's command, which starts the registry publisher and then `bentoml serve`."""
    port = free_port()
    command = [sys.executable, "-m", "eta_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return _serving(command, port, cwd, env, log)


@contextmanager
def _serving(command: list[str], port: int, cwd: Path, env: dict[str, str], log: Path) -> Iterator[Server]:
    started = time.monotonic()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            yield Server(url, _wait_ready(url, process, log, started), process, log)
        finally:
            _stop(process)


def _wait_ready(url: str, process: subprocess.Popen, log: Path, started: float) -> float:
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it was started in a new session), then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
