"""Small builders of Dagster metadata: tables, embedded plots, links. Presentation only."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg


def png_markdown(paths: Sequence[Path], width: int = 640) -> dg.MetadataValue:
    """PNG files embedded as data URIs, so the Dagster UI shows them without serving files."""
    parts = []
    for path in paths:
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f'**{Path(path).stem}**\n\n<img src="data:image/png;base64,{encoded}" width="{width}"/>')
    return dg.MetadataValue.md("\n\n".join(parts))


def metrics_table(columns: Mapping[str, Mapping[str, float] | None], keys: Sequence[str]) -> dg.MetadataValue:
    """A markdown table: one row per metric, one column per model (missing values shown as -)."""
    names = [name for name, values in columns.items() if values]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in keys:
        cells = []
        for name in names:
            value = columns[name].get(key)
            cells.append("-" if value is None else f"{value:.4g}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def counts_table(counts: Mapping[str, int], key_name: str, total: int | None = None) -> dg.MetadataValue:
    """A markdown table of counts (and shares of `total`), largest first."""
    lines = [f"| {key_name} | rows | share |", "|---|---:|---:|"]
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        share = f"{count / total:.2%}" if total else "-"
        lines.append(f"| {key} | {count} | {share} |")
    if len(lines) == 2:
        lines.append("| (none) | 0 | - |")
    return dg.MetadataValue.md("\n".join(lines))


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
