"""The notebooks run, top to bottom, on small data (so they cannot rot), show every figure they make, and
print no warnings and no progress bars (a reader should not scroll past a flood to reach the results);
JupyterLab, started the way `make notebooks` starts it, opens them as notebooks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jupytext
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook, new_output

from pipelines.ui import free_port

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# what `make notebooks` starts JupyterLab with
JUPYTERLAB_CONFIG = NOTEBOOKS / ".jupyterlab" / "jupyter_lab_config.py"
# a Python warning (`file.py:12: RuntimeWarning: ...`, `TqdmWarning: IProgress not found`), a logged
# WARNING line (`... WARNING mlflow.pyfunc: ...`, `dagster - WARNING - ...`) or a tqdm bar (` 45%|████▌ `)
NOISE = re.compile(r"\w*Warning\b|\bWARNING\b|\d+%\|")


def noisy_lines(notebook) -> list[str]:
    """The stream output lines (stdout and stderr) of code cells that are warnings or progress bars."""
    return [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
        for line in re.split(r"[\r\n]+", o.get("text", ""))
        if NOISE.search(line)
    ]


def run_notebook(name: str, env: dict[str, str], figures: int) -> None:
    """Execute the notebook with `env` set: no cell may fail, `figures` images must be in its output and no
    line of its stream output may be a warning or a progress bar."""
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
    noise = noisy_lines(notebook)
    assert not noise, f"{name} prints {len(noise)} warning or progress lines:\n" + "\n".join(noise[:20])


@pytest.mark.parametrize(
    "text",
    [
        "/x/dagster/_core/execution/context_creation_job.py:273: RuntimeWarning:",
        "tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.",
        "2026/12/04 01:32:38 WARNING mlflow.utils.environment: Failed to resolve installed pip version.",
        "2026-12-04 01:36:05 +0000 - dagster - WARNING - retraining_job - ...",
        "\rDownloading artifacts:  45%|████▌     | 10/22 [00:00<00:00, 429.06it/s]",
    ],
)
def test_warnings_and_progress_bars_are_noise(text: str) -> None:
    notebook = new_notebook(cells=[new_code_cell(outputs=[new_output("stream", name="stderr", text=text)])])
    assert noisy_lines(notebook) == [line for line in re.split(r"[\r\n]+", text) if line]


def test_results_are_not_noise() -> None:
    lines = [
        "tracking store: sqlite:///.eta/mlflow/mlflow.db?timeout=60",
        "2026/12/04 01:29:51 INFO mlflow.store.db.utils: Creating initial MLflow database tables...",
        "On the fresh week the 80% / 90% intervals hold 0.747 / 0.859 of legs (nominal 0.80 / 0.90)",
    ]
    output = new_output("stream", name="stdout", text="\n".join(lines))
    notebook = new_notebook(cells=[new_code_cell(outputs=[output])])
    assert noisy_lines(notebook) == []


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


@pytest.fixture
def jupyterlab(tmp_path: Path):
    """JupyterLab started with `make notebooks`' config file on a free port, with a known token, from another
    folder (the config must say where the notebooks are); Jupyter's per-user folders under tmp_path, so a
    developer's own settings change nothing."""
    folders = (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR",
    )
    env = {**os.environ, **{name: str(tmp_path / name.lower()) for name in folders}}
    port, token = free_port(), "notebooks-test-token"
    log_path = tmp_path / "jupyterlab.log"
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        f"--config={JUPYTERLAB_CONFIG}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.25)
        yield {"url": url, "token": token, "runtime": tmp_path / "jupyter_runtime_dir", "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_jupyterlab_opens_the_notebooks(jupyterlab: dict) -> None:
    url, auth = jupyterlab["url"], {"token": jupyterlab["token"]}
    (server,) = jupyterlab["runtime"].glob("jpserver-*.json")
    info = json.loads(server.read_text())
    assert info["url"] == f"{url}/"  # loopback, on the port asked for
    assert info["root_dir"] == str(NOTEBOOKS)
    assert httpx.get(f"{url}/api/contents").status_code == 403  # nothing without the token
    # jupytext's contents manager serves the percent scripts as notebooks, cell for cell
    listing = httpx.get(f"{url}/api/contents", params=auth).json()["content"]
    scripts = sorted(NOTEBOOKS.glob("*.py"))
    assert sorted((item["name"], item["type"]) for item in listing) == [(p.name, "notebook") for p in scripts]
    for script in scripts:
        opened = httpx.get(f"{url}/api/contents/{script.name}", params={**auth, "type": "notebook"}).json()
        cells = [(c["cell_type"], c["source"]) for c in opened["content"]["cells"]]
        assert cells == [(c.cell_type, c.source) for c in jupytext.read(script).cells]
    # a double click opens them in jupytext's notebook view (overrides.json), not the text editor
    docmanager = httpx.get(f"{url}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", params=auth)
    assert docmanager.json()["schema"]["properties"]["defaultViewers"]["default"] == {
        "python": "Jupytext Notebook"
    }
    assert '"name": "jupyterlab-jupytext"' in httpx.get(f"{url}/lab", params=auth).text
    # asked to open a browser on a machine without one, the server logs this line
    assert "No web browser found" not in jupyterlab["log"].read_text()
