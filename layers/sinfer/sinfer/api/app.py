"""Resolvers for REST API (v1 payload) and HTTP API (v2 payload) events, sharing one router.

This is the one place where exceptions become HTTP responses: a :class:`SinferError` becomes
its status with ``{"error": message, "code": code}``; anything else is logged with its
traceback and becomes a generic 500 that leaks nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext

from sinfer.api.routes import allowed_methods, method_not_allowed, router
from sinfer.errors import MethodNotAllowedError, SinferError
from sinfer.observability import logger


def error_response(status: int, message: str, code: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": message, "code": code}),
    )


def _on_sinfer_error(exc: SinferError) -> Response[str]:
    if exc.status >= 500:
        logger.warning("request failed", extra={"status": exc.status, "error": exc.message})
    response = error_response(exc.status, exc.message, exc.code)
    if isinstance(exc, MethodNotAllowedError):
        response.headers["Allow"] = ", ".join(exc.allow)
    return response


def _not_found(
    resolver: APIGatewayRestResolver | APIGatewayHttpResolver,
) -> Callable[[Exception], Response[str]]:
    """No route for this method and path: 405 with ``Allow`` when the path takes other methods."""

    trailing_slash = isinstance(resolver, APIGatewayRestResolver)

    def on_not_found(_: Exception) -> Response[str]:
        event = resolver.current_event
        allow = allowed_methods(event.path, trailing_slash)
        if allow and event.http_method not in allow:
            return _on_sinfer_error(method_not_allowed(event.http_method, event.path, allow))
        return error_response(404, "no such route; see GET /openapi.json for the API", "not_found")

    return on_not_found


def _on_unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return error_response(500, "internal error", "internal_error")


def _build(resolver: APIGatewayRestResolver | APIGatewayHttpResolver) -> Any:
    resolver.include_router(router)
    resolver.exception_handler(SinferError)(_on_sinfer_error)
    on_not_found = _not_found(resolver)
    resolver.exception_handler(RouteNotFoundError)(on_not_found)
    resolver.not_found(on_not_found)
    resolver.exception_handler(Exception)(_on_unexpected)
    return resolver


rest_app = _build(APIGatewayRestResolver())
http_app = _build(APIGatewayHttpResolver())


def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Dispatch on the payload format: HTTP API sends ``version: "2.0"``."""
    app = http_app if event.get("version") == "2.0" else rest_app
    result: dict[str, Any] = app.resolve(event, context)
    return result
