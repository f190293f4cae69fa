"""predict_api's fast path (sinfer.api.fast) against the full Powertools path, response for response.

The fast path may only ever answer what the resolver would answer: for every request it serves,
the status, headers, body (as JSON) and EMF metric must equal the Powertools handler's; every
other request must come back ``None`` so the Powertools handler answers it. A prediction served
from a cold process must not import Powertools, the X-Ray SDK or botocore.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from functions.predict_api.app import _powertools_handler, lambda_handler
from sinfer.api.fast import handle
from sinfer.local.apigw import api_event, http_event
from tests.conftest import EVENTS, MODELS, ROOT, FakeLambdaContext, emf_documents, load_event

SAMPLES = sorted(p.relative_to(EVENTS).as_posix() for p in (EVENTS / "api").glob("*/*.json"))
# The samples the fast path must serve (the rest — errors, metadata, binary tensors, a raw PNG
# body — must fall back), so the equivalence below is never true only because nothing was fast.
FAST_SAMPLES = {"predict_breast_cancer", "predict_digits", "predict_digits_b64_png", "infer_digits_json"}
INPUT = {"breast_cancer": ("features", 30), "digits": ("pixels", 64)}


def _rows(model: str, count: int) -> list[list[float]]:
    width = INPUT[model][1]
    rng = np.random.default_rng(count)
    scale = 16 if model == "digits" else 100
    return np.round(rng.random((count, width)) * scale, 3).tolist()  # type: ignore[no-any-return]


def _metrics(out: str) -> list[dict[str, Any]]:
    """EMF documents printed to stdout, without their timestamps."""
    docs = emf_documents(out)
    for doc in docs:
        del doc["_aws"]["Timestamp"]
    return docs


Response = dict[str, Any]


def _both(
    event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> tuple[Response | None, Response, list[Any], list[Any]]:
    """The fast path's answer and the Powertools handler's, with the metrics each printed."""
    capsys.readouterr()
    fast = handle(copy.deepcopy(event))
    fast_metrics = _metrics(capsys.readouterr().out)
    full: Response = _powertools_handler()(copy.deepcopy(event), FakeLambdaContext())
    full_metrics = _metrics(capsys.readouterr().out)
    return fast, full, fast_metrics, full_metrics


def _assert_same(fast: dict[str, Any], full: dict[str, Any]) -> None:
    assert fast["statusCode"] == full["statusCode"]
    if full["isBase64Encoded"]:  # binary tensor data
        assert fast["body"] == full["body"]
    else:
        assert json.loads(fast["body"]) == json.loads(full["body"])
    assert {k: v for k, v in fast.items() if k != "body"} == {k: v for k, v in full.items() if k != "body"}


def _assert_served_alike(event: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    fast, full, fast_metrics, full_metrics = _both(event, capsys)
    assert fast is not None, full
    assert full["statusCode"] == 200
    _assert_same(fast, full)
    assert fast_metrics == full_metrics
    assert len(fast_metrics) == 1
    return fast


def _assert_falls_back(event: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    fast, full, fast_metrics, _ = _both(event, capsys)
    assert fast is None
    assert fast_metrics == []  # nothing half-done: the resolver emits the metric, if any
    served = lambda_handler(copy.deepcopy(event), FakeLambdaContext())
    _assert_same(served, full)
    return full


# --- the committed sample events -----------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_events_get_the_resolvers_response(
    sample: str, model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event(sample)
    name = Path(sample).stem
    if name == "expected":
        pytest.skip("not an event")
    if name in FAST_SAMPLES:
        response = _assert_served_alike(event, capsys)
    else:
        response = _assert_falls_back(event, capsys)
    assert response["statusCode"] == load_event("api/expected.json")[name]


# --- parametrised predictions --------------------------------------------------------------


def each_prediction(test: Callable[..., None]) -> Callable[..., None]:
    """The test for each event version, model, instance count, and latest or versioned path."""
    for mark in (
        pytest.mark.parametrize("versioned", [False, True], ids=["latest", "versions/1"]),
        pytest.mark.parametrize("count", [1, 32]),
        pytest.mark.parametrize("model", ["breast_cancer", "digits"]),
        pytest.mark.parametrize("version", ["1.0", "2.0"], ids=["rest", "http"]),
    ):
        test = mark(test)
    return test


@each_prediction
def test_v1_predict_matches_the_resolver(
    version: Any,
    model: str,
    count: int,
    versioned: bool,
    model_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = f"/v1/models/{model}/versions/1:predict" if versioned else f"/v1/models/{model}:predict"
    body = json.dumps({"instances": _rows(model, count)}).encode()
    response = _assert_served_alike(
        api_event(version, "POST", path, body, {"Content-Type": "application/json"}), capsys
    )
    assert len(json.loads(response["body"])["predictions"]) == count


@each_prediction
def test_v2_infer_matches_the_resolver(
    version: Any,
    model: str,
    count: int,
    versioned: bool,
    model_store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = f"/v2/models/{model}/versions/1/infer" if versioned else f"/v2/models/{model}/infer"
    name, width = INPUT[model]
    rows = _rows(model, count)
    doc = {"id": "r1", "inputs": [{"name": name, "shape": [count, width], "datatype": "FP32", "data": rows}]}
    response = _assert_served_alike(
        api_event(version, "POST", path, json.dumps(doc).encode(), {"Content-Type": "application/json"}),
        capsys,
    )
    assert json.loads(response["body"])["id"] == "r1"


def test_inputs_key_and_plain_text_body_and_a_stage(
    model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # TF-Serving's {"inputs": [...]}, a body API Gateway did not base64-encode, a charset parameter
    rest = api_event("1.0", "POST", "/v1/models/digits:predict")
    rest.update(body=json.dumps({"inputs": _rows("digits", 2)}), isBase64Encoded=False)
    rest["headers"] = {"content-type": "application/json; charset=utf-8"}
    _assert_served_alike(rest, capsys)
    # an HTTP API stage other than $default: Powertools strips it from rawPath, and so must we
    staged = http_event(
        "POST", "/prod/v1/models/digits:predict", json.dumps({"instances": _rows("digits", 1)}).encode()
    )
    staged["requestContext"]["stage"] = "prod"
    _assert_served_alike(staged, capsys)


def test_gzip_body_is_inflated_by_the_shared_decoder(
    model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One body decoder serves both paths, so a clean gzip request is a clean success on either.
    body = gzip.compress(json.dumps({"instances": _rows("digits", 3)}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    _assert_served_alike(api_event("1.0", "POST", "/v1/models/digits:predict", body, headers), capsys)


# What an edge-optimised REST API passes besides the client's own headers (CloudFront's and
# API Gateway's), with the ones the fast path reads in other spellings.
GATEWAY_HEADERS = {
    "Accept": "*/*",
    "CloudFront-Forwarded-Proto": "https",
    "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Is-Mobile-Viewer": "false",
    "CloudFront-Is-SmartTV-Viewer": "false",
    "CloudFront-Is-Tablet-Viewer": "false",
    "CloudFront-Viewer-Country": "US",
    "Host": "abc123.execute-api.us-east-1.amazonaws.com",
    "User-Agent": "python-requests/2.32.3",
    "Via": "1.1 0123456789abcdef.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "cf-id",
    "X-Amzn-Trace-Id": "Root=1-5e1b4151-5ac6c58f5b5daa6532e4f2e4",
    "X-Forwarded-For": "203.0.113.7, 198.51.100.1",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
    "x-api-key": "not-a-real-key",
}


@pytest.mark.parametrize(
    "headers",
    [
        {**GATEWAY_HEADERS, "content-type": "application/json"},
        {**GATEWAY_HEADERS, "CONTENT-TYPE": "application/json", "Content-Encoding": "gzip"},
        # two spellings of one header: the last wins, on both paths
        {"Content-Type": "text/csv", **GATEWAY_HEADERS, "content-type": "application/json"},
        {"content-type": "application/json", **GATEWAY_HEADERS, "Content-Type": "text/csv"},
    ],
    ids=["lowercase", "uppercase gzip", "last spelling json", "last spelling csv"],
)
def test_gateway_headers_are_read_as_the_resolver_reads_them(
    model_store: Path, capsys: pytest.CaptureFixture[str], headers: dict[str, str]
) -> None:
    body = json.dumps({"instances": _rows("digits", 2)}).encode()
    if "gzip" in headers.values():
        body = gzip.compress(body)
    event = api_event("1.0", "POST", "/v1/models/digits:predict", body, headers)
    last = [value for key, value in headers.items() if key.lower() == "content-type"][-1]
    if last == "text/csv":  # the last spelling says CSV: the resolver's 415
        assert _assert_falls_back(event, capsys)["statusCode"] == 415
    else:
        _assert_served_alike(event, capsys)


# --- everything else falls back ------------------------------------------------------------


def _png_instance() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


JSON_HEADERS = {"Content-Type": "application/json"}
FALLBACKS: dict[str, tuple[str, str, bytes, dict[str, str], int]] = {
    "bad JSON": ("POST", "/v1/models/digits:predict", b'{"instances": [', JSON_HEADERS, 400),
    "empty body": ("POST", "/v1/models/digits:predict", b"", JSON_HEADERS, 400),
    "no instances key": ("POST", "/v1/models/digits:predict", b'{"rows": [[1]]}', JSON_HEADERS, 400),
    "empty instances": ("POST", "/v1/models/digits:predict", b'{"instances": []}', JSON_HEADERS, 400),
    "instances not a list": ("POST", "/v1/models/digits:predict", b'{"instances": 3}', JSON_HEADERS, 400),
    "wrong shape": ("POST", "/v1/models/digits:predict", b'{"instances": [[1.0, 2.0]]}', JSON_HEADERS, 422),
    "strings for floats": ("POST", "/v1/models/digits:predict", b'{"instances": [["a"]]}', JSON_HEADERS, 422),
    "integer past 64 bits": (
        "POST",
        "/v1/models/digits:predict",
        b'{"instances": [[' + b"1" * 30 + b"]]}",
        JSON_HEADERS,
        422,
    ),
    # orjson would read these as floats that fit (1e26; -2**63), where json keeps the exact ints,
    # which a float input then takes as floats (as a CSV cell of the same digits is read)
    "integers past 64 bits, the right shape": (
        "POST",
        "/v1/models/digits:predict",
        b'{"instances": [[' + b",".join([b"1" + b"0" * 26] * 64) + b"]]}",
        JSON_HEADERS,
        200,
    ),
    "one below int64's minimum": (
        "POST",
        "/v1/models/digits:predict",
        b'{"instances": [[' + b",".join([b"-9223372036854775809"] * 64) + b"]]}",
        JSON_HEADERS,
        200,
    ),
    "unknown model": ("POST", "/v1/models/nope:predict", b'{"instances": [[1]]}', JSON_HEADERS, 404),
    "unknown version": (
        "POST",
        "/v1/models/digits/versions/9:predict",
        b'{"instances": [[1]]}',
        JSON_HEADERS,
        404,
    ),
    "name the store refuses": ("POST", "/v1/models/..:predict", b'{"instances": [[1]]}', JSON_HEADERS, 404),
    "csv content type": ("POST", "/v1/models/digits:predict", b"a,b\n1,2", {"Content-Type": "text/csv"}, 415),
    "unknown content encoding": (
        "POST",
        "/v1/models/digits:predict",
        b'{"instances": [[1]]}',
        {"Content-Type": "application/json", "Content-Encoding": "br"},
        415,
    ),
    "broken gzip": (
        "POST",
        "/v1/models/digits:predict",
        b"\x1f\x8b\x08garbage",
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        400,
    ),
    "raw PNG body": (
        "POST",
        "/v1/models/digits:predict",
        _png_instance(),
        {"Content-Type": "image/png"},
        200,
    ),
    "GET on predict": ("GET", "/v1/models/digits:predict", b"", {}, 405),
    "health": ("GET", "/v2/health/live", b"", {}, 200),
    "model list": ("GET", "/v1/models", b"", {}, 200),
    "unknown route": ("POST", "/v3/models/digits:predict", b'{"instances": [[1]]}', JSON_HEADERS, 404),
    "v2 binary tensors": (
        "POST",
        "/v2/models/digits/infer",
        b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", '
        b'"parameters": {"binary_data_size": 256}}]}' + bytes(256),
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "98"},
        200,
    ),
    "v2 binary output asked": (
        "POST",
        "/v2/models/digits/infer",
        json.dumps(
            {
                "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}],
                "parameters": {"binary_data_output": True},
            }
        ).encode(),
        JSON_HEADERS,
        200,
    ),
    "v2 unknown input": (
        "POST",
        "/v2/models/digits/infer",
        b'{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [0]}]}',
        JSON_HEADERS,
        422,
    ),
}


@pytest.mark.parametrize("version", ["1.0", "2.0"], ids=["rest", "http"])
@pytest.mark.parametrize("case", list(FALLBACKS))
def test_everything_else_falls_back_to_the_resolver(
    case: str, version: Any, model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    method, path, body, headers, status = FALLBACKS[case]
    if case == "v2 binary tensors":  # the header length is the JSON part's
        headers = {**headers, "Inference-Header-Content-Length": str(len(body) - 256)}
    response = _assert_falls_back(api_event(version, method, path, body, headers), capsys)
    assert response["statusCode"] == status, response


def test_rest_trailing_slash_is_left_to_the_resolver(
    model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"instances": _rows("digits", 1)}).encode()
    event = api_event("1.0", "POST", "/v1/models/digits:predict/", body, JSON_HEADERS)
    assert _assert_falls_back(event, capsys)["statusCode"] == 200


@pytest.mark.parametrize(
    ("limit", "value", "status"),
    [
        ("MAX_SYNC_INSTANCES", 3, 413),
        ("MAX_SYNC_PAYLOAD_BYTES", 1000, 413),
        ("MAX_SYNC_RESPONSE_BYTES", 200, 413),
    ],
)
def test_limits_fall_back_to_the_resolvers_413(
    limit: str,
    value: int,
    status: int,
    model_store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(f"sinfer.api.payload.{limit}", value)
    monkeypatch.setattr(f"sinfer.api.fast.{limit}", value, raising=False)
    body = json.dumps({"instances": _rows("digits", 4)}).encode()
    event = api_event("1.0", "POST", "/v1/models/digits:predict", body, JSON_HEADERS)
    assert _assert_falls_back(event, capsys)["statusCode"] == status
    # AND a 413 counts no predictions (it delivers none)
    capsys.readouterr()
    _powertools_handler()(copy.deepcopy(event), FakeLambdaContext())
    assert not any("Predictions" in doc for doc in _metrics(capsys.readouterr().out))


def test_no_model_store_falls_back(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    from sinfer.inference.registry import reset_default_registry

    monkeypatch.delenv("MODEL_STORE", raising=False)
    reset_default_registry()
    event = api_event("1.0", "POST", "/v1/models/digits:predict", b'{"instances": [[1]]}', JSON_HEADERS)
    assert _assert_falls_back(event, capsys)["statusCode"] == 503
    reset_default_registry()


# --- cold start: what a prediction imports ---------------------------------------------------

CHILD = """
import json, sys
from functions.predict_api.app import lambda_handler
imported = sorted(m for m in WATCHED if m in sys.modules)
event = json.load(open(sys.argv[1]))
response = lambda_handler(event, None)
served = sorted(m for m in WATCHED if m in sys.modules)
health = json.load(open(sys.argv[2]))
lambda_handler(health, type("Context", (), {"function_name": "f", "memory_limit_in_mb": 128,
    "invoked_function_arn": "arn", "aws_request_id": "id"})())
