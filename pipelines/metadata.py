"""Small builders of Dagster metadata: numbers, tables, links. Presentation only.

The Dagster UI draws numeric metadata of a partitioned asset over its partitions (the asset's "Plots" tab)
and renders `TableMetadataValue`s as tables; it strips images embedded in markdown, so plots are linked
where MLflow shows them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np

SIGNIFICANT_DIGITS = 4


def rounded(value: float | None) -> float | None:
    """A float shown to `SIGNIFICANT_DIGITS` (0.0007545271629778583 -> 0.0007545); None and NaN stay."""
    if value is None or value != value:
        return value
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def shown(metadata: Mapping[str, object]) -> dict[str, object]:
    """`metadata` with its plain floats rounded for the UI (numpy floats included); other values as given."""
    return {key: _number(value) for key, value in metadata.items()}


def _number(value: object) -> object:
    """Python and numpy integers as int, other reals rounded; anything else as given."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return bool(value) if isinstance(value, np.bool_) else value
    return int(value) if isinstance(value, numbers.Integral) else rounded(float(value))


def _cell(value: object) -> object:
    value = _number(value)
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _column_type(values: Sequence[object]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    return "string"


def records_table(rows: Sequence[Mapping[str, object]]) -> dg.MetadataValue:
    """A Dagster table of `rows` (dicts with the same keys, in order); floats rounded, types inferred."""
    cells = [{k: _cell(v) for k, v in row.items()} for row in rows]
    names = list(cells[0]) if cells else ["(none)"]
    schema = dg.TableSchema(
        columns=[dg.TableColumn(n, _column_type([r.get(n) for r in cells])) for n in names]
    )
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in cells], schema=schema)


def metrics_table(columns: Mapping[str, Mapping[str, float] | None], keys: Sequence[str]) -> dg.MetadataValue:
    """One row per metric, one column per model (a model without values is left out; a missing value
    is None)."""
    names = [name for name, values in columns.items() if values]
    return records_table(
        [{"metric": key, **{name: columns[name].get(key) for name in names}} for key in keys]
    )


def counts_table(counts: Mapping[str, int], key_name: str, total: int | None = None) -> dg.MetadataValue:
    """Counts (and shares of `total`), largest first."""
    rows = [
        {key_name: key, "rows": int(count), "share": count / total if total else None}
        for key, count in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return records_table(rows or [{key_name: "(none)", "rows": 0, "share": None}])


def reasons_md(reasons: Sequence[str], none: str) -> dg.MetadataValue:
    """A bullet list of reasons, or `none` when there are none."""
    return dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons) or none)


def column_schema(columns: Mapping[str, Mapping[str, object]]) -> dg.TableSchema:
    """Dagster column schema from `contract_columns()`-shaped info."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                str(info["dtype"]),
                description=str(info.get("description", "")),
                constraints=dg.TableColumnConstraints(nullable=bool(info.get("nullable", True))),
            )
            for name, info in columns.items()
        ]
    )
