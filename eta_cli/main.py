"""`eta` — the command line of lastmile-eta.

Every command imports what it needs inside its body: the full stack (evidently, mlflow, dagster) takes
~17 s to import, and `eta --help` should answer in about a second.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from data_contracts.names import ADAPTER_NAMES, SCENARIO_NAMES, spoken
from data_contracts.safe_io import first_line
from eta_cli import pipeline_commands, serving_commands

app = typer.Typer(
    help="Calibrated delivery-leg ETAs: ingest trips, train, monitor drift and serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=None, default=str) + "\n")


@app.command()
def generate(
    out: Annotated[
        Path, typer.Option(help="Folder for the daily partitions (date=YYYY-MM-DD/trips.parquet).")
    ],
    days: Annotated[int, typer.Option(min=1, help="Number of days to simulate.")] = 60,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-01-05",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 7,
    scenario: Annotated[str, typer.Option(help=f"{spoken(SCENARIO_NAMES)}.")] = "stationary",
    trips_per_day: Annotated[
        int, typer.Option(min=1, help="Mean legs per day before scenario effects.")
    ] = 4000,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Simulate a city's delivery legs, with dated drift of known ground truth."""
    from rich.progress import Progress

    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file; give a folder for the daily partitions")

    from data_contracts.synthetic.generate import generate_city

    if scenario not in SCENARIO_NAMES:
        _fail(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIO_NAMES)}")
    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        _fail(f"--start must be a date YYYY-MM-DD, got {start!r}")
    with Progress(transient=True, disable=json_output) as progress:
        task = progress.add_task(f"generating {scenario}", total=days)
        summary = generate_city(
            out_dir=out,
            days=days,
            start=first_day,
            seed=seed,
            scenario=scenario,
            trips_per_day=trips_per_day,
            progress=lambda *_: progress.advance(task),
        )
    payload = summary.as_dict() if hasattr(summary, "as_dict") else dict(summary.__dict__)
    if json_output:
        _print_json(payload)
    else:
        typer.echo(f"wrote {payload.get('rows', '?')} legs over {days} days to {out}")
        typer.echo(json.dumps(payload, indent=2, default=str))


