"""CLI commands of the orchestration layer (the demo job, Dagster, drift, backtest).

Heavy imports stay inside the command bodies so that `eta --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    days: Annotated[int, typer.Option(min=6, help="Days of the synthetic city to simulate.")] = 42,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 7,
    trips_per_day: Annotated[int, typer.Option(min=100, help="Legs per day.")] = 4000,
) -> None:
    """Run the main job end to end on the embedded synthetic city: generate, validate, train, register."""
    from datetime import date

    from rich.console import Console

    from data_contracts.home import eta_home
    from data_contracts.ingest import write_result
    from data_contracts.sources.base import ingest
    from data_contracts.sources.synthetic import SyntheticCityAdapter
    from data_contracts.synthetic.generate import generate_city

    console = Console()
    home = eta_home()
    raw = home / "data" / "synthetic" / "raw"
    console.rule("1/3 simulate the city")
    summary = generate_city(raw, days=days, start=date(2026, 1, 5), seed=seed, trips_per_day=trips_per_day)
    console.print(f"{summary.rows} legs over {days} days -> {raw}")
    console.rule("2/3 validate against the trip contract")
    result = ingest(SyntheticCityAdapter(), raw)
    valid_path, quarantine_path = write_result(result, home / "data" / "synthetic" / "validated")
    console.print(result.summary())
    console.rule("3/3 train, calibrate, register")
    from models.registry import log_and_register
    from models.train import TrainConfig, train_eta_model

    config = TrainConfig()
    trained = train_eta_model(result.valid, config)
    registered = log_and_register(trained, config, run_name="demo")
    m = trained.metrics
    console.print(
        f"eta-model v{registered.version}: MAE {m['mae_s']:.0f} s, 80% coverage {m['coverage_80']:.3f}, "
        f"90% coverage {m['coverage_90']:.3f}; gate: {'promoted' if registered.decision.promote else 'kept'}"
    )
    console.print(
        f"state under {home}: MLflow store {home / 'mlflow'}, valid {valid_path}, quarantine {quarantine_path}"
    )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the `eta` app."""
    app.command()(demo)
