"""Shared fixtures: the repo's demo model store, a Lambda context, API invocation helpers.

Test taxonomy (as in Powertools): ``unit`` needs no network and no subprocess; ``functional``
drives handlers with events from ``events/`` against local stores and moto; ``integration``
starts sinfer's servers in subprocesses on loopback ports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sinfer.aws.clients import reset_clients
from sinfer.inference.registry import reset_default_registry
from sinfer.local.apigw import HttpResponse, PayloadVersion, api_event, to_http_response
from sinfer.local.lambda_runtime import FixedLambdaContext

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
EVENTS = ROOT / "events"


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents among the lines a handler wrote to stdout (its metrics)."""
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def load_event(name: str) -> dict[str, Any]:
    """One sample event from events/ (the same files `sam local invoke -e` takes)."""
    path = EVENTS / name
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


class LineSink:
    """A ``LineWriter`` (what ``process_records`` writes to) that keeps what it is given: the
    result lines' bytes, and how many lines they were said to be."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lines = 0

    def write_lines(self, data: bytes, lines: int, /) -> None:
        self.data += data
        self.lines += lines


# The context every test passes; a test sets remaining_ms to put a handler near its timeout.
FakeLambdaContext = FixedLambdaContext


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def model_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MODEL_STORE pointed at the committed demo models; registry and clients fresh."""
    monkeypatch.setenv("MODEL_STORE", str(MODELS))
    reset_default_registry()
    reset_clients()
    yield MODELS
    reset_default_registry()
    reset_clients()


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach real AWS from a test."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }.items():
        monkeypatch.setenv(key, value)
    os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def _no_metrics_left_over() -> None:
    """Each test starts with no metrics pending: code run outside a handler (the batch path,
    called directly) adds metrics that only a handler's flush would write, and that flush
    must not carry an earlier test's. (Powertools is not imported here if nothing built it.)"""
    from sinfer import observability

    if "metrics" in vars(observability):
        observability.metrics.clear_metrics()


CallApi = Callable[..., HttpResponse]


@pytest.fixture(params=["1.0", "2.0"], ids=["rest", "http"])
def call_api(request: pytest.FixtureRequest, model_store: Path, lambda_context: FakeLambdaContext) -> CallApi:
    """Invoke predict_api's handler with a REST (1.0) or HTTP API (2.0) event."""
    from functions.predict_api.app import lambda_handler

    version: PayloadVersion = request.param

    def call(
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        hdrs = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        return to_http_response(lambda_handler(api_event(version, method, path, body, hdrs), lambda_context))

    return call
