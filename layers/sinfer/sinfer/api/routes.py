"""predict_api's routes, written once and mounted on both API Gateway flavours.

The routes speak standard protocols so existing clients work unchanged: the Open Inference
Protocol v2 (KServe v2 / Triton, including the binary tensor data extension, so
``tritonclient.http`` works with its defaults) and KServe v1 ``:predict``.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from sinfer import __version__
from sinfer.api.payload import (
    JSON,
    MAX_SYNC_INSTANCES,
    MAX_SYNC_PAYLOAD_BYTES,
    MAX_SYNC_RESPONSE_BYTES,
    OCTET,
    check_instance_count,
    check_response_size,
    compact_json,
    decode_body,
    proxy_body_size,
)
from sinfer.errors import MethodNotAllowedError, ModelNotReadyError, UnsupportedMediaTypeError
from sinfer.inference.registry import ModelRegistry, default_registry
from sinfer.observability import metrics
from sinfer.protocols import jsonbody, kserve_v1, oip_v2

router = Router()  # type: ignore[no-untyped-call]

# Re-exported: the limits live in sinfer.api.payload, which the fast path shares.
__all__ = ["MAX_SYNC_INSTANCES", "MAX_SYNC_PAYLOAD_BYTES", "MAX_SYNC_RESPONSE_BYTES", "router"]


def registry() -> ModelRegistry:
    return default_registry()


def json_response(doc: Any, status: int = 200) -> Response[str]:
    body = compact_json(doc)
    check_response_size(proxy_body_size(body))
    return Response(status_code=status, content_type=JSON, body=body)


def _list_models() -> list[str]:
    """Model names in the store; an unreachable store is 'not ready', not an internal error."""
    try:
        return registry().store.list_models()
    except Exception as exc:
        raise ModelNotReadyError(f"model store is not reachable: {exc}") from None


def request_headers() -> Any:
    """The request's headers, case-insensitive.

    Powertools rebuilds this mapping from the event on every ``.headers`` access (~5 us for a
    REST event), so a route reads it once and passes it on.
    """
    return router.current_event.headers


def request_body(headers: Any = None) -> bytes:
    """The raw request body: base64-decoded when API Gateway encoded it, size-checked, inflated."""
    event = router.current_event
    headers = event.headers if headers is None else headers
    return decode_body(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-encoding"))


# --- Open Inference Protocol v2: health and metadata ------------------------------------


@router.get("/v2/health/live")
def live() -> Response[str]:
    return json_response({"live": True})


@router.get("/v2/health/ready")
def ready() -> Response[str]:
    _list_models()
    return json_response({"ready": True})


@router.get("/v2")
def server_metadata() -> Response[str]:
    return json_response({"name": "sinfer", "version": __version__, "extensions": ["binary_tensor_data"]})


@router.get("/v2/models/<name>")
def model_metadata(name: str) -> Response[str]:
    return json_response(registry().get(name).metadata())


@router.get("/v2/models/<name>/versions/<version>")
def model_version_metadata(name: str, version: str) -> Response[str]:
    return json_response(registry().get(name, version).metadata())


@router.get("/v2/models/<name>/ready")
def model_ready(name: str) -> Response[str]:
    model = registry().get(name)
    return json_response({"name": name, "version": model.version, "ready": True})


@router.get("/v2/models/<name>/versions/<version>/ready")
def model_version_ready(name: str, version: str) -> Response[str]:
    registry().get(name, version)
    return json_response({"name": name, "version": version, "ready": True})


@router.post("/v2/repository/index")
def repository_index() -> Response[str]:
    store = registry().store
    entries = []
    for name in _list_models():
        for version in store.list_versions(name):
            loaded = registry().is_loaded(name, version)
            entries.append({"name": name, "version": version, "state": "READY" if loaded else "UNAVAILABLE"})
    return json_response(entries)


# --- Open Inference Protocol v2: inference ----------------------------------------------


def _infer(name: str, version: str | None) -> Response[Any]:
    model = registry().get(name, version)
    headers = request_headers()
    body = request_body(headers)
    kind = kserve_v1.media_type(headers.get("content-type"))
    if kind != OCTET and not kserve_v1.is_json(kind):
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind!r} is not accepted by /infer; send application/json, or "
            "application/octet-stream with Inference-Header-Content-Length (binary tensor data)"
        )
    header_length = oip_v2.parse_header_length(headers.get("inference-header-content-length"), len(body))
    request = oip_v2.decode_request(body, header_length)
    values = model.run_v2(request.inputs)
    payload, json_length = oip_v2.encode_response(
        model.name, model.version, model.output_names, values, request
    )
    response: Response[Any]
    if json_length is None:
        check_response_size(proxy_body_size(payload))
        response = Response(status_code=200, content_type=JSON, body=payload.decode("utf-8"))
    else:
        check_response_size(len(payload) * 4 // 3 + 4)  # binary bodies leave Lambda base64-encoded
        response = Response(
            status_code=200,
            content_type=OCTET,
            body=payload,
            headers={"Inference-Header-Content-Length": str(json_length)},
        )
    metrics.add_metric(name="InferRequests", unit=MetricUnit.Count, value=1)  # (once it fits)
    return response


@router.post("/v2/models/<name>/infer")
def infer(name: str) -> Response[Any]:
    return _infer(name, None)


@router.post("/v2/models/<name>/versions/<version>/infer")
def infer_version(name: str, version: str) -> Response[Any]:
    return _infer(name, version)


# --- KServe v1 ---------------------------------------------------------------------------


@router.get("/v1/models")
def list_models() -> Response[str]:
    return json_response({"models": _list_models()})


@router.get("/v1/models/<name>")
def v1_model(name: str) -> Response[str]:
    if ":" in name:  # no model name holds one: the path of another route (":predict"), or none
        allow = allowed_methods(f"/v1/models/{name}")
        if allow:
            raise method_not_allowed("GET", f"/v1/models/{name}", allow)
    model = registry().get(name)
    return json_response({"name": name, "version": model.version, "ready": True})


def _predict(name: str, version: str | None) -> Response[str]:
    model = registry().get(name, version)
    headers = request_headers()
    body = request_body(headers)
    instances = kserve_v1.decode_request(body, headers.get("content-type"))
    check_instance_count(len(instances))
    predictions = model.predict(instances)
    response = json_response(kserve_v1.encode_response(predictions, model.name, model.version))
    # (counted once the response is known to fit: a 413 delivers no predictions)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(predictions))
    return response


@router.post("/v1/models/<name>:predict")
def predict(name: str) -> Response[str]:
    return _predict(name, None)


@router.post("/v1/models/<name>/versions/<version>:predict")
def predict_version(name: str, version: str) -> Response[str]:
    return _predict(name, version)


# --- asynchronous jobs -------------------------------------------------------------------


@router.post("/jobs")
def create_job() -> Response[str]:
    from sinfer.jobs.api import create_job as create

    body = request_body()
    kind = kserve_v1.media_type(router.current_event.headers.get("content-type"))
    if not kserve_v1.is_json(kind):
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind!r} is not accepted by /jobs; send application/json"
        )
    doc = jsonbody.parse(body) if body else None
    return json_response(create(doc, registry()), status=202)


@router.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response[str]:
    from sinfer.jobs.api import get_job as get

    return json_response(get(job_id))


# --- documentation -----------------------------------------------------------------------


@router.get("/openapi.json")
def openapi() -> Response[str]:
    return Response(status_code=200, content_type=JSON, body=_openapi_text())


def _openapi_text() -> str:
    return resources.files("sinfer.api").joinpath("openapi.json").read_text(encoding="utf-8")


@functools.cache
def _route_patterns() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """Each documented path as a pattern, with its methods (the committed OpenAPI document,
    which tests/unit/test_openapi.py holds equal to the router's routes). A parameter is one
    path segment without ":": no model name, version or job id holds one, so
    ``/v1/models/digits:predict`` is the predict route's path alone, not also ``/v1/models/{name}``."""
    patterns = []
    for path, item in json.loads(_openapi_text())["paths"].items():
        methods = tuple(sorted(m.upper() for m in item if m in _HTTP_METHODS))
        regex = "".join(
            "[^/:]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", path)
        )
        patterns.append((re.compile(regex), methods))
    return tuple(patterns)


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})


def allowed_methods(path: str, trailing_slash: bool = False) -> tuple[str, ...]:
    """The methods the API takes on ``path`` (none: no such route). With ``trailing_slash``,
    one trailing slash is the same path, as the REST resolver matches it (the HTTP API's does
    not)."""
    bare = path[:-1] if trailing_slash and path.endswith("/") and len(path) > 1 else path
    allowed = {m for pattern, methods in _route_patterns() if pattern.fullmatch(bare) for m in methods}
    return tuple(sorted(allowed))


def method_not_allowed(method: str, path: str, allow: tuple[str, ...]) -> MethodNotAllowedError:
    return MethodNotAllowedError(
        f"{method} is not allowed on {path}; use {' or '.join(allow)} (see GET /openapi.json)", allow
    )
