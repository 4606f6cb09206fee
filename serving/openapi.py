"""The OpenAPI document the service publishes: BentoML's, completed to say what the service answers.

BentoML documents every endpoint with 200, 400 (a body whose `detail` is a string), 404 and 500. The service
also answers 401, 413, 415, 422 and 503, its error bodies carry a list of fields (`serving.schemas.ErrorBody`),
and the most items per list come from its configuration; the guard serves this document at /docs.json.
Its `info` names the product, its version and the model served when the document is asked for (BentoML's
says "lastmile-eta:dev", version "None", and advertises BentoML).
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from pydantic import BaseModel

from serving.config import ADMIN_PREFIX, MODEL_ENDPOINTS, STATUS_PATH, ServingConfig
from serving.schemas import ErrorBody, ModelInfo, Ready, Unavailable

PRODUCT = "lastmile-eta"
SUMMARY = "Calibrated delivery ETAs: per-leg quantiles, customer delivery windows, multi-stop route arrivals."

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "The body is not JSON, repeats a key, or breaks the schema; `detail` names each field",
    "401": "Missing or wrong X-API-Key",
    "413": "The body, or one of its lists, is larger than the service takes",
    "415": "The body is not application/json",
}
UNANSWERABLE = (
    "Valid in form, but the model cannot answer it: a leg outside the area and distances it was trained "
    "on, or a delivery that departed implausibly long ago; `detail` names the leg and the reason"
)
ADMIN_LOOPBACK = "No admin key is configured and the caller is not on loopback"
NOT_SERVING = "No model to answer with yet (or the registry is unreachable); `error` says why"
# Lists whose length the configuration bounds: (endpoint, field) -> ServingConfig field
LIST_MAXIMA = {
    ("/eta", "legs"): "max_legs",
    ("/exception_risk", "deliveries"): "max_legs",
    ("/route_eta", "stops"): "max_stops",
}


def _component(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _response(description: str, ref: dict[str, str]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def nullable(node: Any) -> Any:
    """pydantic's `anyOf: [X, {"type": "null"}]` (JSON Schema) as OpenAPI 3.0 says it: X with `nullable`."""
    if isinstance(node, list):
        return [nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del node["anyOf"]
        only = rest[0] if len(rest) == 1 else {"anyOf": rest}
        # a $ref takes no siblings in OpenAPI 3.0: wrapped in allOf, it can be nullable
        node = {**node, **({"allOf": [only]} if "$ref" in only else only), "nullable": True}
    return node


def _by_reference(spec: dict[str, Any]) -> None:
    """Bodies by reference to their components: BentoML's inline copies in `paths` lost pydantic's nulls."""
    schemas = spec.get("components", {}).get("schemas", {})
    for item in spec["paths"].values():
        for operation in item.values():
            bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
            for body in bodies:
                media = body.get("content", {}).get("application/json", {})
                if media.get("schema", {}).get("title") in schemas:
                    media["schema"] = {"$ref": REF.format(model=media["schema"]["title"])}


def product_version(fallback: str = "unknown") -> str:
    """The installed project's version (pyproject.toml); a Bento does not install the project."""
    try:
        return metadata.version(PRODUCT)
    except metadata.PackageNotFoundError:
        return fallback


def _info(bentoml_info: dict[str, Any], config: ServingConfig, model: ModelInfo | None) -> dict[str, Any]:
    """Product, version (in a Bento, the Bento's version) and the model being served."""
    if model is None:
        served = f"No model is served yet: waiting for `{config.model_name}@{config.model_alias}`."
    else:
        name = f"{model.name}@{model.alias}" if model.alias else model.name
        served = f"Serving `{name}`, version {model.version} (from the {model.source})."
    bento = bentoml_info.get("version")
    version = product_version(bento if bento not in (None, "None") else "unknown")
    return {"title": PRODUCT, "version": version, "description": f"{SUMMARY}\n\n{served}"}


def _status_by_get(paths: dict[str, Any]) -> None:
    """GET /admin/status: the POST operation without its body (nor the 400 a body can cause)."""
    post = paths.get(STATUS_PATH, {}).get("post")
    if post is not None:
        get = dict(post, operationId=post["operationId"] + "_get", responses=dict(post["responses"]))
        del get["requestBody"], get["responses"]["400"]
        paths[STATUS_PATH]["get"] = get


def published_spec(
    spec: dict[str, Any], config: ServingConfig, model: ModelInfo | None = None
) -> dict[str, Any]:
    """`spec` (BentoML's document, as a dict) with the service's own error responses and list maxima, and
    its `info` naming `model` (the one served now; None: none yet)."""
    spec = json.loads(json.dumps(spec))  # a copy, status codes as strings like the JSON text's
    spec["info"] = _info(spec.get("info", {}), config, model)
    _status_by_get(spec["paths"])
    _by_reference(spec)
    spec = nullable(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error, unavailable = _component(schemas, ErrorBody), _component(schemas, Unavailable)
    ready = _component(schemas, Ready)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if method == "post" or path == STATUS_PATH:
                errors = ERRORS if method == "post" else {"401": ERRORS["401"]}  # a GET has no body
                for status, description in errors.items():
                    if status != "401" or config.auth_enabled:
                        responses[status] = _response(description, error)
                responses["503"] = _response(NOT_SERVING, unavailable)
                if path.startswith(ADMIN_PREFIX):
                    responses["403"] = _response(ADMIN_LOOPBACK, error)
                    if config.admin_key:
                        responses["401"] = _response(ERRORS["401"] + " or X-Admin-Key", error)
                if path in MODEL_ENDPOINTS:
                    responses["422"] = _response(UNANSWERABLE, error)
                    operation["requestBody"]["required"] = True  # the admin endpoints take an empty body
            elif path == "/readyz":
                responses["200"] = _response("Ready to answer; `detail` names the model", ready)
                responses["503"] = _response("Not ready; `error` says why", unavailable)
    for (path, field), setting in LIST_MAXIMA.items():
        if path in spec["paths"]:
            _request_schema(spec, path)["properties"][field]["maxItems"] = getattr(config, setting)
    return spec
