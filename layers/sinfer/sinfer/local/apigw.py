"""API Gateway events from HTTP requests, and HTTP responses from handler results.

``sinfer serve`` and the embedded stack turn real HTTP requests into the same events API
Gateway would send (the shapes ``sam local generate-event apigateway aws-proxy`` and
``http-api-proxy`` produce), so the Lambda handler runs unchanged; tests build events with the
same functions. Bodies are always sent base64-encoded, as API Gateway does when the API
declares binary media types (template.yaml declares ``*/*``).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

PayloadVersion = Literal["1.0", "2.0"]
ACCOUNT_ID = "123456789012"


def _query(query: str | Mapping[str, str] | None) -> dict[str, list[str]]:
    if query is None:
        return {}
    if isinstance(query, str):
        return parse_qs(query, keep_blank_values=True)
    return {k: [v] for k, v in query.items()}


def rest_event(
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
    stage: str = "api",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event for ``ANY /{proxy+}``."""
    params = _query(query)
    hdrs = dict(headers or {})
    request_id = str(uuid.uuid4())
    now = time.time()
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method.upper(),
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": {k: v[-1] for k, v in params.items()} or None,
        "multiValueQueryStringParameters": params or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "resourceId": "123456",
            "stage": stage,
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": hdrs.get("User-Agent", "sinfer")},
            "path": f"/{stage}{path}",
            "resourcePath": "/{proxy+}",
            "httpMethod": method.upper(),
            "apiId": "1234567890",
            "protocol": "HTTP/1.1",
        },
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


def http_event(
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event on the ``$default`` route and stage."""
    params = _query(query)
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(params, doseq=True),
        "headers": hdrs,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "api-id",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": hdrs.get("user-agent", "sinfer"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(body),
    }
    if params:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in params.items()}
    if body:
        event["body"] = base64.b64encode(body).decode("ascii")
    return event


def api_event(
    version: PayloadVersion,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    if version == "2.0":
        return http_event(method, path, body, headers, query)
    return rest_event(method, path, body, headers, query)


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def to_http_response(result: Mapping[str, Any]) -> HttpResponse:
    """A proxy integration result → status, headers and body bytes, as API Gateway returns them."""
    headers: dict[str, str] = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(key)] = ", ".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return HttpResponse(status=int(result.get("statusCode", 200)), headers=headers, body=body)
