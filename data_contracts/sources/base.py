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
from data_contracts.validate import ValidationResult, validate_trips


class SourceAdapter(Protocol):
    """Maps one public trip format onto the contract."""

    name: str
    file_glob: str

    def stage(self, path: Path) -> pl.DataFrame:
        """Read one file into a staged frame (contract columns + lineage + raw)."""
        ...


def read_raw_csv(path: Path, **kwargs: object) -> pl.DataFrame:
    """Read a CSV with every column as a string, adding lineage and the raw row as JSON."""
    try:
        frame = pl.read_csv(path, infer_schema=False, **kwargs)  # type: ignore[arg-type]
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        raise ValueError(f"{path.name} is not a readable CSV file: {err}") from err
    return _with_raw_and_lineage(frame, path)


def read_raw_table(path: Path) -> pl.DataFrame:
    """`read_raw_csv` for a CSV; for a Parquet file the same, with every column cast to its string form."""
    if path.suffix.lower() not in {".parquet", ".pq"}:
        return read_raw_csv(path)
    # Parquet carries typed columns; strings keep one parsing path and an honest `raw` record.
    frame = pl.read_parquet(path).select(pl.all().cast(pl.String))
    return _with_raw_and_lineage(frame, path)


def _with_raw_and_lineage(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    return frame.with_columns(
        pl.struct(pl.all()).struct.json_encode().alias(RAW_COLUMN),
        pl.lit(path.name).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("row_number"),
    )


def require_columns(frame: pl.DataFrame, required: Iterable[str], path: Path, source: str) -> None:
    """Raise when a file lacks columns the adapter needs: it is not that source's format at all."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        present = [c for c in frame.columns if c not in {RAW_COLUMN, "source_file", "row_number"}]
        raise ValueError(f"{path.name} is not a {source} file: missing columns {missing}; it has {present}")


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
    """Stage every file of a source and validate them together; nothing dropped."""
    return ingest_files(adapter, files_for(adapter, path), limits)


def ingest_files(
    adapter: SourceAdapter, files: Iterable[Path], limits: ContractLimits | None = None
) -> ValidationResult:
    """Validate the staged files as one frame, so a trip repeated in two files is a `duplicate_trip`."""
    staged = [adapter.stage(f) for f in files]
    if not staged:
        raise ValueError(f"no files to ingest for source {adapter.name!r}")
    return validate_trips(pl.concat(staged, how="vertical_relaxed"), limits)
