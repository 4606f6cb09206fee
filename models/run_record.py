"""What a training run records in MLflow besides the model: metric names and their chart sections, the
windows as datasets, the plots, and the run's, version's and registered model's descriptions."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models import plots
from models.gate import GateDecision
from models.tracking import REGISTERED_MODEL
from models.train import TrainConfig, TrainingResult

if TYPE_CHECKING:
    from mlflow import MlflowClient


def save_plots(result: TrainingResult, folder: Path) -> list[Path]:
    frame = result.test_frame
    quantiles = result.model.quantiles
    y = frame["duration_s"].to_numpy()
    q = frame.select([c for c in frame.columns if c.startswith("q") and c[1:].isdigit()]).to_numpy()
    return [
        plots.reliability_diagram(y, q, quantiles, folder / "reliability.png"),
        plots.coverage_by_segment(result.segments, 0.8, folder / "coverage_by_segment.png"),
        plots.pit_histogram(y, q, quantiles, folder / "pit_histogram.png"),
        plots.width_vs_distance(
            frame["haversine_km"].to_numpy(), q, quantiles, folder / "width_vs_distance.png"
        ),
    ]


# Breakdown metrics are logged as "<family>/<rest>": MLflow's UI gives each part before "/" its own chart
# section, so the headline metrics (coverage_80, mae_s, pinball_mean, ...) stand alone in "Model metrics"
GROUPED_METRICS = ("baseline", "calibration", "enroute", "profile", "seconds", "segment")
MODEL_DESCRIPTION = (
    "Last-mile ETA: calibrated quantiles (q05..q95, seconds) of a leg's duration from its raw inputs. "
    "`champion` is the version served, `challenger` the newest registered; each version's description "
    "says what it was trained on and what the promotion gate said. "
    "Load: mlflow.pyfunc.load_model('models:/eta-model@champion')."
)
# the windows of `TrainingResult.rows`, and the MLflow dataset context each is logged with
WINDOW_CONTEXTS = {"train": "training", "calibration": "calibration", "test": "test"}


def logged_metric_name(name: str) -> str:
    """The name a `TrainingResult` metric (or `baseline_<name>_<metric>`) has in the MLflow run:
    "profile_no_weather_mae_s" -> "profile/no_weather_mae_s"; headline metrics keep theirs."""
    family, _, rest = name.partition("_")
    return f"{family}/{rest}" if family in GROUPED_METRICS and rest else name


def run_metrics(result: TrainingResult) -> dict[str, float]:
    """Every finite metric of the run, model and baselines, under its logged name."""
    flat = {
        **result.metrics,
        **{f"baseline_{b}_{k}": v for b, m in result.baseline_metrics.items() for k, v in m.items()},
    }
    return {logged_metric_name(k): float(v) for k, v in flat.items() if np.isfinite(v)}


def window_inputs(result: TrainingResult, source_name: str, data_source: str | None = None) -> list:
    """The training, calibration and test windows as MLflow dataset inputs (name, source, digest, schema,
    rows and days), described and not copied: no row is read again. The schema is the test legs' (all
    windows share the contract's columns); the digest hashes `result.data_hash` with the window's days."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.polars_dataset import infer_schema
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    if data_source:
        with warnings.catch_warnings():
            # MLflow 3.17 registers its local-file source twice and warns that a path is ambiguous
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            source = resolve_dataset_source(data_source)
    else:
        source = CodeDatasetSource({"source": source_name})
    schema = infer_schema(result.test_legs)
    inputs = []
    for window, context in WINDOW_CONTEXTS.items():
        days = getattr(result.windows, window)
        listed = ",".join(str(d) for d in days)
        digest = hashlib.sha256(f"{result.data_hash}|{result.windows.key}|{listed}".encode()).hexdigest()[:16]
        meta = MetaDataset(source, name=f"{source_name}-{context}", digest=digest, schema=schema).to_dict()
        profile = {
            "num_rows": result.rows[window],
            "days": f"{days[0]}..{days[-1]}",
            "split_by": result.windows.key,
        }
        dataset = Dataset(
            meta["name"],
            meta["digest"],
            meta["source_type"],
            meta["source"],
            meta.get("schema"),
            json.dumps(profile),
        )
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, context), InputTag("data_hash", result.data_hash)]
        inputs.append(DatasetInput(dataset, tags))
    return inputs


HEADLINE = (
    ("coverage_80", "80% coverage {:.3f}"),
    ("width_80_s", "width {:.0f} s"),
    ("mae_s", "median MAE {:.0f} s"),
)
DESCRIPTION_LIMIT = 5000  # MLflow keeps a model version's description in 5000 characters


def gate_line(decision: GateDecision) -> str:
    verdict = "promote" if decision.promote else "do not promote"
    return f"Gate at registration: {verdict} ({'; '.join(decision.reasons) or 'no reasons given'})"


def tested_line(result: TrainingResult) -> str:
    shown = [f.format(result.metrics[k]) for k, f in HEADLINE if np.isfinite(result.metrics.get(k, np.nan))]
    return f"on the test window {result.windows.as_dict()['test_days']}: {', '.join(shown) or 'no metrics'}"


def run_description(
    result: TrainingResult, config: TrainConfig, source: str, version: int, decision: GateDecision
) -> str:
    """The run's note (markdown): what was trained on which data and windows, how it tested, the gate's say."""
    windows = result.windows.as_dict()
    lines = [
        f"{config.model_kind} quantile model on **{source}** (data hash `{result.data_hash}`, split by "
        f"{result.windows.key}), registered as {REGISTERED_MODEL} v{version}.",
        "",
        *(
            f"- {context}: {windows[f'{window}_days']} ({result.rows[window]:,} legs)"
            for window, context in WINDOW_CONTEXTS.items()
        ),
    ]
    if result.refit:
        lines.append(
            f"- shipped model refit on {result.refit['fit_days']}, calibrated on {result.refit['calibration_days']}"
        )
    lines += ["", f"Evaluated {tested_line(result)}.", "", gate_line(decision) + "."]
    return "\n".join(lines)[:DESCRIPTION_LIMIT]


def version_description(
    result: TrainingResult, config: TrainConfig, source: str, run_id: str, decision: GateDecision
) -> str:
    """The registered version's description: one paragraph saying what it is and what the gate said."""
    return (
        f"{config.model_kind} on {source} (data hash {result.data_hash}), trained on "
        f"{result.windows.as_dict()['train_days']}; evaluated {tested_line(result)}. {gate_line(decision)}. "
        f"Run {run_id}."
    )[:DESCRIPTION_LIMIT]


def describe_version(client: MlflowClient, version: int, description: str) -> None:
    """The version's description, and the registered model's where it has none (one written in the UI stays)."""
    client.update_model_version(REGISTERED_MODEL, str(version), description=description)
    if not client.get_registered_model(REGISTERED_MODEL).description:
        client.update_registered_model(REGISTERED_MODEL, description=MODEL_DESCRIPTION)
