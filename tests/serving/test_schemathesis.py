"""The published OpenAPI document says what the service answers (serving.openapi).

schemathesis runs every check over it against the real server in test_real_server; these tests pin what the
document adds to BentoML's: error bodies, the statuses the guard and the model answer, nulls, list maxima.
"""

from __future__ import annotations

import pytest

from serving.config import MODEL_ENDPOINTS, ServingConfig
from serving.openapi import nullable, published_spec

ENDPOINTS = {"/eta", "/delivery_window", "/route_eta", "/exception_risk", "/admin/reload", "/admin/status"}


@pytest.fixture(scope="module")
def bentoml_spec(champion) -> dict:
    from serving.service import EtaService

    return EtaService.openapi_spec.asdict()


@pytest.fixture(scope="module")
def served_spec(client) -> dict:
    response = client.get("/docs.json")
    assert response.status_code == 200
    return response.json()


def test_the_served_document_is_the_published_one(served_spec, bentoml_spec, client) -> None:
    from serving.schemas import ModelInfo

    served = ModelInfo.model_validate(client.get("/admin/status").json()["model"])
    assert served_spec == published_spec(bentoml_spec, ServingConfig.from_env(), served)
    assert {*ENDPOINTS, "/livez", "/readyz"} <= set(served_spec["paths"])


def test_every_post_declares_the_guards_and_the_models_answers(served_spec) -> None:
    error, unavailable = "#/components/schemas/ErrorBody", "#/components/schemas/Unavailable"
    for path in ENDPOINTS:
        responses = served_spec["paths"][path]["post"]["responses"]
        declared = {
            status: r["content"]["application/json"]["schema"]["$ref"]
            for status, r in responses.items()
            if status not in ("404", "500")
        }
        expected = {"413": error, "415": error, "400": error, "503": unavailable}
        if path in MODEL_ENDPOINTS:
            expected["422"] = error
        else:
            expected["403"] = error  # no admin key configured: loopback callers only
        assert {k: v for k, v in declared.items() if k != "200"} == expected, path
        assert served_spec["paths"][path]["post"].get("requestBody", {}).get("required", False) is (
            path in MODEL_ENDPOINTS
        )
    item = served_spec["components"]["schemas"]["ErrorItem"]
    assert item["properties"]["loc"]["items"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_admin_status_by_get_declares_what_a_bodiless_request_can_get(served_spec, bentoml_spec) -> None:
    get, post = (served_spec["paths"]["/admin/status"][method] for method in ("get", "post"))
    assert set(get["responses"]) == {"200", "403", "404", "500", "503"}
    assert {s: get["responses"][s] for s in ("200", "403", "503")} == {
        s: post["responses"][s] for s in ("200", "403", "503")
    }
    assert "requestBody" not in get
    assert (get["operationId"], post["operationId"]) == ("lastmile-eta__status_get", "lastmile-eta__status")
    locked = published_spec(bentoml_spec, ServingConfig(api_key="k", admin_key="a"))
    assert {"401", "403"} <= set(locked["paths"]["/admin/status"]["get"]["responses"])


def test_the_document_names_the_product_its_version_and_the_model_served(bentoml_spec) -> None:
    import tomllib

    from data_contracts.home import PROJECT_ROOT
    from serving.schemas import ModelInfo

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    bento = ModelInfo(name="eta-model", version="7", alias=None, source="bento")
    info = published_spec(bentoml_spec, ServingConfig(), bento)["info"]
    assert (info["title"], info["version"]) == (project["name"], project["version"])
    assert info["description"].endswith("\n\nServing `eta-model`, version 7 (from the bento).")
    waiting = published_spec(bentoml_spec, ServingConfig(model_alias="staging"))["info"]["description"]
    assert waiting.endswith("\n\nNo model is served yet: waiting for `eta-model@staging`.")


def test_an_api_key_adds_401(bentoml_spec) -> None:
    locked = published_spec(bentoml_spec, ServingConfig(api_key="k"))
    assert all("401" in locked["paths"][p]["post"]["responses"] for p in ENDPOINTS)
    assert not any(
        "401" in published_spec(bentoml_spec, ServingConfig())["paths"][p]["post"]["responses"]
        for p in ENDPOINTS
    )


def test_list_maxima_are_the_configured_ones(bentoml_spec) -> None:
    spec = published_spec(bentoml_spec, ServingConfig(max_legs=7, max_stops=3))
    schemas = spec["components"]["schemas"]
    assert schemas["EtaRequestIODescriptor"]["properties"]["legs"]["maxItems"] == 7
    assert schemas["ExceptionRiskRequestIODescriptor"]["properties"]["deliveries"]["maxItems"] == 7
    assert schemas["RouteRequestIODescriptor"]["properties"]["stops"]["maxItems"] == 3
    assert schemas["EtaRequestIODescriptor"]["properties"]["legs"]["minItems"] == 1


def test_optional_fields_are_nullable_as_openapi_3_0_says_it(served_spec) -> None:
    schemas = served_spec["components"]["schemas"]
    assert schemas["LegEta"]["properties"]["elapsed_s"] == {
        "type": "number",
        "nullable": True,
        "title": "Elapsed S",
        "description": "As given: the seconds below then count from departure + elapsed",
    }
    assert schemas["DeliveryWindowRequestIODescriptor"]["properties"]["planned_stop"] == {
        "allOf": [{"$ref": "#/components/schemas/PlannedStop"}],
        "nullable": True,
        "default": None,
    }
    assert '"type": "null"' not in str(served_spec).replace("'", '"')


def test_nullable_leaves_other_unions_alone() -> None:
    both = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert nullable(both) == both
    assert nullable({"anyOf": [*both["anyOf"], {"type": "null"}]}) == {**both, "nullable": True}
    assert nullable([{"anyOf": [{"type": "number"}, {"type": "null"}]}]) == [
        {"type": "number", "nullable": True}
    ]


def test_the_schema_knows_the_zones_slots_and_years_the_validators_take(served_spec) -> None:
    from data_contracts.zones import known_zones
    from serving.schemas import FIRST_YEAR, SLOT_MINUTES

    leg = served_spec["components"]["schemas"]["Leg"]["properties"]
    # tz may be left out or null (the model's one zone is used): null is in the enum, as OpenAPI 3.0 needs
    assert set(leg["tz"]["enum"]) == known_zones() | {None}
    assert leg["tz"]["nullable"] is True
    for name in ("Leg", "OrderLeg", "RouteRequestIODescriptor"):
        schema = served_spec["components"]["schemas"][name]
        assert "tz" not in schema["required"], name
        assert schema["properties"]["tz"]["enum"] == leg["tz"]["enum"], name
    assert leg["departure_time"]["pattern"] == f"^{FIRST_YEAR // 100}[0-9]{{2}}-"
    window = served_spec["components"]["schemas"]["DeliveryWindowRequestIODescriptor"]["properties"]
    assert window["slot_minutes"]["enum"] == list(SLOT_MINUTES)
    assert (SLOT_MINUTES[:6], 7 in SLOT_MINUTES, max(SLOT_MINUTES)) == ((1, 2, 3, 4, 5, 6), False, 240)
