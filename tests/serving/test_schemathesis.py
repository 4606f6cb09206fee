"""Property-based: requests generated from the service's own OpenAPI schema never get a 5xx.

Cases come from schemathesis strategies, positive (valid by the schema) and negative (violating it), and
are driven by a plain Hypothesis loop: schemathesis' pytest fixture loader does not run on pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.serving.conftest import wait_ready

MAX_EXAMPLES = 25  # per operation and mode: bounded, and the same cases every run (derandomized)
SKIPPED = {"/metrics"}  # needs a real server's Prometheus set-up (covered by test_real_server)


@pytest.fixture(scope="module")
def api_schema(champion):
    from serving.service import EtaService

    return schemathesis.openapi.from_asgi("/docs.json", EtaService.to_asgi())


@pytest.fixture
def served(api_schema):
    """The app's lifespan started and its model loaded (schemathesis ends the lifespan with each test)."""
    from schemathesis.python import asgi

    with asgi.get_client(api_schema.app) as client:
        wait_ready(client, base=f"http://{asgi.HOST}")
    return api_schema


def operations(api_schema) -> list:
    ops = [result.ok() for result in api_schema.get_all_operations()]
    return [op for op in ops if op.path not in SKIPPED]


def test_the_schema_lists_every_endpoint(api_schema) -> None:
    paths = {op.path for op in operations(api_schema)}
    assert {
        "/eta",
        "/delivery_window",
        "/route_eta",
        "/admin/reload",
        "/admin/status",
        "/livez",
        "/readyz",
    } <= paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(served, mode: GenerationMode) -> None:
    for operation in operations(served):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # the probes take no input to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call_and_validate(checks=[not_a_server_error])
            if response.status_code == 200 and case.method.upper() == "POST":
                response_schema_conformance(None, response, case)

        check()
