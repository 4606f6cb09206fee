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
# # 03 — Drift and retraining
# A short backtest of the simulated city through the real Dagster jobs (`pipelines.backtest`): a district
# slows down on the onset day; one strategy never retrains, the other retrains when the drift sensor asks.
# We plot 80% coverage over time (overall and in the slowed district), with drift alerts and promotions.
# A retraining the gate blocks is a failed Dagster run (its blocking `candidate_calibration` check fails):
# Dagster logs each as ERROR lines under the first cell, and the `blocked` column counts them.
# `ETA_NOTEBOOK_SMALL=1` (the test suite) runs fewer, smaller days.

# %%
# %matplotlib inline
import os
import tempfile
import warnings
from pathlib import Path

import polars as pl

from models.backtest import coverage_over_time_figure, day_table
from pipelines.backtest import load_strategies, run_plans, synthetic_plan

# MLflow draws a tqdm bar for every artifact download, i.e. for every model the jobs load
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Each in-process Dagster run ends with event_loop.run_until_complete(event_loop.shutdown_asyncgens()),
# which cannot run inside the kernel's own running loop: Dagster catches that RuntimeError (a run here has
# no async generators to shut down), and Python reports the coroutine it built as never awaited
warnings.filterwarnings(
    "ignore",
    message="coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited",
    category=RuntimeWarning,
    module="dagster._core.execution.context_creation_job",
)
SMALL = os.environ.get("ETA_NOTEBOOK_SMALL") == "1"
DAYS, ONSET, PER_DAY, WINDOW = (14, 9, 800, 7) if SMALL else (40, 25, 3000, 21)
folder = Path(tempfile.mkdtemp(prefix="backtest-"))
plans = [
    synthetic_plan(
        strategy,
        "regional_slowdown",
        DAYS,
        folder,
        trips_per_day=PER_DAY,
        onset_day=ONSET,
        window_days=WINDOW,
    )
    for strategy in ("off", "on")
]
result = run_plans(plans, folder)
pl.DataFrame([{k: v for k, v in s.items() if not isinstance(v, dict)} for s in result["strategies"].values()])

# %% [markdown]
# ## Coverage over time (the dashed line is the onset; markers are drift alerts and promotions)

# %%
strategies = load_strategies(folder)
coverage_over_time_figure(strategies, plans[0].onset_index, title="regional slowdown")

# %% [markdown]
# ## The per-day table of the drift-triggered strategy

# %%
day_table(strategies["on"]).tail(8)
