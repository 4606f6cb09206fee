"""Ingest a source into the contract and write valid rows and the quarantine as Parquet."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from data_contracts.limits import ContractLimits
from data_contracts.schema import TripSchema
from data_contracts.sources import get_adapter
from data_contracts.sources.base import ingest
from data_contracts.validate import (
    ANONYMISED_MONTHS,
    CALENDAR_METADATA_KEY,
    DATED,
    ValidationResult,
    validate_trips,
)


def write_result(result: ValidationResult, out: Path) -> tuple[Path, Path]:
    """Write valid.parquet and quarantine.parquet into `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    valid_path, quarantine_path = out / "valid.parquet", out / "quarantine.parquet"
    result.valid.write_parquet(valid_path, metadata={CALENDAR_METADATA_KEY: result.calendar})
    result.quarantine.write_parquet(quarantine_path)
    return valid_path, quarantine_path


def ingest_to_folder(
    source: str,
    input_path: Path,
    out: Path,
    mapping: Path | None = None,
    limits: ContractLimits | None = None,
) -> dict[str, object]:
    """Run one adapter over a file or folder and write its outputs; returns the summary."""
    adapter = get_adapter(source, mapping=mapping)
    result = ingest(adapter, input_path, limits)
    valid_path, quarantine_path = write_result(result, out)
    return {
        "source": source,
        **result.summary(),
        "valid_path": str(valid_path),
        "quarantine_path": str(quarantine_path),
    }


def load_trips(
    path: Path, source: str | None = None, mapping: Path | None = None, limits: ContractLimits | None = None
) -> ValidationResult | None:
    """Contract-valid trips from `path`.

    With `source`, the raw files are run through that adapter and validated (the quarantine is returned too).
    Without it, `path` holds already-validated Parquet: a file, or a folder whose `**/valid.parquet` files
    (written by `eta ingest` or the pipeline) are read; returns a result with an empty quarantine.
    """
    if source is not None:
        return ingest(get_adapter(source, mapping=mapping), path, limits)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("**/valid.parquet"))
        if not files:
            raise FileNotFoundError(
                f"no valid.parquet under {path}; run `eta ingest` first or pass --source to read raw files"
            )
    else:
        raise FileNotFoundError(f"input not found: {path}")
    frame = pl.concat([_read_validated(f) for f in files], how="diagonal_relaxed")
    result = validate_trips(frame, limits)  # re-check: a hand-edited file must not slip past the contract
    calendars = {pl.read_parquet_metadata(f).get(CALENDAR_METADATA_KEY, DATED) for f in files}
    result.calendar = ANONYMISED_MONTHS if ANONYMISED_MONTHS in calendars else DATED
    return result


def _read_validated(path: Path) -> pl.DataFrame:
    """One Parquet file of validated trips; anything else (a raw CSV, say) is a ValueError naming the file."""
    hint = "pass --source <adapter> to read raw files"
    try:
        frame = pl.read_parquet(path)
    except pl.exceptions.ComputeError as err:
        raise ValueError(f"{path} is not a Parquet file of validated trips; {hint}") from err
    required = [name for name, column in TripSchema.columns().items() if not column.nullable]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a file of validated trips: missing columns {missing}; {hint}")
    return frame