print(json.dumps({"status": response["statusCode"], "imported": imported, "served": served,
    "after_slow": sorted(m for m in WATCHED if m in sys.modules)}))
"""
WATCHED = (
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "botocore",
    "boto3",
    "onnxruntime",
    "PIL",
    "sinfer.api.app",
    "sinfer.protocols.oip_v2",  # /infer only
    "pathlib",  # the local store works in os.path strings
    "_hashlib",  # OpenSSL: a small model file is hashed by CPython's own sha256
)


def _run_child(script: str, *events: str) -> list[str]:
    """Run ``script`` in a fresh interpreter over REST sample events; its stdout lines."""
    env = {**os.environ, "MODEL_STORE": str(MODELS), "POWERTOOLS_TRACE_DISABLED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "sinfer"), str(ROOT)])
    paths = [str(EVENTS / "api" / "rest" / f"{name}.json") for name in events]
    done = subprocess.run(
        [sys.executable, "-c", script, *paths],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()


def test_a_prediction_from_a_cold_process_imports_no_powertools() -> None:
    # GIVEN a fresh interpreter with the handler, WHEN it serves one prediction, THEN Powertools,
    # the X-Ray SDK, botocore (and the rest of WATCHED) were never imported; they load for the
    # first request that needs them.
    lines = _run_child(f"WATCHED = {WATCHED!r}\n{CHILD}", "predict_breast_cancer", "health_live")
    report = json.loads(lines[-1])
    assert report["status"] == 200
    assert report["imported"] == []  # onnxruntime too: the first request loads it
    assert report["served"] == ["onnxruntime"]
    assert {"aws_lambda_powertools", "sinfer.api.app"} <= set(report["after_slow"])
    assert "aws_xray_sdk" not in report["after_slow"] or "botocore" in report["after_slow"]


def test_png_instances_are_base64_decoded_in_json(
    model_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"instances": [{"b64": base64.b64encode(_png_instance()).decode()}] * 2}
    event = api_event("2.0", "POST", "/v1/models/digits:predict", json.dumps(doc).encode(), JSON_HEADERS)
    _assert_served_alike(event, capsys)


COLD_CHILD = """
import json, os, sys
import aws_lambda_powertools.tracing.tracer as tracer_module
from functions.predict_api.app import lambda_handler
from sinfer.inference.registry import reset_default_registry
context = type("Context", (), {"function_name": "f", "memory_limit_in_mb": 128,
    "invoked_function_arn": "arn", "aws_request_id": "id"})()
