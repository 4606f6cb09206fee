"""One feature definition (polars, vectorized) for training, backtests and serving.

Public API:
- `FeatureSpec`: versioned configuration; `feature_dtypes()` / `context_dtypes()` give the output columns.
- `AggregateTable.from_trips(history, spec)`: point-in-time historical speeds for training rows;
  `.freeze(as_of)` -> `FrozenAggregates` for serving (`.save(dir)` / `.load(dir)` travel with the model).
- `build_features(legs, aggregates, spec)`: the feature matrix for historical trips or live requests.

Nothing here imports dagster, bentoml, mlflow or evidently.
"""

from features.aggregates import AggregateTable, FrozenAggregates
from features.build import build_features
from features.spec import FeatureSpec, HourBand

__all__ = ["AggregateTable", "FeatureSpec", "FrozenAggregates", "HourBand", "build_features"]
