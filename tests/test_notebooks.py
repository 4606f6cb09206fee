"""The notebooks run, top to bottom, on small data (so they cannot rot), and show every figure they make."""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, env: dict[str, str], figures: int) -> None:
    """Execute the notebook with `env` set; no cell may fail and `figures` images must be in its output."""
    notebook = jupytext.read(NOTEBOOKS / name)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    shown = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(shown) == figures, f"{name} shows {len(shown)} of its {figures} figures"


@pytest.mark.slow
def test_01_explore_trips(shared_data: Path) -> None:
    run_notebook("01_explore_trips.py", {"ETA_NOTEBOOK_SMALL": "1"}, figures=3)


@pytest.mark.slow
def test_02_model_report(tmp_path: Path) -> None:
    # needs only the synthetic city, so it runs even where ../shared/data is absent
    run_notebook("02_model_report.py", {"ETA_NOTEBOOK_SMALL": "1", "ETA_HOME": str(tmp_path)}, figures=4)


@pytest.mark.slow
def test_03_drift_and_retraining(tmp_path: Path) -> None:
    # the simulated city only: runs even where ../shared/data is absent
    run_notebook(
        "03_drift_and_retraining.py", {"ETA_NOTEBOOK_SMALL": "1", "ETA_HOME": str(tmp_path)}, figures=1
    )
