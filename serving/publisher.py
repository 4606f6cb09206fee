"""The registry publisher: a small process that keeps a local model folder in step with the MLflow registry.

The service process never imports mlflow (importing it and opening a store cost the worker 10-19 s of CPU
at start on two cores). The publisher does, in its own process, and talks to the service through files
only: every check it opens the registry anew (so a restored or replaced store is read as it is now),
resolves `name@alias`, downloads a version it does not have yet, and then replaces `status.json`
atomically:

    {"name", "alias", "tracking_uri", "version": "3" or null, "bundle": ".../v3/eta_model", "run_id",
     "checked_at": unix seconds, "error": null or why the registry could not be read, "pid"}

`version` null with no error: no model is registered under that alias (`detail` says so). A check is made
every `--poll` seconds, and at once when the `check` file is touched (the service's /admin/reload). The
publisher never writes to the registry: a sqlite store that does not exist is reported, not created. It
exits when the process that started it does.

    python -m serving.publisher --folder DIR --tracking-uri URI [--name eta-model] [--alias champion] [--poll 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from data_contracts.safe_io import first_line, write_atomic
from models.tracking import MODEL_ARTIFACT, display_uri

STATUS, CHECK = "status.json", "check"
KEEP_VERSIONS = 3  # downloads kept: the one served and the two before it (a rollback needs no download)
# Imported by mlflow only for features the publisher never uses (datasets, signatures): marked as not
# installed, mlflow's import and a first answer took 11.7 s instead of 16.4 s on two cores.
UNUSED = ("pandas", "polars", "pyarrow", "scipy", "sklearn")


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite tracking URI (None for another kind of store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


class Publisher:
    """One registry and one local folder; `check()` brings the folder up to date with the alias."""

    def __init__(self, folder: Path, tracking_uri: str, name: str, alias: str) -> None:
        self.folder, self.tracking_uri, self.name, self.alias = Path(folder), tracking_uri, name, alias

    def check(self) -> dict[str, object]:
        """Read the registry, download what the alias names if needed, write and return the status."""
        status: dict[str, object] = {
            "name": self.name,
            "alias": self.alias,
            "tracking_uri": display_uri(self.tracking_uri),
            "checked_at": time.time(),
            "pid": os.getpid(),
            "error": None,
        }
        try:
            status.update(self._resolve())
        except Exception as exc:  # reported to the service, which keeps its model and says why
            previous = read_status(self.folder) or {}
            status.update({k: previous.get(k) for k in ("version", "bundle", "run_id")})
            status["error"] = (
                f"registry at {display_uri(self.tracking_uri)} cannot be read: {first_line(exc, 300)}"
            )
        finally:
            _close_connections()
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(status)
        write_atomic(self.folder / STATUS, lambda tmp: tmp.write_text(text))
        return status

    def _resolve(self) -> dict[str, object]:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        database = sqlite_file(self.tracking_uri)
        if database is not None and not database.exists():
            raise FileNotFoundError(f"no registry database at {database}")
        client = MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
        )  # anew each time
        try:
            found = client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            return {
                "version": None,
                "bundle": None,
                "run_id": None,
                "detail": f"no model registered as {self.name}@{self.alias} at {display_uri(self.tracking_uri)}",
            }
        version = str(found.version)
        return {"version": version, "bundle": str(self._download(client, version)), "run_id": found.run_id}

    def _download(self, client, version: str) -> Path:
        """The version's EtaModel bundle on local disk (downloaded once; complete or absent)."""
        target = self.folder / f"v{version}"
        if not (target / "MLmodel").is_file():
            from mlflow.artifacts import download_artifacts

            self.folder.mkdir(parents=True, exist_ok=True)
            source = client.get_model_version_download_uri(self.name, version)
            staging = Path(tempfile.mkdtemp(dir=self.folder, prefix=".download-"))
            try:
                local = Path(download_artifacts(artifact_uri=source, dst_path=str(staging)))
                shutil.rmtree(target, ignore_errors=True)
                local.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self._keep_latest(target)
        return bundle_of(target, f"{self.name} version {version}")

    def _keep_latest(self, served: Path) -> None:
        folders = sorted(
            (p for p in self.folder.glob("v*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in [p for p in folders if p != served][KEEP_VERSIONS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)


def _close_connections() -> None:
    """Close the database connections MLflow pools for the process (one engine per URI, kept by its stores),
    so that the next check opens the registry anew: a pooled sqlite connection would go on reading a file
    that was since replaced (a restored backup), and a pooled server connection one that was since dropped."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (RegistryStore, TrackingStore):
        for engine in list(store._engine_map.values()):
            engine.dispose()  # the engine stays usable: it connects again when next asked


def bundle_of(model_folder: Path, what: str) -> Path:
    """The EtaModel bundle inside a downloaded MLflow model (its MLmodel file read as the YAML it is)."""
    flavor = yaml.safe_load((model_folder / "MLmodel").read_text())["flavors"].get("python_function", {})
    artifacts = flavor.get("artifacts") or {}
    if MODEL_ARTIFACT not in artifacts:
        raise ValueError(f"{what} carries no {MODEL_ARTIFACT!r} artifact: not an ETA model")
    return model_folder / artifacts[MODEL_ARTIFACT]["path"]


def read_status(folder: Path) -> dict[str, object] | None:
    """The last status a publisher wrote into `folder`, None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / STATUS).read_text())
    except (FileNotFoundError, ValueError):
        return None


def request_check(folder: Path) -> None:
    """Ask the publisher of `folder` to check the registry now."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / CHECK).touch()


def run(publisher: Publisher, poll_s: float, parent: int | None) -> None:
    """Check every `poll_s` seconds and whenever the check file is touched, until the parent is gone."""
    check_file = publisher.folder / CHECK
    last = 0.0
    while parent is None or os.getppid() == parent:
        requested = check_file.exists()
        if requested or time.monotonic() - last >= poll_s:
            check_file.unlink(missing_ok=True)
            publisher.check()
            last = time.monotonic()
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--name", default="eta-model")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--poll", type=float, default=5.0, help="Seconds between checks.")
    parser.add_argument("--parent", type=int, default=os.getppid(), help="Exit when this process is gone.")
    parser.add_argument("--once", action="store_true", help="Check once and exit.")
    args = parser.parse_args(argv)
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  (Python's own "not installed" mark)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    publisher = Publisher(args.folder, args.tracking_uri, args.name, args.alias)
    if args.once:
        publisher.check()
        return
    run(publisher, args.poll, args.parent)


if __name__ == "__main__":
    main()
