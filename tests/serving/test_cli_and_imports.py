"""`eta serve` / `eta build-bento` wiring, and what importing the service pulls in."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from data_contracts.home import PROJECT_ROOT
from eta_cli.main import app
from eta_cli.serving_commands import _is_loopback
from models import compiled
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
    assert _is_loopback(host) is loopback


def test_serve_refuses_an_open_interface_without_an_api_key(monkeypatch) -> None:
    monkeypatch.delenv("ETA_SERVE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "without an API key" in result.output


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


def test_the_tree_libraries_load_without_their_scikit_learn_and_pandas_extras(tmp_path) -> None:
    """What a serving worker imports for its boosters; scikit-learn and pandas still import afterwards, and
    compiled trees are still checked against LightGBM (the check rows no longer need pandas)."""
    code = f"""
from serving.model_source import import_tree_libraries
import_tree_libraries()
print('not imported:', [m for m in ('sklearn', 'pandas', 'scipy.stats') if m not in sys.modules])
import numpy as np
from models import compiled
from models.quantile import BoostingParams, LightGBMQuantile
rng = np.random.default_rng(0)
X = rng.normal(size=(600, 3)); y = X[:, 0] + rng.normal(0, 0.2, 600)
params = BoostingParams(num_leaves=7, median_rounds=5, spread_rounds=3, num_threads=1)
model = LightGBMQuantile(quantiles=(0.1, 0.5, 0.9), params=params).fit(X[:500], y[:500], X[500:], y[500:])
cache = {str(tmp_path)!r}
compiled.wait_compiler(compiled.start_compiler(compiled.missing_objects(model, __import__('pathlib').Path(cache))))
faster = compiled.compiled_regressor(model, __import__('pathlib').Path(cache))
print('compiled gap:', float(np.max(np.abs(faster.predict(X) - model.predict(X)))))
import pandas, sklearn.base
"""
    loaded = _modules_after(code)
    assert "not imported: ['sklearn', 'pandas', 'scipy.stats']" in loaded
    gap = float(loaded.split("compiled gap:")[1].split()[0])
    assert gap <= compiled.CHECK_TOLERANCE
    assert "'pandas'" in loaded  # both import as usual afterwards
    assert "'sklearn'" in loaded


def test_the_model_endpoints_skip_tracing_unless_asked() -> None:
    from opentelemetry.util.http import ExcludeList

    from serving.config import MODEL_ENDPOINTS, ServingConfig
    from serving.service import EtaService

    untraced = ExcludeList(ServingConfig().untraced_urls())
    for path in MODEL_ENDPOINTS:
        assert untraced.url_disabled(f"http://127.0.0.1:3000{path}")
    for path in ("/admin/status", "/admin/reload", "/livez", "/readyz", "/eta/other", "/etas"):
        assert not untraced.url_disabled(f"http://127.0.0.1:3000{path}")
    assert ServingConfig.from_env({"ETA_SERVE_TRACE_MODEL_ENDPOINTS": "true"}).untraced_urls() == []
    # the service as imported here (the variable unset) hands the patterns to BentoML
    assert EtaService.config["tracing"]["excluded_urls"] == ServingConfig().untraced_urls()
