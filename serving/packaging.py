"""Build time: put the champion into the BentoML model store, then build the Bento that carries it.

`build_bento()` is what `eta build-bento` (and a Dagster asset downstream of promotion) calls. The Bento
then serves that model without reaching the registry (`serving.service.choose_source`).
Not imported by the service.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

import yaml

from data_contracts.home import PROJECT_ROOT, eta_home

BENTOFILE = PROJECT_ROOT / "bentofile.yaml"
BUILD_KEYS = ("name", "labels", "description", "include", "exclude", "envs", "docker", "python", "conda")


def use_project_bentoml_home() -> Path:
    """BentoML's stores under ETA_HOME (one folder for all runtime state) unless BENTOML_HOME is set.
    Call before bentoml touches its stores."""
    home = Path(os.environ.setdefault("BENTOML_HOME", str(eta_home() / "bentoml")))
    return home


def ensure_uv_on_path() -> None:
    """BentoML's build calls `uv` (found on PATH only); the Makefile installs it for the user if needed."""
    if shutil.which("uv"):
        return
    for candidate in (Path(sys.executable).parent / "uv", Path.home() / ".local" / "bin" / "uv"):
        if candidate.is_file():
            os.environ["PATH"] = f"{candidate.parent}{os.pathsep}{os.environ.get('PATH', '')}"
            return
    raise RuntimeError("building a Bento needs `uv` on PATH (`make install` sets it up)")


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    model_tag: str
    model_version: str
    path: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def export_champion(name: str = "eta-model", alias: str = "champion") -> tuple[str, str]:
    """Copy `models:/<name>@<alias>` into the BentoML model store as `<name>:v<version>` (once per version:
    registry versions are immutable). Returns (BentoML tag, MLflow version)."""
    import bentoml
    import mlflow
    from bentoml.exceptions import NotFound

    from models.pyfunc import load_eta_model
    from models.tracking import alias_version, tracking_uri
    from serving.model_source import BUNDLE_DIR

    version = alias_version(alias, name)
    if version is None:
        raise ValueError(
            f"no model under models:/{name}@{alias} at {tracking_uri()}; train and promote one first"
        )
    tag = f"{name}:v{version}"
    try:
        return str(bentoml.models.get(tag).tag), str(version)
    except NotFound:
        pass
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    model, metadata = load_eta_model(f"models:/{name}/{version}")
    labels = {
        "mlflow_name": name,
        "mlflow_version": str(version),
        "mlflow_alias": alias,
        "mlflow_run_id": metadata.run_id or "",
    }
    with bentoml.models.create(
        tag, labels=labels, metadata={"source": f"models:/{name}/{version}"}
    ) as stored:
        model.save(Path(stored.path) / BUNDLE_DIR)
    return tag, str(version)


def pinned(packages: list[str]) -> list[str]:
    """`name==<installed version>` for each package: the Bento installs what was tested here."""
    out = []
    for package in packages:
        try:
            out.append(f"{package}=={installed_version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def build_options(bentofile: Path, model_tag: str) -> dict[str, object]:
    """The bentofile's options with the model pinned to `model_tag` and packages pinned to installed versions."""
    config = yaml.safe_load(bentofile.read_text())
    unknown = set(config) - {*BUILD_KEYS, "service", "models"}
    if unknown:
        raise ValueError(f"{bentofile.name} has options this builder does not pass on: {sorted(unknown)}")
    options = {key: config[key] for key in BUILD_KEYS if key in config}
    python = dict(options.get("python") or {})
    python["packages"] = pinned(python.get("packages") or [])
    options["python"] = python
    options["models"] = [model_tag]
    return {"service": config["service"], **options}


def existing_bento(model_tag: str) -> object | None:
    """The newest Bento in the store already built around `model_tag`, if any."""
    import bentoml

    built = [b for b in bentoml.bentos.list() if b.info.labels.get("eta_model") == model_tag]
    return max(built, key=lambda b: b.info.creation_time) if built else None


def build_bento(
    bentofile: Path = BENTOFILE, name: str = "eta-model", alias: str = "champion", reuse: bool = True
) -> BuiltBento:
    """Export the champion and build a versioned Bento that carries exactly it (with `reuse`, a Bento
    already built around that model version is returned instead of building another)."""
    use_project_bentoml_home()
    import bentoml

    model_tag, model_version = export_champion(name, alias)
    if reuse:
        found = existing_bento(model_tag)
        if found is not None:
            return BuiltBento(str(found.tag), model_tag, model_version, found.path)
    ensure_uv_on_path()
    options = build_options(bentofile, model_tag)
    labels = {**(options.pop("labels", None) or {}), "eta_model": model_tag}  # type: ignore[dict-item]
    bento = bentoml.bentos.build(
        options.pop("service"), labels=labels, build_ctx=str(bentofile.parent), **options
    )  # type: ignore[arg-type]
    return BuiltBento(tag=str(bento.tag), model_tag=model_tag, model_version=model_version, path=bento.path)
