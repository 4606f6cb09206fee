"""The logged MLflow model: a pyfunc wrapper around `EtaModel` whose artifacts are the native boosters,
the feature spec, the frozen aggregates and the conformal offsets (no pickled boosters). It is logged as
code (`MODEL_CODE`, MLflow's models-from-code), so nothing of it is pickled either.

`mlflow.pyfunc.load_model("models:/eta-model@champion").predict(legs)` returns calibrated quantiles in
seconds (columns q05 ... q95) for raw legs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import polars as pl

from models.quantile import qtag
from models.tracking import MODEL_ARTIFACT as ARTIFACT_KEY

# the file MLflow logs as the model (`python_model=MODEL_CODE`); it calls `mlflow.models.set_model`
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
# requirements written into the logged model, so MLflow does not spend ~13 s inferring them
PIP_REQUIREMENTS = [
    "lastmile-eta",
    "lightgbm",
    "xgboost-cpu",
    "polars",
    "polars-h3",
    "pandas<3",
    "pyarrow<26",
    "numpy",
    "mlflow",
]
LEG_COLUMNS = (
    "origin_lat",
    "origin_lng",
    "dest_lat",
    "dest_lng",
    "start_ts",
    "tz",
    "courier_id",
    "vehicle_type",
    "road_distance_km",
    "temperature_c",
    "precipitation_mm",
)


def legs_from_pandas(frame: pd.DataFrame) -> pl.DataFrame:
    """Legs from a pandas frame; MLflow's datetime columns are naive, and here they mean UTC."""
    legs = pl.from_pandas(frame)
    if "start_ts" in legs.columns:
        dtype = legs["start_ts"].dtype
        if dtype == pl.String:
            legs = legs.with_columns(pl.col("start_ts").str.to_datetime(time_zone="UTC"))
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            legs = legs.with_columns(pl.col("start_ts").dt.replace_time_zone("UTC"))
    return legs


class EtaPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from models.bundle import EtaModel

        self.model = EtaModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        legs = legs_from_pandas(model_input)
        q = self.model.predict_quantiles(legs)
        return pd.DataFrame({qtag(t): q[:, i] for i, t in enumerate(self.model.quantiles)})


def signature(quantiles):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    required = {
        "origin_lat": "double",
        "origin_lng": "double",
        "dest_lat": "double",
        "dest_lng": "double",
        "start_ts": "datetime",
        "tz": "string",
    }
    optional = {
        "courier_id": "string",
        "vehicle_type": "string",
        "road_distance_km": "double",
        "temperature_c": "double",
        "precipitation_mm": "double",
    }
    inputs = [ColSpec(t, n) for n, t in required.items()] + [
        ColSpec(t, n, required=False) for n, t in optional.items()
    ]
    outputs = [ColSpec("double", qtag(q)) for q in quantiles]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(legs: pl.DataFrame) -> pd.DataFrame:
    """Two legs as MLflow shows them (naive UTC start_ts), for the model page and signature check."""
    present = [c for c in LEG_COLUMNS if c in legs.columns]
    return (
        legs.head(2).select(present).with_columns(pl.col("start_ts").dt.replace_time_zone(None)).to_pandas()
    )


# MLflow hands a model logged as code over through one module-level global (`set_model`): two threads
# loading two versions at once could both be handed one pyfunc object, and both serve the later version
_LOADING = threading.Lock()


def load_eta_model(model_uri: str):
    """The `EtaModel` inside a logged pyfunc (for the service and the CLI: no pandas round trip)."""
    with _LOADING:
        loaded = mlflow.pyfunc.load_model(model_uri)
    return loaded.unwrap_python_model().model, loaded.metadata
