"""`eta serve` / `eta build-bento` wiring, and what importing the service pulls in."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from data_contracts.home import PROJECT_ROOT
from eta_cli.main import app
from serving.guard import is_loopback
from tests.serving.servers import python_output


def test_the_serving_commands_are_registered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "build-bento", "export-model"):
        assert command in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("eta.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("keys", "missing"),
    [
        ({}, "ETA_SERVE_API_KEY and ETA_SERVE_ADMIN_KEY"),
        ({"ETA_SERVE_API_KEY": "k"}, "ETA_SERVE_ADMIN_KEY;"),
        ({"ETA_SERVE_ADMIN_KEY": "a"}, "ETA_SERVE_API_KEY;"),
    ],
)
def test_serve_refuses_an_open_interface_without_both_keys(monkeypatch, keys, missing) -> None:
    for name in ("ETA_SERVE_API_KEY", "ETA_SERVE_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert f"refusing to serve on 0.0.0.0 without {missing}" in result.output


def test_serve_reports_a_bad_setting_by_its_variable(monkeypatch) -> None:
    monkeypatch.setenv("ETA_SERVE_MAX_LEGS", "many")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "ETA_SERVE_MAX_LEGS" in result.output


def _modules_after(code: str) -> str:
    """The top-level modules a fresh interpreter holds after running `code` (printed as a list)."""
    probe = f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules if sys.modules[m]}}))"
    return python_output(probe, PROJECT_ROOT)


def test_the_service_does_not_import_what_it_does_not_need() -> None:
    """evidently alone takes ~12 s to import; mlflow is only imported when the registry is used. `bentoml
    serve` imports the module in its own process only to read the configuration: the model code (polars,
    numpy, the tree libraries) waits for the worker's `EtaService()`."""
    loaded = _modules_after("import serving.service")
    for heavy in ("evidently", "dagster", "mlflow", "matplotlib", "pandas", "polars", "numpy", "lightgbm"):
        assert f"'{heavy}'" not in loaded
    assert "'bentoml'" in loaded


def test_the_model_endpoints_skip_tracing() -> None:
    from opentelemetry.util.http import ExcludeList

    from serving.config import MODEL_ENDPOINTS, untraced_patterns
    from serving.service import EtaService

    untraced = ExcludeList(untraced_patterns(MODEL_ENDPOINTS))
    for path in MODEL_ENDPOINTS:
        assert untraced.url_disabled(f"http://127.0.0.1:3000{path}")
    for path in ("/admin/status", "/admin/reload", "/livez", "/readyz", "/eta/other", "/etas"):
        assert not untraced.url_disabled(f"http://127.0.0.1:3000{path}")
    assert EtaService.config["tracing"]["excluded_urls"] == untraced_patterns(MODEL_ENDPOINTS)
