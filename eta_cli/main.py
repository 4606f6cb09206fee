"""`eta` — the command line of lastmile-eta.

Every command imports what it needs inside its body: the full stack (evidently, mlflow, dagster) takes
~17 s to import, and `eta --help` should answer in about a second.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

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
    scenario: Annotated[
        str, typer.Option(help="stationary, regional_slowdown, rain_week or demand_surge.")
    ] = "stationary",
    trips_per_day: Annotated[
        int, typer.Option(min=1, help="Mean legs per day before scenario effects.")
    ] = 4000,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Simulate a city's delivery legs, with dated drift of known ground truth."""
    from rich.progress import Progress

    from data_contracts.synthetic.generate import generate_city
    from data_contracts.synthetic.scenarios import SCENARIO_NAMES

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
    source: Annotated[
        str, typer.Option(help="Adapter: sendy, citibike, nyc_taxi, tlc_yellow, generic, synthetic.")
    ],
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

    try:
        contract_limits = ContractLimits.from_yaml(limits) if limits else ContractLimits()
        console = Console(stderr=True)
        with (
            console.status(f"ingesting {source} from {input}", spinner="dots")
            if not json_output
            else _nullcontext()
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


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
