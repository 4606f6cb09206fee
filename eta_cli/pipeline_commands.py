"""CLI commands of the orchestration layer: the demo job, the local UIs, the drift-retraining backtest.

Heavy imports stay inside the command bodies so that `eta --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from data_contracts.names import SCENARIO_NAMES, spoken
from pipelines.ui import DAGSTER_PORT, MLFLOW_PORT


def _quiet_libraries() -> None:
    """Keep the console for what the command reports: MLflow's INFO lines, its artifact progress bars and
    Dagster's beta-API warnings still reach the run logs and MLflow, not the terminal."""
    import logging
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow sets its loggers' level on import
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(beta|preview|experimental).*")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def demo(
    days: Annotated[int, typer.Option(min=10, help="Days of the synthetic city to simulate.")] = 42,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 7,
    trips_per_day: Annotated[int, typer.Option(min=100, help="Legs per day.")] = 4000,
    monitor_days: Annotated[
        int, typer.Option(min=1, help="Last days served and monitored by the champion.")
    ] = 7,
) -> None:
    """Run the real Dagster job on the synthetic city, against the instance under ETA_HOME: ingest and check
    every day, train/evaluate/promote on the window, serve and monitor the last days, ask the drift sensor."""
    from rich.console import Console

    from pipelines.demo import run_demo

    _quiet_libraries()
    if monitor_days >= days - 3:
        _fail(f"--monitor-days must leave at least 3 days to train on (days={days})")
    run_demo(days, seed, trips_per_day, monitor_days, Console())


def ui(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback).")] = "127.0.0.1",
    dagster_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Dagster webserver port.")
    ] = DAGSTER_PORT,
    mlflow_port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port.")] = MLFLOW_PORT,
) -> None:
    """Dagster webserver + daemon (runs the nightly schedule and the drift sensor) and the MLflow UI, on
    loopback, until Ctrl-C; every process is stopped with its process group."""
    import signal
    import time

    from data_contracts.home import eta_home
    from models.tracking import tracking_uri, ui_link
    from pipelines import ui as services
    from pipelines.instance import prepare_dagster_home

    if host not in ("127.0.0.1", "localhost", "::1"):
        _fail("the UIs have no authentication: bind them to loopback (127.0.0.1)")
    home = eta_home()
    dagster_home = prepare_dagster_home()
    (home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow_url = f"http://{host}:{mlflow_port}"
    env = services.environment(home, dagster_home, mlflow_url)
    logs = home / "logs"
    # the UI only browses runs: MLflow 3's job runner would add ten worker processes to a two-core machine
    mlflow_env = {
        **env,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "false",
    }
    started = [
        services.start(
            "mlflow",
            services.mlflow_command(host, mlflow_port, tracking_uri()),
            mlflow_env,
            logs / "mlflow.log",
            mlflow_url,
        ),
        services.start(
            "dagster-webserver",
            services.webserver_command(host, dagster_port),
            env,
            logs / "dagster-webserver.log",
            f"http://{host}:{dagster_port}",
        ),
        services.start("dagster-daemon", services.daemon_command(), env, logs / "dagster-daemon.log"),
    ]
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        typer.echo(f"state: {home} (DAGSTER_HOME={dagster_home}); logs in {logs}")
        for service in started:
            if service.url and not stopping:
                up = services.wait_until_up(service, "/server_info" if "dagster" in service.name else "")
                status = "up" if up else f"NOT up (see {service.log})"
                # MLflow opens in its model-training view from this address (GenAI otherwise)
                shown = ui_link(service.url, "experiments") if service.name == "mlflow" else service.url
                typer.echo(f"{service.name:18s} {shown}  {status}")
        typer.echo("dagster-daemon     running the nightly schedule and the drift sensor")
        typer.echo("Ctrl-C stops all three.")
        while not stopping:
            dead = [s for s in started if s.process.poll() is not None]
            if dead:
                typer.secho(f"{dead[0].name} exited; see {dead[0].log}", err=True, fg=typer.colors.RED)
                break
            time.sleep(1.0)
    finally:
        for service in reversed(started):
            code = services.stop(service)
            typer.echo(f"stopped {service.name} (exit {code})")


def backtest(
    scenario: Annotated[
        str, typer.Option(help=f"{spoken(SCENARIO_NAMES)} (synthetic source).")
    ] = "regional_slowdown",
    days: Annotated[int, typer.Option(min=5, help="Days to replay.")] = 60,
    retrain: Annotated[
        list[str], typer.Option(help="on (drift sensor), off or nightly; repeat to run several.")
    ] = ["on"],  # noqa: B006 (typer reads the default)
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summaries as one JSON object.")
    ] = False,
    trips_per_day: Annotated[int, typer.Option(min=100, help="Legs per simulated day.")] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 7,
    onset_day: Annotated[int, typer.Option(min=0, help="Day the scenario's drift starts.")] = 30,
    window_days: Annotated[int, typer.Option(min=3, help="Training window (and warm-up) in days.")] = 28,
    source: Annotated[
        str, typer.Option(help="synthetic, or citibike (the Jersey City months).")
    ] = "synthetic",
    start: Annotated[str | None, typer.Option(help="First day (default: the source's first day).")] = None,
) -> None:
    """Replay days through the real Dagster jobs: serve each day with the morning's champion, monitor it,
    retrain by strategy; writes a per-day table and a coverage-over-time plot comparing strategies."""
    from rich.console import Console

    from pipelines.backtest import STRATEGIES

    unknown = [s for s in retrain if s not in STRATEGIES]
    if unknown:
        _fail(f"--retrain must be one of {', '.join(STRATEGIES)}; got {unknown}")
    if source not in ("synthetic", "citibike"):
        _fail(f"--source must be synthetic or citibike, got {source!r}")
    if days <= window_days:
        _fail(f"--days ({days}) must exceed the training window ({window_days})")
    _quiet_libraries()
    console = Console(stderr=True, quiet=json_output)
    try:
        payload = _run_backtests(
            scenario, days, retrain, trips_per_day, seed, onset_day, window_days, source, start, console
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if json_output:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    _print_backtest(payload, console)


def _run_backtests(
    scenario, days, strategies, trips_per_day, seed, onset_day, window_days, source, start, console
):
    from data_contracts.home import eta_home
    from data_contracts.synthetic.scenarios import SCENARIO_NAMES
    from pipelines.backtest import citibike_plan, run_plans, synthetic_plan

    if source == "citibike":
        first = start or "2017-02-01"
        folder = eta_home() / "backtests" / f"citibike-{first}-{days}d"
        plans = [citibike_plan(s, days, folder, first, window_days) for s in strategies]
    else:
        if scenario not in SCENARIO_NAMES:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIO_NAMES)}")
        if start is not None:
            raise ValueError(
                "--start is for --source citibike; the simulated city starts on its own first day"
            )
        folder = (
            eta_home() / "backtests" / f"{scenario}-{days}d-onset{onset_day}-seed{seed}-{trips_per_day}legs"
        )
        plans = [
            synthetic_plan(s, scenario, days, folder, trips_per_day, seed, onset_day, window_days)
            for s in strategies
        ]
    with console.status("replaying days through Dagster", spinner="dots") as status:
        return run_plans(plans, folder, progress=lambda line: status.update(line))


