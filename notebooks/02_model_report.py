# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — Can we trust the champion?
# Loads `models:/eta-model@champion` from MLflow (the store under `ETA_HOME`; run `make demo` first) and
# scores the freshest labelled legs it has not seen: reliability, coverage by hour / region / distance,
# width vs distance, the worst segments and the comparison with the baselines logged with the run.
# If no champion exists yet (a fresh `ETA_HOME`), it trains one on the synthetic city first.

# %%
# %matplotlib inline
import os
from datetime import date

import mlflow
import polars as pl
from IPython.display import display

from data_contracts.synthetic import simulate_trips
from models import plots
from models.bundle import distance_band
from models.metrics import HEADLINE_METRICS, segment_coverage, summary_metrics
from models.pyfunc import load_eta_model
from models.registry import logged_metric_name
from models.tracking import CHAMPION, REGISTERED_MODEL, alias_version, configure

# MLflow draws a tqdm bar for every artifact download, i.e. for every model load; a report wants the result
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
SMALL = os.environ.get("ETA_NOTEBOOK_SMALL") == "1"
tracking = configure()
print("tracking store:", tracking.uri)

# %%
if alias_version(CHAMPION) is None:
    from models.quantile import BoostingParams
    from models.registry import log_and_register
    from models.train import TrainConfig, train_eta_model

    print("no champion yet: training one on the synthetic city")
    config = (
        TrainConfig(params=BoostingParams(num_leaves=31, median_rounds=200, spread_rounds=80))
        if SMALL
        else TrainConfig()
    )
    history = simulate_trips(30_000 if SMALL else 160_000, seed=7, start=date(2026, 1, 5), days=28)
    log_and_register(train_eta_model(history, config), config, run_name="notebook-02")

model, metadata = load_eta_model(f"models:/{REGISTERED_MODEL}@{CHAMPION}")
version = alias_version(CHAMPION)
print(f"champion: {REGISTERED_MODEL} v{version}, {model.meta['model_kind']}, windows {model.meta['windows']}")

# %% [markdown]
# ## Score fresh labelled legs
# A new week of the simulated city (a different seed: legs the model never saw).

# %%
legs = simulate_trips(8_000 if SMALL else 40_000, seed=99, start=date(2026, 2, 16), days=7)
features = model.features(legs)
q = model.predict_from_features(features)
y = legs["duration_s"].to_numpy()
taus = model.quantiles
pl.DataFrame([summary_metrics(y, q, taus)]).select(HEADLINE_METRICS)

# %% [markdown]
# ## Reliability diagram and PIT

# %%
plots.reliability_figure(y, q, taus)

# %%
plots.pit_figure(y, q, taus)

# %% [markdown]
# ## Coverage by hour, region and distance band — and the worst segments

# %%
min_count = 50 if SMALL else 200
segments = {
    "hour": segment_coverage(features["local_hour"].cast(pl.String), y, q, taus, 0.8, min_count),
    "region": segment_coverage(
        features[f"origin_region_r{model.spec.region_resolution}"].cast(pl.String), y, q, taus, 0.8, min_count
    ),
    "distance": segment_coverage(
        pl.Series(distance_band(features["haversine_km"].to_numpy())), y, q, taus, 0.8, min_count
    ),
}
display(plots.coverage_by_segment_figure(segments, 0.8))
pl.concat([t.with_columns(pl.lit(name).alias("by")) for name, t in segments.items()]).sort(
    "abs_gap", descending=True
).head(8)

# %% [markdown]
# ## Interval width vs distance

# %%
plots.width_vs_distance_figure(features["haversine_km"].to_numpy(), q, taus)

# %% [markdown]
# ## Against the baselines (as logged with the champion's run, on its own test window)

# %%
run = mlflow.get_run(mlflow.MlflowClient().get_model_version(REGISTERED_MODEL, str(version)).run_id)
rows = []
for who in ("", "baseline_global_", "baseline_cell_hour_", "baseline_distance_only_"):
    rows.append(
        {
            "model": who.removeprefix("baseline_").rstrip("_") or "champion",
            **{
                k: run.data.metrics.get(logged_metric_name(f"{who}{k}"))
                for k in ("mae_s", "pinball_mean", "coverage_80", "width_80_s")
            },
        }
    )
pl.DataFrame(rows)
