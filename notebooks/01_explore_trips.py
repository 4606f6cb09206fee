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
# # 01 — Explore the trips
# The real sets in `../shared/data` beside the simulated city: durations and speeds, speed by hour and
# weekday, an H3 map of median speed, and what the contract quarantined and why.
# Everything is computed by the project's own code (`data_contracts`, `features.summaries`).
# Set `ETA_NOTEBOOK_SMALL=1` for a quick run on samples (the test suite does).

# %%
import os
from datetime import date

import h3
import matplotlib.pyplot as plt
import polars as pl

from data_contracts.home import shared_data_dir
from data_contracts.sources import get_adapter
from data_contracts.sources.base import ingest
from data_contracts.synthetic import simulate_trips
from features.summaries import (
    duration_speed_quantiles,
    hex_median_speed,
    quarantine_breakdown,
    speed_by_hour_and_weekday,
)

SMALL = os.environ.get("ETA_NOTEBOOK_SMALL") == "1"
DATA = shared_data_dir()
print("real data:", DATA if DATA.is_dir() else f"absent ({DATA}) — only the synthetic city is shown")

# %% [markdown]
# ## Load every source through its adapter and the contract

# %%
SOURCES = {
    "sendy": DATA / "sendy_nairobi" / "deliveries.csv",
    "citibike": DATA / "citibike_jersey_city" / ("JC-201702-citibike-tripdata.csv" if SMALL else ""),
    "nyc_taxi": DATA / "nyc_taxi_sample" / "nyc_taxi.csv",
}
valid, quarantines = {}, []
for name, path in SOURCES.items():
    if not path.exists():
        print(f"{name}: skipped, {path} is absent")
        continue
    result = ingest(get_adapter(name), path)
    print(f"{name}: {result.summary()}")
    valid[name] = result.valid
    quarantines.append(quarantine_breakdown(result.quarantine, name))
valid["synthetic"] = simulate_trips(20_000 if SMALL else 120_000, seed=7, start=date(2026, 1, 5), days=28)

# %% [markdown]
# ## Duration and speed distributions

# %%
pl.concat([duration_speed_quantiles(trips, name) for name, trips in valid.items()])

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for name, trips in valid.items():
    minutes = (trips["duration_s"] / 60).clip(0, 120)
    axes[0].hist(minutes, bins=60, histtype="step", density=True, label=name)
axes[0].set(xlabel="duration (min, clipped at 120)", ylabel="density", title="Leg duration")
axes[0].legend()
for name, trips in valid.items():
    table = (
        speed_by_hour_and_weekday(trips)
        .group_by("local_hour")
        .agg(pl.col("median_speed_kmh").median())
        .sort("local_hour")
    )
    axes[1].plot(table["local_hour"], table["median_speed_kmh"], "o-", label=name)
axes[1].set(xlabel="local hour", ylabel="median straight-line km/h", title="Speed by hour of day")
fig.tight_layout()

# %% [markdown]
# ## Speed by weekday and hour (synthetic city and Sendy)

# %%
fig, axes = plt.subplots(
    1, len([n for n in ("synthetic", "sendy") if n in valid]), figsize=(11, 3.2), squeeze=False
)
for ax, name in zip(axes[0], [n for n in ("synthetic", "sendy") if n in valid], strict=True):
    grid = (
        speed_by_hour_and_weekday(valid[name])
        .pivot(on="local_hour", index="weekday", values="median_speed_kmh")
        .sort("weekday")
    )
    image = ax.imshow(grid.drop("weekday").to_numpy(), aspect="auto", cmap="viridis")
    ax.set(title=f"{name}: median km/h", xlabel="local hour (columns present)", ylabel="ISO weekday")
    fig.colorbar(image, ax=ax)
fig.tight_layout()

# %% [markdown]
# ## H3 map of median speed (res 8 origins)


# %%
def hex_map(ax, table: pl.DataFrame, title: str) -> None:
    from matplotlib.collections import PolyCollection

    polygons = [
        [(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(int(c)))] for c in table["cell"]
    ]
    collection = PolyCollection(
        polygons, array=table["median_speed_kmh"].to_numpy(), cmap="RdYlGn", edgecolor="grey"
    )
    ax.add_collection(collection)
    ax.autoscale_view()
    ax.set(title=title, xlabel="lng", ylabel="lat")
    plt.colorbar(collection, ax=ax, label="median km/h")


names = [n for n in ("synthetic", "sendy") if n in valid]
fig, axes = plt.subplots(1, len(names), figsize=(12, 5), squeeze=False)
for ax, name in zip(axes[0], names, strict=True):
    hex_map(
        ax, hex_median_speed(valid[name], resolution=8, min_trips=10), f"{name}: median speed by origin cell"
    )
fig.tight_layout()

# %% [markdown]
# ## What the contract quarantined, by reason

# %%
pl.concat(quarantines) if quarantines else "no real data present"
