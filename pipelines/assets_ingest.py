"""Daily ingest assets: raw trips -> validated trips + quarantine -> trip features.

Each asset reads and writes one partition's files through the `Warehouse` resource; the work is done by
`data_contracts` (staging, validation) and `features` (point-in-time aggregates, `build_features`). Each asset's
compute is a function of this module; `build_ingest_assets` only applies the decorators, because the
partitions (up to the simulated city's last day) are known at load time.
"""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import polars as pl

from pipelines.metadata import column_schema, counts_table, shown
from pipelines.resources import TripSource, Warehouse

RAW, VALID, QUARANTINE, FEATURES = "raw_trips", "validated_trips", "quarantined_trips", "trip_features"


class FeatureConfig(dg.Config):
    """Point-in-time feature build: how many days of history the speed aggregates look back."""

    lookback_days: int = 0  # 0: the look-back the Definitions were built with (28 days by default)


def previous_days(partition: str, days: int) -> list[str]:
    """The `days` partition keys before `partition`, oldest first."""
    day = date.fromisoformat(partition)
    return [(day - timedelta(days=k)).isoformat() for k in range(days, 0, -1)]


def read_days(
    warehouse: Warehouse, asset: str, partitions: list[str]
) -> tuple[pl.DataFrame | None, list[str]]:
    """Concatenate the partitions that exist; returns the frame (None if none) and the keys read."""
    present = [p for p in partitions if warehouse.has(asset, p)]
    if not present:
        return None, []
    frames = [warehouse.read_table(asset, p) for p in present]
    return pl.concat(frames, how="vertical_relaxed"), present


def raw_trips(
    context: dg.AssetExecutionContext, source: TripSource, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Stage the day's source files onto contract column names and write them as they are."""
    day = context.partition_key
    staged = source.stage(day)
    path = warehouse.write_table(RAW, day, staged)
    files = [str(f) for f in source.files_for(day)]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": staged.height,
            "source": source.source_name,
            "source_files": dg.MetadataValue.json(files),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


# Splits the day's raw rows into contract-valid trips and quarantined rows with a reason. (A comment, not a
# docstring: a multi-asset's op takes its function's docstring as its description.)
def validate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
    from data_contracts.validate import validate_trips

    day = context.partition_key
    result = validate_trips(warehouse.read_table(RAW, day))
    valid_path = warehouse.write_table(VALID, day, result.valid)
    quarantine_path = warehouse.write_table(QUARANTINE, day, result.quarantine)
    share = result.rows_quarantined / result.rows_in if result.rows_in else 0.0
    yield dg.MaterializeResult(
        asset_key=VALID,
        metadata={
            "dagster/row_count": result.rows_valid,
            "rows_in": result.rows_in,
            "path": dg.MetadataValue.path(str(valid_path)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={
            "dagster/row_count": result.rows_quarantined,
            **shown({"quarantine_share": share}),
            "reasons": counts_table(result.reasons, "reason", result.rows_in),
            "reason_counts": dg.MetadataValue.json(dict(result.reasons)),
            "path": dg.MetadataValue.path(str(quarantine_path)),
        },
    )


def trip_features(
    context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse, default_lookback: int
) -> dg.MaterializeResult:
    """Point-in-time features of the day's valid legs, from the `lookback` days of valid trips before it
    (`config.lookback_days`, or `default_lookback` when unset), with the label."""
    from features import AggregateTable, FeatureSpec, build_features

    day = context.partition_key
    lookback = config.lookback_days or default_lookback
    spec = FeatureSpec(lookback_days=lookback)
    legs = warehouse.read_table(VALID, day)
    history, read = read_days(warehouse, VALID, previous_days(day, lookback))
    known = legs if history is None else pl.concat([history, legs], how="vertical_relaxed")
    frame = build_features(legs, AggregateTable.from_trips(known, spec), spec).with_columns(
        legs["duration_s"]
    )
    path = warehouse.write_table(FEATURES, day, frame)
    with_history = float((frame["origin_trips"] > 0).mean()) if frame.height else 0.0
    schema = {n: {"dtype": str(t), "nullable": True} for n, t in spec.feature_dtypes().items()}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "dagster/column_schema": column_schema(schema),
            "history_days": len(read),
            **shown({"share_with_origin_history": with_history}),
            "feature_spec_version": spec.version,
            "path": dg.MetadataValue.path(str(path)),
        }
    )


def build_ingest_assets(partitions: dg.PartitionsDefinition, lookback_days: int = 28) -> list:
    """The ingest assets on `partitions` (daily, in the source's local calendar); `lookback_days` is the
    feature look-back drawn in the lineage graph and used when the run's config leaves it unset."""
    from data_contracts.schema import contract_columns

    raw_asset = dg.asset(
        name=RAW,
        partitions_def=partitions,
        group_name="ingest",
        kinds={"polars", "parquet"},
        description="The day's trips as the source wrote them, mapped onto contract column names (unvalidated).",
    )(raw_trips)

    validate_asset = dg.multi_asset(
        specs=[
            dg.AssetSpec(
                VALID,
                deps=[RAW],
                description="Contract-valid trips of the day (contract columns + lineage).",
                metadata={"dagster/column_schema": column_schema(contract_columns())},
                kinds={"polars", "parquet"},
                group_name="ingest",
            ),
            dg.AssetSpec(
                QUARANTINE,
                deps=[RAW],
                description="Rejected rows of the day with the original values, lineage and a reason code.",
                kinds={"polars", "parquet"},
                group_name="ingest",
            ),
        ],
        partitions_def=partitions,
        name="validate_trips",
    )(validate)

    @dg.asset(
        name=FEATURES,
        partitions_def=partitions,
        group_name="features",
        kinds={"polars", "parquet"},
        deps=[
            dg.AssetDep(
                VALID,
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-lookback_days, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            )
        ],
        description="Point-in-time features of the day's valid legs (aggregates from the days before), "
        "with the label: the training path's feature table, for inspection and sanity checks.",
    )
    def features_asset(context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse):
        return trip_features(context, config, warehouse, default_lookback=lookback_days)

    return [raw_asset, validate_asset, features_asset]
