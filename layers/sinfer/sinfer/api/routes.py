"""predict_api's routes, written once and mounted on both API Gateway flavours.

The routes speak standard protocols so existing clients work unchanged: the Open Inference
Protocol v2 (KServe v2 / Triton, including the binary tensor data extension, so
``tritonclient.http`` works with its defaults) and KServe v1 ``:predict``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from sinfer import __version__
from sinfer.errors import BadRequestError, ModelNotReadyError, PayloadTooLargeError, UnsupportedMediaTypeError
from sinfer.inference.registry import ModelRegistry, default_registry
from sinfer.observability import metrics
from sinfer.protocols import jsonbody, kserve_v1, oip_v2

router = Router()  # type: ignore[no-untyped-call]

JSON = "application/json"
OCTET = "application/octet-stream"
# Lambda caps a synchronous invocation at 6 MB each way. Requests arrive base64-encoded inside
# the event (the API declares every media type binary), so a body over ~4.4 MB cannot arrive.
MAX_SYNC_PAYLOAD_BYTES = int(os.environ.get("MAX_SYNC_PAYLOAD_BYTES", str(4_400_000)))
MAX_SYNC_RESPONSE_BYTES = int(os.environ.get("MAX_SYNC_RESPONSE_BYTES", str(6_000_000)))
MAX_SYNC_INSTANCES = int(os.environ.get("MAX_SYNC_INSTANCES", "1000"))
_TOO_LARGE_HINT = (
    "submit large inputs asynchronously with POST /jobs or by uploading to s3://<bucket>/inputs/<model>/"
)


def registry() -> ModelRegistry:
    return default_registry()


# json.dumps with any non-default option builds a new encoder on every call (~2 us); one is enough.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def json_response(doc: Any, status: int = 200) -> Response[str]:
    body = _COMPACT_JSON.encode(doc)
    _check_response_size(len(body))
    return Response(status_code=status, content_type=JSON, body=body)


def _check_response_size(size: int) -> None:
    if size > MAX_SYNC_RESPONSE_BYTES:
        raise PayloadTooLargeError(
            f"the response would be {size:,} bytes, over the synchronous limit of "
            f"{MAX_SYNC_RESPONSE_BYTES:,} bytes; send fewer instances, or {_TOO_LARGE_HINT}"
        )


def _is_json(kind: str) -> bool:
    return kind in kserve_v1.JSON_TYPES or kind.endswith("+json")


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
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64
        import binascii

        try:
            body = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            raise BadRequestError("body is marked base64 but does not decode") from None
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(body) > MAX_SYNC_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"request body is {len(body):,} bytes, over the synchronous limit of "
            f"{MAX_SYNC_PAYLOAD_BYTES:,} bytes; {_TOO_LARGE_HINT}"
        )
    headers = event.headers if headers is None else headers
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding in ("gzip", "deflate"):
        # API Gateway (with compression enabled) may inflate the body itself yet keep the header:
        # only inflate what still looks compressed (gzip magic, or a zlib header).
        if body[:2] == b"\x1f\x8b" or (encoding == "deflate" and body[:1] == b"\x78"):
            body = _inflate(body, encoding)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; use gzip or deflate"
        )
    return body


def _inflate(body: bytes, encoding: str) -> bytes:
    """Decompress with a hard cap, so a small bomb cannot exhaust memory.

    A stream that stops before its end is refused rather than read as the prefix it holds (a
    truncated upload would otherwise parse as a shorter document), and a gzip body of several
    members (``cat a.gz b.gz``, valid gzip) is read whole, under the same cap.
    """
    out = b""
    rest = body
    while True:
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            out += decoder.decompress(rest, MAX_SYNC_PAYLOAD_BYTES + 1 - len(out))
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise BadRequestError(f"body is not valid {encoding} data: {exc}") from None
        if len(out) > MAX_SYNC_PAYLOAD_BYTES or decoder.unconsumed_tail:
            raise PayloadTooLargeError(
                f"decompressed body exceeds the synchronous limit of {MAX_SYNC_PAYLOAD_BYTES:,} bytes; "
                f"{_TOO_LARGE_HINT}"
            )
        if not decoder.eof:
            raise BadRequestError(f"body is not valid {encoding} data: it ends before the stream does")
        rest = decoder.unused_data
        if not rest:
            return out
        if encoding != "gzip":
            raise BadRequestError(f"body is not valid {encoding} data: bytes follow the end of the stream")


def _count_instances(count: int) -> None:
    if count > MAX_SYNC_INSTANCES:
        raise PayloadTooLargeError(
            f"{count:,} instances in one request; the synchronous limit is {MAX_SYNC_INSTANCES:,}; "
            f"{_TOO_LARGE_HINT}"
        )


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
    if kind != OCTET and not _is_json(kind):
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
    metrics.add_metric(name="InferRequests", unit=MetricUnit.Count, value=1)
    if json_length is None:
        _check_response_size(len(payload))
        return Response(status_code=200, content_type=JSON, body=payload.decode("utf-8"))
    _check_response_size(len(payload) * 4 // 3 + 4)  # binary bodies leave Lambda base64-encoded
    return Response(
        status_code=200,
        content_type=OCTET,
        body=payload,
        headers={"Inference-Header-Content-Length": str(json_length)},
    )


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
    model = registry().get(name)
    return json_response({"name": name, "version": model.version, "ready": True})


def _predict(name: str, version: str | None) -> Response[str]:
    model = registry().get(name, version)
    headers = request_headers()
    body = request_body(headers)
    instances = kserve_v1.decode_request(body, headers.get("content-type"))
    _count_instances(len(instances))
    predictions = model.predict(instances)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(predictions))
    return json_response(kserve_v1.encode_response(predictions, model.name, model.version))


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
    if not _is_json(kind):
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
    text = resources.files("sinfer.api").joinpath("openapi.json").read_text(encoding="utf-8")
    return Response(status_code=200, content_type=JSON, body=text)
