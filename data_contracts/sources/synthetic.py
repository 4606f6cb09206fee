"""Adapter for the simulated city's raw daily partitions (`date=YYYY-MM-DD/trips.parquet`).

The partitions are written by `data_contracts.synthetic.generate`: coordinates, duration and road distance
as numbers, the departure as a local wall-clock string (`start_local`, Africa/Nairobi), which is parsed
here so that a garbled clock reaches validation as a null `start_ts`. `injected_defect` is not a contract
column: it travels in `raw`, like every other original value.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from data_contracts.schema import RAW_COLUMN, TripSchema
from data_contracts.sources.base import parse_local_timestamp
from data_contracts.synthetic import geography as geo
from data_contracts.synthetic.generate import SOURCE_NAME

# every contract column but the two this adapter makes: the partitions already use the contract's names
_PASSTHROUGH = tuple(c for c in TripSchema.column_names() if c not in {"source", "start_ts"})


class SyntheticCityAdapter:
    """Maps a generated partition onto the contract (columns already carry contract names)."""

    name = SOURCE_NAME
    file_glob = "**/*.parquet"

    def stage(self, path: Path) -> pl.DataFrame:
        try:
            raw = pl.read_parquet(path)
        except pl.exceptions.ComputeError as err:
            raise ValueError(f"{path} is not a synthetic-city partition (not a Parquet file)") from err
        missing = [c for c in (*_PASSTHROUGH, "start_local") if c not in raw.columns]
        if missing:
            raise ValueError(f"{path} is not a synthetic-city partition: missing columns {missing}")
        # partitions all share one file name: lineage keeps the `date=...` folder to tell them apart
        source_file = f"{path.parent.name}/{path.name}"
        return raw.select(
            *(pl.col(c) for c in _PASSTHROUGH),
            pl.lit(SOURCE_NAME).alias("source"),
            parse_local_timestamp("start_local", [geo.LOCAL_TIMESTAMP_FORMAT], geo.TZ).alias("start_ts"),
            pl.struct(pl.all().cast(pl.String)).struct.json_encode().alias(RAW_COLUMN),
            pl.lit(source_file).alias("source_file"),
            (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("row_number"),
        )
