"""Screenshots of what a data scientist opens first, taken by headless Chromium against `eta ui` on loopback.

Run after `make demo` (it reads the demo's state under ETA_HOME): `make screenshots`. It starts `eta ui` on
free ports, captures the Dagster pages of the candidate model (metadata table, numbers over the partitions)
and of the performance monitor, an MLflow run (description, datasets, metrics) and the registered model
version, then stops the UIs. Not part of `make test`: it needs Debian's `chromium` package and Playwright
(the `screenshots` dependency group), driving the system Chromium rather than a downloaded one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_contracts.home import eta_home  # noqa: E402
from models.tracking import REGISTERED_MODEL, ui_link  # noqa: E402
from pipelines import ui as services  # noqa: E402
from pipelines.assets_model import CANDIDATE  # noqa: E402
from pipelines.assets_monitor import DRIFT, PERFORMANCE  # noqa: E402

VIEWPORT = {"width": 1500, "height": 1200}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no Chromium found: `apt-get install chromium` (Debian's package), then run this again")


def latest(folder: Path) -> tuple[str, dict]:
    files = sorted(folder.glob("date=*.json"))
    if not files:
        raise SystemExit(f"nothing in {folder}: run `make demo` first")
    return files[-1].stem.removeprefix("date="), json.loads(files[-1].read_text())


def wait_for(url: str, ui, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline or ui.process.poll() is not None:
                raise SystemExit(f"{url} did not come up; see {log}") from None
            time.sleep(2)


def dagster_page(page, url: str, path: Path) -> None:
    """An asset's Events tab: the metadata of one materialization."""
    page.goto(url)
    page.get_by_text("Metadata", exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(path))
    print(f"{path.name:34s} {url}")


def dagster_plots(page, url: str, path: Path) -> None:
    """An asset's Overview with its metadata shown as Plots: each number drawn over its materializations."""
    page.goto(url)
    page.get_by_role("button", name="Plots").click(timeout=60_000)
    page.get_by_role("button", name="Events").last.click()  # by event (the by-partition view stays empty)
    page.wait_for_timeout(8000)  # the plots load their own query
    page.screenshot(path=str(path), full_page=True)
    print(f"{path.name:34s} {url}")


def mlflow_page(page, url: str, path: Path, ready_text: str) -> None:
    page.goto(url)
    page.get_by_text(ready_text).first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    close = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel opens beside the page
    if close.count():
        close.first.click()
    page.screenshot(path=str(path), full_page=True)
    print(f"{path.name:34s} {url}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "screenshots")
    args = parser.parse_args()
    browser_path = chromium()
    home = eta_home()
    pipeline = home / "pipeline"
    trained, candidate = latest(pipeline / CANDIDATE)
    monitored, _ = latest(pipeline / PERFORMANCE)
    args.out.mkdir(parents=True, exist_ok=True)

    dagster_port, mlflow_port = services.free_port(), services.free_port()
    log = home / "logs" / "ui_screenshots.log"
    command = [
        str(Path(sys.executable).parent / "eta"),
        "ui",
        "--dagster-port",
        str(dagster_port),
        "--mlflow-port",
        str(mlflow_port),
    ]
    ui = services.start("eta-ui", command, {**os.environ, "ETA_HOME": str(home)}, log)
    dagster, mlflow = f"http://127.0.0.1:{dagster_port}", f"http://127.0.0.1:{mlflow_port}"
    try:
        wait_for(f"{dagster}/server_info", ui, log)
        wait_for(mlflow, ui, log)
        # Dagster's "join the community" dialog covers every page of a fresh instance: mark it seen
        request = urllib.request.Request(
            f"{dagster}/graphql",
            data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).close()
        # the demo's links point at its own MLflow port; the routes are the same on this one
        run_route = candidate["run_url"].split("/#/", 1)[1].split("?", 1)[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=browser_path,
                args=["--no-sandbox"],  # root in a container: no sandbox
            )
            page = browser.new_page(viewport=VIEWPORT)
            events = "view=events&partition="
            dagster_page(
                page, f"{dagster}/assets/{CANDIDATE}?{events}{trained}", args.out / "dagster_candidate.png"
            )
            dagster_plots(
                page,
                f"{dagster}/assets/{PERFORMANCE}?view=overview",
                args.out / "dagster_performance_plots.png",
            )
            dagster_page(
                page, f"{dagster}/assets/{DRIFT}?{events}{monitored}", args.out / "dagster_drift.png"
            )
            mlflow_page(page, ui_link(mlflow, run_route), args.out / "mlflow_run.png", "Datasets")
            mlflow_page(
                page,
                ui_link(mlflow, f"models/{REGISTERED_MODEL}/versions/{candidate['version']}"),
                args.out / "mlflow_model_version.png",
                "Description",
            )
            browser.close()
    finally:
        services.stop(ui)


if __name__ == "__main__":
    main()
