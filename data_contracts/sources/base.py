"""What every source adapter shares: read a file as strings with lineage, parse local clocks, validate.

An adapter is a small declarative mapping from one public format onto the trip contract. It returns a
*staged* frame: contract columns (nulls where a value could not be parsed), plus `source_file`,
`row_number` (1-based data row in the file) and `raw` (the original row as a JSON object of strings),
so that the quarantine can show exactly what the source said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import polars as pl

from data_contracts.limits import ContractLimits
from data_contracts.schema import RAW_COLUMN
from data_contracts.validate import ValidationResult, merge_results, validate_trips


class SourceAdapter(Protocol):
    """Maps one public trip format onto the contract."""

    name: str
    file_glob: str

    def stage(self, path: Path) -> pl.DataFrame:
        """Read one file into a staged frame (contract columns + lineage + raw)."""
        ...


def read_raw_csv(path: Path, **kwargs: object) -> pl.DataFrame:
    """Read a CSV with every column as a string, adding lineage and the raw row as JSON."""
    frame = pl.read_csv(path, infer_schema=False, **kwargs)  # type: ignore[arg-type]
    return frame.with_columns(
        pl.struct(pl.all()).struct.json_encode().alias(RAW_COLUMN),
        pl.lit(path.name).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("row_number"),
    )


def to_float(column: str) -> pl.Expr:
    """A string column as Float64; blanks and junk become null (validation then names the problem)."""
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def parse_local_timestamp(column: str | pl.Expr, formats: Sequence[str], tz: str) -> pl.Expr:
    """Parse a local wall-clock string trying each format in turn, then convert to UTC.

    Unparseable values and wall-clock times that do not exist in `tz` (DST gaps) become null,
    which the contract quarantines as `unparseable_timestamp`.
    """
    text = (pl.col(column) if isinstance(column, str) else column).str.strip_chars()
    parsed = pl.coalesce([text.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in formats])
    return parsed.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
        "UTC"
    )


def files_for(adapter: SourceAdapter, path: Path) -> list[Path]:
    """One file, or every file in a folder that matches the adapter's glob, in name order."""
    if path.is_dir():
        files = sorted(path.glob(adapter.file_glob))
        if not files:
            raise FileNotFoundError(f"no files matching {adapter.file_glob!r} in {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    return [path]


def ingest(adapter: SourceAdapter, path: Path, limits: ContractLimits | None = None) -> ValidationResult:
    """Stage and validate every file of a source; per-file results merged, nothing dropped."""
    results = {str(f): validate_trips(adapter.stage(f), limits) for f in files_for(adapter, path)}
    return merge_results(results)


def ingest_files(
    adapter: SourceAdapter, files: Iterable[Path], limits: ContractLimits | None = None
) -> ValidationResult:
    return merge_results({str(f): validate_trips(adapter.stage(f), limits) for f in files})
