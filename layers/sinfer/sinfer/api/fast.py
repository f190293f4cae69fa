"""predict_api's fast path: the prediction routes' clean successes, without Powertools.

Why it exists: measured on one tabular instance, Powertools' decorators and resolver cost
~220 us per request around a 10 us ``session.run``, and importing them (with the X-Ray SDK
and botocore the Tracer pulls in) ~300 ms of every cold start. The prediction routes are the
hot ones, so they get a path that does only the work the request needs:

* POST ``/v1/models/<name>[/versions/<v>]:predict`` with a JSON ``{"instances"|"inputs": [...]}``
* POST ``/v2/models/<name>[/versions/<v>]/infer`` with an Open Inference Protocol JSON body
  (no binary tensor data in either direction)

for REST API (payload 1.0) and HTTP API (payload 2.0) events. :func:`handle` returns the proxy
response on a clean success and ``None`` for anything else — another route, an image body,
binary tensors, any input the protocol rejects, any exception at all — and the caller then
runs the full Powertools handler, which produces the canonical response and error log. So
errors, their HTTP mapping (:mod:`sinfer.api.app`, the one place) and their logs are exactly
what they were; the fast path can only answer what the resolver would answer with a 200.

What it shares with the resolver's routes, so the two cannot drift: body decoding and the
synchronous limits (:mod:`sinfer.api.payload`), the registry and ``LoadedModel.predict`` /
``run_v2``, and the protocols' decoders and encoders. What differs: orjson parses the v1 body
and serialises the v1 response (the documents are the same; orjson writes non-ASCII as UTF-8
where ``json`` escapes it), and the metric is written by :func:`sinfer.observability.emit_metric`
as the same EMF document Powertools would flush. A successful request logs nothing on either
path (POWERTOOLS_LOGGER_LOG_EVENT is false), and the Tracer's handler subsegment is not
recorded for fast requests (Lambda's own X-Ray segment still is).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from sinfer.api.payload import (
    JSON,
    MAX_SYNC_RESPONSE_BYTES,
    check_instance_count,
    check_response_size,
    compact_json,
    decode_body,
    proxy_body_size,
)
from sinfer.codecs.jsontext import has_long_digit_run
from sinfer.inference.registry import default_registry
from sinfer.observability import emit_metric
from sinfer.protocols import kserve_v1

# The routes below, as Powertools matches them, narrowed to names the store accepts (others get
# the resolver's 404). No trailing slash: the REST resolver allows one, and sends it there.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_ROUTE = re.compile(
    rf"/v(?:1/models/(?P<v1>{_NAME})(?:/versions/(?P<v1version>{_NAME}))?:predict"
    rf"|2/models/(?P<v2>{_NAME})(?:/versions/(?P<v2version>{_NAME}))?/infer)"
)


@functools.lru_cache(maxsize=256)  # a function serves a few paths; matching costs ~3 us a request
def _route(path: str) -> tuple[int, str, str | None] | None:
    """A prediction route's (protocol 1 or 2, model name, version), or None for any other path."""
    match = _ROUTE.fullmatch(path)
    if match is None:
        return None
    if match["v1"] is not None:
        return 1, match["v1"], match["v1version"]
    return 2, match["v2"], match["v2version"]


@functools.lru_cache(maxsize=64)  # clients send the same few Content-Type values
def _json_media_type(content_type: str | None) -> bool:
    return kserve_v1.is_json(kserve_v1.media_type(content_type))


def handle(event: dict[str, Any]) -> dict[str, Any] | None:
    """The proxy response for a prediction that succeeds, or None: the resolver's turn."""
    try:
        return _handle(event)
    except Exception:  # any failure is the resolver's to report, with its status and log
        return None


def _handle(event: dict[str, Any]) -> dict[str, Any] | None:
    http_api = event.get("version") == "2.0"
    if http_api:
        request = event["requestContext"]
        method = request["http"]["method"]
        path = event["rawPath"]
        stage = request.get("stage")
        if stage != "$default":  # what Powertools' APIGatewayProxyEventV2.path strips
            path = path[len(stage) + 1 :]
    else:
        method = event["httpMethod"]
        path = event["path"]
    if method != "POST":
        return None
    route = _route(path)
    if route is None:
        return None
    # Powertools reads headers case-insensitively (last one wins, as here).
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    if not _json_media_type(headers.get("content-type")):
        return None
    body = decode_body(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-encoding"))
    protocol, name, version = route
    text = _predict(name, version, body) if protocol == 1 else _infer(name, version, body, headers)
    if text is None:
        return None
    # Powertools' response shapes (ResponseBuilder.build and its header serialisers): REST gets
    # multiValueHeaders, HTTP API headers and cookies. The tests compare them with resolve()'s.
    if http_api:
        return {
            "statusCode": 200,
            "body": text,
            "isBase64Encoded": False,
            "headers": {"Content-Type": JSON},
            "cookies": [],
        }
    return {
        "statusCode": 200,
        "body": text,
        "isBase64Encoded": False,
        "multiValueHeaders": {"Content-Type": [JSON]},
    }


def _predict(name: str, version: str | None, body: bytes) -> str | None:
    """KServe v1 ``:predict`` (routes._predict's work), or None where its rules say no."""
    model = default_registry().get(name, version)
    if has_long_digit_run(body):  # an integer orjson may read as a float: the resolver's body
        return None
    instances = kserve_v1.instances_of(orjson.loads(body))  # a refusal raises: the resolver reports it
    check_instance_count(len(instances))
    predictions = model.predict(instances)
    response = kserve_v1.encode_response(predictions, model.name, model.version)
    text = orjson.dumps(response)
    if len(text) * 4 > MAX_SYNC_RESPONSE_BYTES:
        # Near the limit, size the response as the resolver serialises it (json escapes non-ASCII).
        check_response_size(proxy_body_size(compact_json(response)))
    emit_metric("Predictions", "Count", len(predictions))
    return text.decode("utf-8")


def _infer(name: str, version: str | None, body: bytes, headers: dict[str, Any]) -> str | None:
    """Open Inference Protocol ``/infer`` (routes._infer's work), JSON in and out only."""
    if headers.get("inference-header-content-length"):
        return None  # binary tensor data
    from sinfer.protocols import oip_v2  # only /infer needs it: ~1 ms off a :predict cold start

    model = default_registry().get(name, version)
    request = oip_v2.decode_request(body, None)
    if request.binary_output or any(out.binary for out in request.outputs or ()):
        return None
    values = model.run_v2(request.inputs)
    payload, json_length = oip_v2.encode_response(
        model.name, model.version, model.output_names, values, request
    )
    if json_length is not None:
        return None
    check_response_size(proxy_body_size(payload))
    emit_metric("InferRequests", "Count", 1)
    return payload.decode("utf-8")