def _print_backtest(payload: dict, console) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(width=max(Console().width, 120))
    truth = any(
        "recovery" in s or s["alarms"]["first_alarm_after_onset"] is not None
        for s in payload["strategies"].values()
    )
    table = Table(title=f"backtest {Path(payload['folder']).name}")
    alarm_column = "false alarms (before onset)" if truth else "alarm days (no ground truth)"
    columns = [
        alarm_column,
        "first alarm after onset",
        "retrainings",
        "promotions",
        "blocked",
        "mean 80% cov.",
    ]
    columns += ["district 80% cov. onset+3..end", "back within ±3 pts after", "goal met"]
    table.add_column("strategy")
    for column in columns:
        table.add_column(column, justify="right")
    for name, summary in payload["strategies"].items():
        alarms = summary["alarms"]
        rec = summary.get("recovery") or {}
        first = alarms["first_alarm_after_onset"]
        row = [
            f"{alarms['false_alarms']}/{alarms['quiet_days']}",
            "-" if first is None else f"day {first}",
            str(summary["retrainings"]),
            str(summary["promotions"]),
            str(summary["blocked"]),
            _share(summary["mean_coverage_80"]),
        ]
        if rec:
            delay = rec["days_to_recover"]
            row += [
                _share(rec["pooled_after_3_days"]),
                "never" if delay is None else f"{delay} d",
                "yes" if rec["goal_met"] else "no",
            ]
        else:
            row += ["-", "-", "-"]
        table.add_row(name, *row)
    out.print(table)
    for name, summary in payload["strategies"].items():
        if summary.get("days_served") == 0:
            out.print(
                f"[yellow]{name}: no day was served, because no model became champion "
                f"({summary['retrainings']} trained, {summary['blocked']} blocked by the calibration check); "
                "the per-day table says why[/yellow]"
            )
    out.print(f"per-day tables and summaries in {payload['folder']}; plot {payload['plot']}")


def _share(value: float | None) -> str:
    """A coverage share for the table; '-' where there is none (no day served, so nothing to average)."""
    return "-" if value is None or value != value else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the `eta` app."""
    app.command()(demo)
    app.command()(ui)
    app.command()(backtest)