statuses = []
for path in sys.argv[1:-1]:
    statuses.append(lambda_handler(json.load(open(path)), context)["statusCode"])
del os.environ["MODEL_STORE"]  # the last request finds no store: a 503, logged
reset_default_registry()
statuses.append(lambda_handler(json.load(open(sys.argv[-1])), context)["statusCode"])
print(json.dumps({"statuses": statuses, "tracer_cold": tracer_module.is_cold_start}))
"""


@pytest.mark.parametrize(
    ("before", "cold"),
    [([], True), (["predict_breast_cancer"], False), (["health_live"], False)],
    ids=["first-request", "after-a-fast-prediction", "after-a-powertools-request"],
)
def test_cold_start_in_logs_is_the_environments_first_request(before: list[str], cold: bool) -> None:
    # GIVEN a fresh interpreter, WHEN requests are served and then one fails with a logged 503,
    # THEN its log line's cold_start is true only if it was the environment's first request: a
    # prediction the fast path answered first took the cold start (Powertools never saw it).
    lines = _run_child(COLD_CHILD, *before, "predict_breast_cancer")
    report = json.loads(lines[-1])
    assert report["statuses"] == [200] * len(before) + [503]
    logged = [json.loads(line) for line in lines if '"request failed"' in line]
    assert len(logged) == 1
    assert logged[0]["cold_start"] is cold
    assert report["tracer_cold"] is False  # the Tracer's own flag agrees for the next request
