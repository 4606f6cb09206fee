"""What every source adapter shares: read a file as strings with lineage, parse local clocks, validate.

An adapter is a small declarative mapping from one public format onto the trip contract. It returns a
*staged* frame: contract columns (nulls where a value could not be parsed), plus `source_file`,
`row_number` (1-based data row in the file) and `raw` (the original row as a JSON object of strings),
so that the quarantine can show exactly what the source said.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import polars as pl

from data_contracts.limits import ContractLimits
from data_contracts.safe_io import first_line
from data_contracts.schema import RAW_COLUMN
from data_contracts.text_values import CANONICAL_INSTANT_FORMAT, CANONICAL_LOCAL_FORMAT, as_text
from data_contracts.validate import DATED, ValidationResult, validate_trips


class SourceAdapter(Protocol):
    """Maps one public trip format onto the contract."""

    name: str
    file_glob: str
    # "date", or "day_of_month" when the source's month and year are anonymised stand-ins (adapters that
    # do not say are "date"); recorded with the validated trips so training splits them by the real order
    calendar: str

    def stage(self, path: Path) -> pl.DataFrame:
        """Read one file into a staged frame (contract columns + lineage + raw)."""
        ...


def read_raw_csv(path: Path, **kwargs: object) -> pl.DataFrame:
    """Read a CSV with every column as a string, adding lineage and the raw row as JSON.

    A malformed line (an unclosed quote, more fields than the header) makes the whole file an error that
    names the file and the line: polars cannot skip one line and say which, and a guess at the rest of
    the file would not be what the source wrote.
    """
    try:
        frame = pl.read_csv(path, infer_schema=False, **kwargs)  # type: ignore[arg-type]
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        separator = str(kwargs.get("separator", ","))
        problem = _malformed_line(path, separator) or first_line(err, 200)
        raise ValueError(f"{path.name} is not a readable CSV file: {problem}") from err
    return _with_raw_and_lineage(frame, path)


def _malformed_line(path: Path, separator: str) -> str | None:
    """The first line Python's strict csv reader trips on, or that has more fields than the header."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=separator, strict=True)
        header_width, line = None, 1
        try:
            for row in reader:
                if header_width is None:
                    header_width = len(row)
                elif len(row) > header_width:
                    return f"line {line} has {len(row)} fields, the header has {header_width}"
                line = reader.line_num + 1
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                return f"line {line} opens a quoted field that is never closed"
            return f"line {line}: {err}"
    return None


def read_raw_table(path: Path) -> pl.DataFrame:
    """`read_raw_csv` for a CSV; for a Parquet file the same, with every column in its string form.

    Datetime columns become text in `text_values`' canonical forms (a zoned one keeps its offset), so `raw`
    shows what the file holds and `parse_table_timestamp` reads them back exactly.
    """
    if path.suffix.lower() not in {".parquet", ".pq"}:
        return read_raw_csv(path)
    try:
        frame = pl.read_parquet(path)
    except pl.exceptions.ComputeError as err:
        raise ValueError(f"{path.name} is not a readable Parquet file: {first_line(err, 200)}") from err
    # Parquet carries typed columns; strings keep one parsing path and an honest `raw` record.
    return _with_raw_and_lineage(frame.select(as_text(n, d) for n, d in frame.schema.items()), path)


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


def to_int(column: str) -> pl.Expr:
    """A string column as Int32 (day, weekday, hour, minute fields); blanks and junk become null."""
    return pl.col(column).str.strip_chars().cast(pl.Int32, strict=False)


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


def parse_table_timestamp(column: str, formats: Sequence[str], tz: str) -> pl.Expr:
    """`parse_local_timestamp`, also reading `read_raw_table`'s canonical text of a typed Parquet timestamp.

    A naive Datetime is a wall clock in `tz` like any other; a zoned one is the instant it names.
    """
    text = pl.col(column).str.strip_chars()
    instant = text.str.strptime(pl.Datetime("us", "UTC"), CANONICAL_INSTANT_FORMAT, strict=False)
    return pl.coalesce(instant, parse_local_timestamp(text, [*formats, CANONICAL_LOCAL_FORMAT], tz))


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
    result = validate_trips(pl.concat(staged, how="vertical_relaxed"), limits)
    result.calendar = getattr(adapter, "calendar", DATED)
    return result
