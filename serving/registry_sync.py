"""The registry sidecar: a child process that talks to the MLflow registry on the service's behalf.

Importing mlflow and opening its sqlite store took the worker 10-19 s of CPU at start on this 2-core machine
(`import mlflow` 4-12.5 s, the sqlite store's client 5.5-7 s), all of it before /readyz and all of it after
the worker had imported BentoML. The sidecar does that work in its own process, on the other core, while
the worker imports polars and the tree libraries; the worker itself never imports mlflow. It answers two
questions over a local socket, one JSON object per connection:

    {"op": "resolve", "name": "eta-model", "alias": "champion"}
        -> {"version": "3", "run_id": "...", "bundle": "/.../artifacts/eta_model"}   (version null: no alias)
    {"op": "fetch", "name": "eta-model", "version": "3"}  -> the same fields for that version

Every resolve asks the registry again (the service's poller decides how often). A version's artifacts are
downloaded once, into the sidecar's own folder (the last KEEP_VERSIONS asked for are kept), and the worker
loads the `EtaModel` bundle from there with no mlflow. The sidecar exits when the process that started it
exits, and removes its folder.

`eta serve` starts one before `bentoml serve` (prefetching the champion) and names its socket in
ETA_SERVE_REGISTRY_SYNC; the worker inherits the variable and finds mlflow imported and the model
downloaded. Without the variable, the first `RegistrySource` in a process starts its own.

    python -m serving.registry_sync --address SOCKET --tracking-uri URI [--prefetch NAME@ALIAS]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Client, Listener
from pathlib import Path

import yaml

from models.tracking import MODEL_ARTIFACT

ENV_ADDRESS = "ETA_SERVE_REGISTRY_SYNC"
# the first answer waits for the sidecar to import mlflow (up to ~19 s measured here); the rest ~10 ms
ANSWER_TIMEOUT_S = 300.0
KEEP_VERSIONS = 3  # downloads kept on disk: the one served, and the versions asked for just before it


class RegistrySyncError(RuntimeError):
    """The sidecar could not be reached, or the registry refused what it was asked."""


# ---------------------------------------------------------------------------------------------------------
# worker side


class RegistrySync:
    """A connection to a sidecar: `ask` sends one request and returns its answer."""

    def __init__(self, address: str, tracking_uri: str, process: subprocess.Popen | None = None) -> None:
        self.address, self.tracking_uri, self.process = address, tracking_uri, process

    @classmethod
    def start(cls, tracking_uri: str, prefetch: tuple[str, str] | None = None) -> RegistrySync:
        """Start a sidecar for `tracking_uri` as a child of this process (it exits when this process does)."""
        folder = tempfile.mkdtemp(prefix="eta-registry-")  # private (0700): the socket and the downloads
        address = os.path.join(folder, "socket")
        command = [sys.executable, "-m", "serving.registry_sync", "--address", address]
        command += ["--tracking-uri", tracking_uri, "--parent", str(os.getpid())]
        if prefetch is not None:
            command += ["--prefetch", "@".join(prefetch)]
        env = dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        sync = cls(address, tracking_uri, process)
        atexit.register(sync.stop)
        return sync

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def alive(self) -> bool:
        """Still there: our child has not exited, or (a sidecar started elsewhere) its folder exists, which
        its starter creates first and the sidecar removes when it exits."""
        if self.process is not None:
            return self.process.poll() is None
        return os.path.isdir(os.path.dirname(self.address))

    def ask(self, request: dict[str, object], timeout_s: float = ANSWER_TIMEOUT_S) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        connection = self._connect(deadline)
        with connection:
            connection.send_bytes(json.dumps({**request, "tracking_uri": self.tracking_uri}).encode())
            if not connection.poll(max(0.0, deadline - time.monotonic())):
                raise RegistrySyncError(
                    f"the registry sidecar did not answer {request} within {timeout_s:.0f} s"
                )
            try:
                answer = json.loads(connection.recv_bytes())
            except EOFError as exc:
                raise RegistrySyncError(f"the registry sidecar closed the connection on {request}") from exc
        if "error" in answer:
            raise RegistrySyncError(f"registry at {self.tracking_uri}: {answer['error']}")
        return answer

    def _connect(self, deadline: float):
        while True:
            try:
                return Client(self.address, family="AF_UNIX")
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                # the sidecar binds its socket first thing; until then (or if it died) there is nothing there
                if not self.alive():
                    code = f" with code {self.process.returncode}" if self.process is not None else ""
                    raise RegistrySyncError(f"the registry sidecar at {self.address} exited{code}") from exc
                if time.monotonic() > deadline:
                    raise RegistrySyncError(f"no registry sidecar listening at {self.address}") from exc
                time.sleep(0.02)


_shared: dict[str, RegistrySync] = {}
_shared_lock = threading.Lock()


def sidecar_for(tracking_uri: str, prefetch: tuple[str, str] | None = None) -> RegistrySync:
    """This process's sidecar for `tracking_uri`: the one ETA_SERVE_REGISTRY_SYNC names while it runs, else
    one started now (once per process and URI; again if it died). A named sidecar that serves another
    URI refuses every request, naming both."""
    with _shared_lock:
        sync = _shared.get(tracking_uri)
        if sync is None or not sync.alive():
            address = os.environ.get(ENV_ADDRESS)
            adopted = RegistrySync(address, tracking_uri) if address and sync is None else None
            if adopted is not None and adopted.alive():
                sync = adopted
            else:
                sync = RegistrySync.start(tracking_uri, prefetch)
            _shared[tracking_uri] = sync
        return sync


# ---------------------------------------------------------------------------------------------------------
# sidecar side (imports mlflow)


class Registry:
    """Alias lookups and version downloads for one tracking URI; downloads land under `folder`."""

    def __init__(self, tracking_uri: str, folder: Path, keep_versions: int = KEEP_VERSIONS) -> None:
        from mlflow import MlflowClient

        self.tracking_uri, self.folder, self.keep_versions = tracking_uri, Path(folder), keep_versions
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        # (name, version) -> answer, oldest first: a long-lived service sees a new version every retraining
        self._downloaded: OrderedDict[tuple[str, str], dict[str, object]] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, name: str, alias: str) -> dict[str, object]:
        from mlflow.exceptions import MlflowException

        try:
            version = str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return {"version": None, "detail": f"no alias {alias!r} on registered model {name!r}"}
        return self.fetch(name, version)

    def fetch(self, name: str, version: str) -> dict[str, object]:
        """Download the version's artifacts once; the path of its `EtaModel` bundle and its run id. Only
        the `keep_versions` most recently asked-for downloads are kept."""
        with self._lock:
            known = self._downloaded.get((name, version))
            if known is not None:
                self._downloaded.move_to_end((name, version))
                return known
            answer = self._download(name, version)
            self._downloaded[(name, version)] = answer
            while len(self._downloaded) > self.keep_versions:
                (old_name, old_version), _ = self._downloaded.popitem(last=False)
                shutil.rmtree(self._target(old_name, old_version), ignore_errors=True)
            return answer

    def _target(self, name: str, version: str) -> Path:
        return self.folder / "models" / name / version

    def _download(self, name: str, version: str) -> dict[str, object]:
        from mlflow.artifacts import download_artifacts

        run_id = self.client.get_model_version(name, version).run_id
        source = self.client.get_model_version_download_uri(name, version)  # where the files are stored
        staging = Path(tempfile.mkdtemp(dir=self.folder, prefix="download-"))
        try:
            local = Path(download_artifacts(artifact_uri=source, dst_path=str(staging)))
            # the MLmodel file read as the YAML it is: mlflow's `Model.load` would import pandas (see main)
            flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"].get("python_function", {})
            artifacts = flavor.get("artifacts") or {}
            if MODEL_ARTIFACT not in artifacts:
                raise ValueError(
                    f"{name} version {version} carries no {MODEL_ARTIFACT!r} artifact: not an ETA model"
                )
            target = self._target(name, version)
            target.parent.mkdir(parents=True, exist_ok=True)
            local.rename(target)  # complete or absent: never a half-downloaded version
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {
            "version": version,
            "run_id": run_id,
            "bundle": str(target / artifacts[MODEL_ARTIFACT]["path"]),
        }

    def answer(self, request: dict[str, object]) -> dict[str, object]:
        if request.get("tracking_uri") != self.tracking_uri:
            return {"error": f"this sidecar serves {self.tracking_uri}, not {request.get('tracking_uri')}"}
        try:
            if request.get("op") == "resolve":
                return self.resolve(str(request["name"]), str(request["alias"]))
            if request.get("op") == "fetch":
                return self.fetch(str(request["name"]), str(request["version"]))
            return {"error": f"unknown request {request!r}"}
        except Exception as exc:  # answered, never fatal: the worker logs it and keeps its model
            return {"error": f"{type(exc).__name__}: {exc}"}


def _serve(listener: Listener, registry: Registry) -> None:
    while True:
        connection = listener.accept()
        threading.Thread(target=_answer_one, args=(connection, registry), daemon=True).start()


def _answer_one(connection, registry: Registry) -> None:
    with connection:
        try:
            request = json.loads(connection.recv_bytes())
        except (EOFError, ValueError):
            return
        answer = json.dumps(registry.answer(request)).encode()
        try:
            connection.send_bytes(answer)
        except OSError:  # the asker gave up waiting and closed its end
            return


def _exit_with_parent(parent: int, folder: Path) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


# Imported by mlflow only for features the sidecar never uses (its dataset constructors, which mlflow imports
# inside `suppress(ImportError)`, and model signatures): marked as not installed in this process, mlflow's
# import and a first answer took 11.7 s instead of 16.4 s (same run, 2 cores).
UNUSED_BY_THE_SIDECAR = ("pandas", "polars", "pyarrow", "scipy", "sklearn")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="Unix socket to listen on (in a private folder).")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--parent", type=int, default=os.getppid(), help="Exit when this process is gone.")
    parser.add_argument("--prefetch", help="NAME@ALIAS to resolve and download at once.")
    args = parser.parse_args(argv)
    folder = Path(args.address).parent
    listener = Listener(args.address, family="AF_UNIX", backlog=16)  # first: requests queue meanwhile
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through `finally`: the folder is removed
    threading.Thread(target=_exit_with_parent, args=(args.parent, folder), daemon=True).start()
    for name in UNUSED_BY_THE_SIDECAR:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  (Python's own "not installed" mark)
    try:
        registry = Registry(args.tracking_uri, folder)
        if args.prefetch:
            name, _, alias = args.prefetch.partition("@")
            request = {"op": "resolve", "name": name, "alias": alias, "tracking_uri": args.tracking_uri}
            answer = registry.answer(request)
            if "error" in answer:
                print(f"registry sidecar: prefetching {args.prefetch}: {answer['error']}", file=sys.stderr)
        _serve(listener, registry)
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