@app.command()
def ingest(
    source: Annotated[str, typer.Option(help=f"Adapter: {', '.join(ADAPTER_NAMES)}.")],
    input: Annotated[Path, typer.Option("--input", help="A file, or a folder of the source's files.")],
    out: Annotated[Path, typer.Option(help="Folder for valid.parquet and quarantine.parquet.")],
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping (generic adapter).")] = None,
    limits: Annotated[
        Path | None, typer.Option(help="YAML with contract limits (durations, speeds).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Map a source onto the trip contract: valid rows and a quarantine with reasons, nothing lost."""
    from rich.console import Console
    from rich.table import Table

    from data_contracts.ingest import ingest_to_folder
    from data_contracts.limits import ContractLimits

    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file; give a folder for valid.parquet and quarantine.parquet")

    try:
        contract_limits = ContractLimits.from_yaml(limits) if limits else ContractLimits()
        console = Console(stderr=True)
        with (
            console.status(f"ingesting {source} from {input}", spinner="dots")
            if not json_output
            else contextlib.nullcontext()
        ):
            summary = ingest_to_folder(source, input, out, mapping=mapping, limits=contract_limits)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc))
    if json_output:
        _print_json(summary)
        return
    table = Table(title=f"{source}: {summary['rows_in']} rows in")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("valid", str(summary["valid"]))
    for reason, count in sorted(summary["quarantined_by_reason"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"quarantined: {reason}", str(count))
    table.add_row("quarantined (total)", str(summary["quarantined"]))
    Console().print(table)
    typer.echo(f"valid -> {summary['valid_path']}\nquarantine -> {summary['quarantine_path']}")


def _parse_quantiles(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        values = tuple(sorted(float(v) for v in text.split(",")))
    except ValueError:
        _fail(f"--quantiles must be comma-separated numbers, got {text!r}")
    if 0.5 not in values or any(not 0 < v < 1 for v in values):
        _fail(f"--quantiles must lie in (0, 1) and include 0.5, got {text!r}")
    return values


@app.command()
def train(
    data: Annotated[
        Path,
        typer.Option(help="Validated trips (valid.parquet or a folder of them), or raw files with --source."),
    ],
    source: Annotated[
        str | None, typer.Option(help=f"Adapter to read raw files with: {', '.join(ADAPTER_NAMES)}.")
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping for --source generic.")] = None,
    model: Annotated[str, typer.Option(help="lightgbm or xgboost.")] = "lightgbm",
    quantiles: Annotated[
        str | None, typer.Option(help="Comma-separated levels, default 0.05,...,0.95.")
    ] = None,
    split_by: Annotated[
        str | None,
        typer.Option(
            help="date or day_of_month; default: what the source records (day_of_month where its months "
            "are anonymised, as Sendy's)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the boosters.")] = 7,
    dask_scheduler: Annotated[
        str | None,
        typer.Option(
            help="Train on this Dask cluster (e.g. tcp://10.0.0.5:8786); default $ETA_DASK_SCHEDULER, "
            "else in this process."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train, calibrate and evaluate; log to MLflow, register as challenger and run the promotion gate."""
    from rich.console import Console

    levels = _parse_quantiles(quantiles)
    if model not in ("lightgbm", "xgboost"):
        _fail(f"--model must be lightgbm or xgboost, got {model!r}")
    console = Console(stderr=True, quiet=json_output)
    with console.status("loading libraries and trips", spinner="dots"):
        from data_contracts.ingest import load_trips
        from models.distributed import dask_engine, engine_name, scheduler_address
        from models.quantile import DEFAULT_QUANTILES, BoostingParams
        from models.registry import log_and_register
        from models.train import TrainConfig, split_for, train_eta_model

        try:
            loaded = load_trips(data, source=source, mapping=mapping)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            _fail(str(exc))
    quarantined = ", ".join(f"{reason} {n}" for reason, n in sorted(loaded.reasons.items()))
    if loaded.rows_valid == 0:
        _fail(f"all {loaded.rows_in} rows of {data} failed the trip contract ({quarantined or 'no rows'})")
    if loaded.rows_quarantined:
        console.print(
            f"[yellow]quarantined {loaded.rows_quarantined} of {loaded.rows_in} rows ({quarantined}); "
            "they are logged with the run as data/quarantine.parquet[/yellow]"
        )
    try:
        split = split_for(loaded.calendar, split_by)
    except ValueError as exc:
        _fail(str(exc))
    config = TrainConfig(
        model_kind=model,
        quantiles=levels or DEFAULT_QUANTILES,
        split_by=split,
        params=BoostingParams(seed=seed),
        seed=seed,
    )
    address = scheduler_address(dask_scheduler)
    where = f"on the Dask cluster at {address}" if address else "in this process"
    with console.status(f"training {model} on {loaded.rows_valid} trips {where}", spinner="dots"):
        try:
            with dask_engine(address) as engine:
                result = train_eta_model(loaded.valid, config, engine)
                trained_on = engine_name(engine)
        except (ValueError, ConnectionError) as exc:
            _fail(str(exc))
    with console.status("logging to MLflow and running the promotion gate", spinner="dots"):
        registered = log_and_register(
            result,
            config,
            extra_params={
                "source": source or "validated",
                "engine": trained_on,
            },
            quarantine=loaded.quarantine,
            data_source=str(data),
        )
    payload = {
        **registered.as_dict(),
        "windows": result.windows.as_dict(),
        "rows": result.rows,
        "metrics": result.metrics,
        "baselines": result.baseline_metrics,
        "beats_baselines": result.beats_baselines(),
        "quarantined": loaded.rows_quarantined,
        "quarantined_by_reason": loaded.reasons,
    }
    if json_output:
        _print_json(payload)
        return
    _print_training_summary(payload)


def _print_training_summary(payload: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics, baselines = payload["metrics"], payload["baselines"]
    table = Table(title=f"eta-model v{payload['version']} (run {payload['run_id'][:8]}) on the test window")
    table.add_column("metric")
    table.add_column("model", justify="right")
    for name in baselines:
        table.add_column(name, justify="right")
    from models.metrics import HEADLINE_METRICS

    for key in HEADLINE_METRICS:
        table.add_row(key, f"{metrics[key]:.3f}", *(f"{baselines[b][key]:.3f}" for b in baselines))
    console = Console()
    console.print(table)
    decision = payload["decision"]
    verdict = "PROMOTED to champion" if decision["promote"] else "kept as challenger"
    console.print(f"gate: {verdict} — " + "; ".join(decision["reasons"]))
    losing = [name for name, ok in payload["beats_baselines"].items() if not ok]
    if losing:
        console.print(f"[red]does NOT beat baseline(s): {', '.join(losing)}[/red]")


@app.command()
def predict(
    model_uri: Annotated[str, typer.Option(help="e.g. models:/eta-model@champion")],
    input: Annotated[
        Path, typer.Option("--input", help="CSV or Parquet of legs (contract columns; label optional).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="CSV or Parquet to write (by extension). Legs that cannot be scored go to "
            "OUT's name + .rejected (e.g. scored.rejected.parquet) with the reason and column."
        ),
    ],
) -> None:
    """Score legs: one row per leg with q05..q95 seconds and lower/upper per interval level."""
    from models.scoring import read_legs, rejected_path, score_legs, write_table

    if out.is_dir():
        _fail(f"--out {out} is a folder; give a file name ending in .csv or .parquet")
    try:
        read = read_legs(input)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if read.renamed:
        kept = ", ".join(f"{old} -> {new}" for old, new in read.renamed.items())
        typer.secho(f"columns scoring writes itself are kept under new names: {kept}", err=True)
    rejected_file = rejected_path(out)
    if read.rejected.height:
        _write_or_fail(write_table, read.rejected, rejected_file)
        reasons = ", ".join(f"{reason} {n}" for reason, n in read.reasons().items())
        typer.secho(
            f"rejected {read.rejected.height} of {read.rows_in} legs ({reasons}) -> {rejected_file}",
            err=True,
            fg=typer.colors.YELLOW,
        )
    else:
        rejected_file.unlink(missing_ok=True)  # a previous run's rejections are not this file's
    if read.legs.height == 0:
        _fail(f"no leg of {input.name} can be scored; the reasons are in {rejected_file}")
    eta_model = _load_model(model_uri)
    scored = score_legs(eta_model, read.legs)
    _write_or_fail(write_table, scored, out)
    typer.echo(f"scored {scored.height} legs -> {out}")


def _load_model(model_uri: str):
    from mlflow.exceptions import MlflowException

    from models.pyfunc import load_eta_model
    from models.tracking import configure

    configure()
    try:
        return load_eta_model(model_uri)[0]
    except (MlflowException, OSError, ValueError) as exc:
        _fail(f"cannot load model {model_uri!r}: {first_line(exc)}")


def _write_or_fail(write, frame, path: Path) -> None:
    try:
        write(frame, path)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


@app.command()
def evaluate(
    predictions: Annotated[Path, typer.Option(help="A scored file from `eta predict` that has duration_s.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the metrics as one JSON object.")
    ] = False,
) -> None:
    """Every metric (accuracy, pinball, CRPS, coverage, width, late/early rate, segments) of a scored file.

    Rows without a finite label or with a blank quantile are left out and counted (`rows` in the JSON)."""
    from models.scoring import evaluate_scored, read_scored

    try:
        usable, excluded = read_scored(predictions)
        report = evaluate_scored(usable)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    report["rows"] = {
        "in": usable.height + sum(excluded.values()),
        "evaluated": usable.height,
        "excluded": excluded,
    }
    if excluded:
        typer.secho(
            f"left out {sum(excluded.values())} of {report['rows']['in']} rows: "
            + ", ".join(f"{reason} {n}" for reason, n in excluded.items()),
            err=True,
            fg=typer.colors.YELLOW,
        )
    if json_output:
        _print_json(report)
        return
    for key, value in report["metrics"].items():
        typer.echo(f"{key:28s} {value:.4f}")
    for name, rows in report["segments"].items():
        typer.echo(
            f"80% coverage by {name}: "
            + ", ".join(f"{r['segment']}={r['coverage']:.3f} (n={r['n']})" for r in rows)
        )


@app.command()
def rollback(
    to_version: Annotated[
        int | None, typer.Option(help="Version to move `champion` to; default the previous champion.")
    ] = None,
) -> None:
    """Move the champion alias back (to a given version or the previously promoted one)."""
    from models.registry import rollback as do_rollback
    from models.tracking import configure

    configure()
    try:
        moved = do_rollback(to_version)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"champion: v{moved['from_version']} -> v{moved['to_version']}")


# commands of the orchestration and serving layers live beside their owners' code paths
pipeline_commands.register(app)
serving_commands.register(app)


DEBUG_ENV = "ETA_DEBUG"


def main() -> None:
    """Run the command; an error the command did not anticipate still ends in one line naming it (exit 1),
    not a traceback. Set ETA_DEBUG=1 to see the traceback."""
    import os

    try:
        app()
    except Exception as exc:  # the CLI's last word: every anticipated error already exited with code 2
        if os.environ.get(DEBUG_ENV):
            raise
        typer.secho(f"error: {type(exc).__name__}: {first_line(exc)}", err=True, fg=typer.colors.RED)
        typer.secho(f"(set {DEBUG_ENV}=1 to see where it happened)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
