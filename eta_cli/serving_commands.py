"""CLI commands of the serving layer (BentoML). Heavy imports stay inside commands."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

SERVICE = "serving.service:EtaService"


def serve(
    host: Annotated[
        str,
        typer.Option(help="Interface to bind; loopback unless an API key and an admin key are configured."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 3000,
    bento: Annotated[
        str | None,
        typer.Option(help="Serve a built Bento (e.g. eta_service:latest) instead of the source tree."),
    ] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(min=0, help="How often to check the champion alias (0 = never).")
    ] = None,
) -> None:
    """Start the ETA HTTP service (OpenAPI page at http://HOST:PORT/). Settings: ETA_SERVE_* variables.

    Serving from the registry, a publisher process keeps the champion on local disk for the service
    (serving/README.md)."""
    from data_contracts.home import PROJECT_ROOT
    from serving.config import ServingConfig
    from serving.guard import is_loopback
    from serving.packaging import use_project_bentoml_home

    try:
        config = ServingConfig.from_env()
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    missing = [
        name
        for name, key in (("ETA_SERVE_API_KEY", config.api_key), ("ETA_SERVE_ADMIN_KEY", config.admin_key))
        if not key
    ]
    if not is_loopback(host) and missing:
        typer.secho(
            f"error: refusing to serve on {host} without {' and '.join(missing)}; set them or bind 127.0.0.1",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    if poll_seconds is not None:
        os.environ["ETA_SERVE_POLL_SECONDS"] = str(poll_seconds)
        config = config.model_copy(update={"poll_seconds": poll_seconds})
    if bento is None and config.model_source != "bento":
        # the publisher starts first: it imports mlflow and downloads the champion while `bentoml serve`
        # starts, and the worker finds it through the environment (serving/publisher.py)
        from models.tracking import tracking_uri
        from serving.model_source import (
            PUBLISHER_PID,
            published_folder,
            publisher_poll_s,
            start_publisher,
        )

        uri = tracking_uri()
        folder = published_folder(uri, config.model_name, config.model_alias)
        publisher = start_publisher(
            folder, uri, config.model_name, config.model_alias, publisher_poll_s(config.poll_seconds)
        )
        os.environ[PUBLISHER_PID] = str(publisher.pid)
    use_project_bentoml_home()
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        bento or SERVICE,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if bento is None:
        command += ["--working-dir", str(PROJECT_ROOT)]
    typer.echo(f"ETA service on http://{host}:{port}/ (OpenAPI page; schema at /docs.json)", err=True)
    os.execv(sys.executable, command)  # same process: the publisher's parent stays alive while serving


def build_bento(
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    rebuild: Annotated[
        bool, typer.Option(help="Build a new Bento even if one already carries the champion's version.")
    ] = False,
) -> None:
    """Export models:/eta-model@champion into the BentoML model store and build a Bento that carries it
    (once per champion version: an existing Bento around the same version is reused)."""
    from serving.packaging import build_bento as build

    try:
        built = build(reuse=not rebuild)
    except (ValueError, RuntimeError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    if json_output:
        typer.echo(json.dumps(built.as_dict()))
        return
    typer.echo(f"built {built.tag} carrying {built.model_tag} (MLflow version {built.model_version})")
    typer.echo(f"serve it with: eta serve --bento {built.tag}")


def export_model() -> None:
    """Copy models:/eta-model@champion into the BentoML model store (what `bentoml build` packs)."""
    from serving.packaging import export_champion, use_project_bentoml_home

    use_project_bentoml_home()
    try:
        tag, version = export_champion()
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    typer.echo(f"exported MLflow version {version} as {tag}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the `eta` app."""
    app.command()(serve)
    app.command("build-bento")(build_bento)
    app.command("export-model")(export_model)
