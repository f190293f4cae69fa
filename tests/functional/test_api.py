"""predict_api's handler driven with REST (1.0) and HTTP API (2.0) events, against the demo store.

Every test runs twice (``call_api`` is parametrised over both payload versions).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from models.build_models import train_breast_cancer, train_digits
from sinfer.inference.registry import reset_default_registry
from tests.conftest import CallApi


def _json(response: Any) -> Any:
    return json.loads(response.body)


def _png(pixels: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


# --- health and metadata ---------------------------------------------------------------


def test_health_and_server_metadata(call_api: CallApi) -> None:
    assert _json(call_api("GET", "/v2/health/live")) == {"live": True}
    ready = call_api("GET", "/v2/health/ready")
    assert ready.status == 200
    meta = _json(call_api("GET", "/v2"))
    assert meta["name"] == "sinfer"
    assert "binary_tensor_data" in meta["extensions"]


def test_a_store_folder_that_does_not_exist_is_not_ready(
    call_api: CallApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (it answered ready, then every prediction 404: readiness means the store can be read)
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "absent"))
    reset_default_registry()
    for path in ("/v2/health/ready", "/v2/repository/index"):
        response = call_api("GET", path) if path.startswith("/v2/health") else call_api("POST", path, {})
        assert response.status == 503, path
        assert "absent does not exist" in _json(response)["error"]
    reset_default_registry()


def test_model_metadata_comes_from_the_graph(call_api: CallApi) -> None:
    meta = _json(call_api("GET", "/v2/models/digits"))
    assert meta["name"] == "digits"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}
    versioned = call_api("GET", "/v2/models/digits/versions/1")
    assert _json(versioned) == meta
    assert call_api("GET", "/v2/models/digits/ready").status == 200
    assert call_api("GET", "/v2/models/digits/versions/1/ready").status == 200


def test_a_zipmap_outputs_metadata_has_the_shape_its_answers_have(call_api: CallApi) -> None:
    # skl2onnx's ZipMap (a sequence of maps) travels as BYTES, one JSON document per instance
    meta = _json(call_api("GET", "/v2/models/breast_cancer"))
    _, x_test, _, _, _ = train_breast_cancer()
    request = {
        "inputs": [{"name": "features", "shape": [3, 30], "datatype": "FP32", "data": x_test[:3].tolist()}]
    }
    answer = _json(call_api("POST", "/v2/models/breast_cancer/infer", request))
    declared = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    assert declared == {"output_label": ("INT64", [-1]), "output_probability": ("BYTES", [-1])}
    for output in answer["outputs"]:
        datatype, shape = declared[output["name"]]
        assert output["datatype"] == datatype
        assert [3 if d == -1 else d for d in shape] == output["shape"]


def test_lists_models(call_api: CallApi) -> None:
    # foundation-model entries (model.json only) are listed too: they take batch jobs
    models = ["breast_cancer", "claude_summarize", "digits", "titan_embed"]
    assert _json(call_api("GET", "/v1/models"))["models"] == models
    index = _json(call_api("POST", "/v2/repository/index"))
    assert {(e["name"], e["version"]) for e in index} == {(name, "1") for name in models}


# --- KServe v1 -----------------------------------------------------------------------------


def test_v1_predictions_equal_sklearn_on_held_out_rows(call_api: CallApi) -> None:
    # GIVEN held-out rows and scikit-learn's own predictions for them
    _, x_test, expected = train_digits()
    # WHEN they are sent through the API as raw 64-value instances
    response = call_api("POST", "/v1/models/digits:predict", {"instances": x_test.tolist()})
    # THEN every label equals scikit-learn's
    assert response.status == 200
    labels = [int(p["label"]) for p in _json(response)["predictions"]]
    assert labels == expected.tolist()


def test_v1_tabular_columns_and_probabilities_equal_sklearn(call_api: CallApi) -> None:
    model, x_test, expected, columns, classes = train_breast_cancer()
    instances = [dict(zip(columns, row.tolist(), strict=True)) for row in x_test]
    response = call_api("POST", "/v1/models/breast_cancer:predict", {"instances": instances})
    assert response.status == 200
    predictions = _json(response)["predictions"]
    assert [p["label"] for p in predictions] == [classes[i] for i in expected]
    probabilities = np.array([[p["probabilities"][c] for c in classes] for p in predictions])
    assert np.allclose(probabilities, model.predict_proba(x_test), atol=1e-4)


def test_v1_b64_image_instances_and_raw_image_body(call_api: CallApi) -> None:
    model, x_test, _ = train_digits()
    pixels = np.round(x_test[:5] * 255 / 16).reshape(-1, 8, 8)
    quantised = (pixels.reshape(-1, 64) * 16 / 255).astype(np.float32)
    expected = [str(v) for v in model.predict(quantised)]
    instances = [{"b64": base64.b64encode(_png(p)).decode()} for p in pixels]
    response = call_api("POST", "/v1/models/digits:predict", {"instances": instances})
    assert [p["label"] for p in _json(response)["predictions"]] == expected
    raw = call_api("POST", "/v1/models/digits:predict", _png(pixels[0]), {"Content-Type": "image/png"})
    assert raw.status == 200
    assert _json(raw)["predictions"][0]["label"] == expected[0]


def test_v1_versioned_route(call_api: CallApi) -> None:
    response = call_api("POST", "/v1/models/digits/versions/1:predict", {"instances": [[0.0] * 64]})
    assert response.status == 200
    assert _json(response)["model_version"] == "1"


# --- Open Inference Protocol v2 ------------------------------------------------------------


def test_v2_infer_json(call_api: CallApi) -> None:
    model, x_test, expected, _, _ = train_breast_cancer()
    request = {
        "id": "r1",
        "inputs": [
            {"name": "features", "shape": list(x_test.shape), "datatype": "FP32", "data": x_test.tolist()}
        ],
    }
    doc = _json(call_api("POST", "/v2/models/breast_cancer/infer", request))
    assert doc["id"] == "r1"
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["output_label"]["datatype"] == "INT64"
    assert outputs["output_label"]["data"] == expected.tolist()
    # ZipMap's seq(map) travels as one JSON document per row
    probabilities = outputs["output_probability"]
    assert probabilities["datatype"] == "BYTES"
    first = json.loads(probabilities["data"][0])
    assert np.isclose(first["1"], model.predict_proba(x_test[:1])[0][1], atol=1e-4)


def test_v2_infer_binary_tensor_data_both_directions(call_api: CallApi) -> None:
    _, x_test, expected = train_digits()
    batch = x_test[:7].astype(np.float32)
    raw = batch.tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [7, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}],
        }
    ).encode()
    response = call_api(
        "POST",
        "/v2/models/digits/infer",
        header + raw,
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status == 200
    length = int({k.lower(): v for k, v in response.headers.items()}["inference-header-content-length"])
    doc = json.loads(response.body[:length])
    label_out, proba_out = doc["outputs"]
    assert label_out["parameters"]["binary_data_size"] == 7 * 8
    labels = np.frombuffer(response.body[length : length + 56], dtype="<i8")
    assert labels.tolist() == expected[:7].tolist()
    assert len(proba_out["data"]) == 70  # not asked for binary: JSON


def test_v2_binary_data_output_is_a_default_each_output_may_override(call_api: CallApi) -> None:
    # binary_data_output asks for every output in binary unless an output's own binary_data says
    # otherwise (the extension: the per-output parameter wins; the two were or-ed)
    _, x_test, expected, _, _ = train_breast_cancer()
    request = {
        "inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP32", "data": x_test[:2].tolist()}],
        "outputs": [
            {"name": "output_label", "parameters": {"binary_data": False}},
            {"name": "output_probability"},
        ],
        "parameters": {"binary_data_output": True},
    }
    response = call_api("POST", "/v2/models/breast_cancer/infer", request)
    assert response.status == 200
    length = int({k.lower(): v for k, v in response.headers.items()}["inference-header-content-length"])
    label_out, proba_out = json.loads(response.body[:length])["outputs"]
    assert label_out["data"] == expected[:2].tolist()  # asked for as JSON
    assert "data" not in proba_out  # the default: binary
    assert proba_out["parameters"]["binary_data_size"] > 0


@pytest.mark.parametrize(
    ("parameters", "outputs", "named"),
    [
        ({"binary_data_output": "false"}, None, "parameters.binary_data_output"),
        (
            {},
            [{"name": "output_label", "parameters": {"binary_data": "false"}}],
            "outputs[0].parameters.binary_data",
        ),
        (
            {},
            [{"name": "output_label", "parameters": {"binary_data": 0}}],
            "outputs[0].parameters.binary_data",
        ),
    ],
)
def test_v2_binary_flags_that_are_not_booleans_are_a_400(
    call_api: CallApi, parameters: dict[str, Any], outputs: Any, named: str
) -> None:
    # bool("false") is true: a client opting out with a string got binary data
    request: dict[str, Any] = {
        "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}],
        "parameters": parameters,
    }
    if outputs is not None:
        request["outputs"] = outputs
    response = call_api("POST", "/v2/models/breast_cancer/infer", request)
    assert response.status == 400
    assert _json(response)["error"].startswith(f"{named} must be true or false, got ")


def test_v2_bytes_elements_are_length_prefixed(call_api: CallApi) -> None:
    # The binary request path for BYTES is exercised with a malformed element length.
    header = json.dumps(
        {
            "inputs": [
                {"name": "pixels", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
            ]
        }
    ).encode()
    body = header + struct.pack("<I", 99) + b"ab"
    response = call_api(
        "POST", "/v2/models/digits/infer", body, {"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status == 400
    assert "BYTES" in _json(response)["error"]


def test_v2_bytes_elements_that_are_not_utf8_are_refused_not_altered(call_api: CallApi) -> None:
    # String tensors hold text: an element of other bytes was decoded with U+FFFD in its place
    elements = [b"fine", b"caf\xe9"]  # Latin-1, not UTF-8
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    response = call_api(
        "POST", "/v2/models/digits/infer", header + raw, {"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status == 422
    assert _json(response)["error"] == (
        "inputs[0] (pixels): BYTES element 1 is not valid UTF-8; string tensors take UTF-8 text"
    )


# --- errors: one test per status -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "instances"),
        (b'{"instances": 3}', "must be a list"),
        (b'{"instances": []}', "at least one"),
        (b"", "empty body"),
    ],
)
def test_400_malformed(call_api: CallApi, body: bytes, needle: str) -> None:
    response = call_api("POST", "/v1/models/digits:predict", body, {"Content-Type": "application/json"})
    assert response.status == 400
    assert needle in _json(response)["error"]


def test_400_malformed_v2(call_api: CallApi) -> None:
    response = call_api(
        "POST", "/v2/models/digits/infer", {"inputs": [{"name": "pixels", "datatype": "FP32"}]}
    )
    assert response.status == 400
    assert "shape" in _json(response)["error"]
    unknown = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP99", "data": [0.0] * 64}]}
    response = call_api("POST", "/v2/models/digits/infer", unknown)
    assert response.status == 400
    assert "FP99" in _json(response)["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/nope:predict",
        "/v2/models/nope/infer",
        "/v1/models/digits/versions/7:predict",
        "/v2/models/../infer",
    ],
)
def test_404_unknown_model_or_version(call_api: CallApi, path: str) -> None:
    response = call_api("POST", path, {"instances": [[0.0] * 64]})
    assert response.status == 404
    error = _json(response)
    assert error["code"] == "model_not_found"
    assert any(word in error["error"] for word in ("not found", "no version", "invalid model name")), error


def test_404_unknown_route(call_api: CallApi) -> None:
    response = call_api("GET", "/v3/what")
    assert response.status == 404
    assert _json(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v2/models/digits/infer", "POST"),
        ("GET", "/v1/models/digits:predict", "POST"),
        ("GET", "/v1/models/digits/versions/1:predict", "POST"),
        ("DELETE", "/v2/health/live", "GET"),
        ("POST", "/v2/models/digits", "GET"),
        ("GET", "/jobs", "POST"),
        ("PUT", "/jobs/some-job", "GET"),
        ("DELETE", "/v1/models/digits:predict", "POST"),  # the predict route's path, not also {name}'s
    ],
)
def test_405_names_the_methods_a_route_takes(call_api: CallApi, method: str, path: str, allow: str) -> None:
    response = call_api(method, path, {"instances": [[0.0] * 64]} if method != "GET" else b"")
    assert response.status == 405
    assert response.headers["Allow"] == allow
    doc = _json(response)
    assert doc["code"] == "method_not_allowed"
    assert doc["error"] == f"{method} is not allowed on {path}; use {allow} (see GET /openapi.json)"


def test_allowed_methods_match_whole_paths_and_one_segment_per_parameter() -> None:
    from sinfer.api.routes import allowed_methods

    assert allowed_methods("/v2/models/digits/versions/3/ready") == ("GET",)
    assert allowed_methods("/v2/models/digits/versions/3/ready/more") == ()
    assert allowed_methods("/v2/models/a/b/infer") == ()
    assert allowed_methods("/v1/models/digits:predict") == ("POST",)
    assert allowed_methods("/v1/models/digits:explain") == ()
    assert allowed_methods("/v2/models/digits/infer") == ("POST",)
    assert allowed_methods("/v2/models/digits/infer/") == ()
    assert allowed_methods("/v2/models/digits/infer/", trailing_slash=True) == ("POST",)
    assert allowed_methods("/v2/models/digits/infer//", trailing_slash=True) == ()


def test_a_trailing_slash_is_the_route_where_the_resolver_takes_it(
    call_api: CallApi, request: pytest.FixtureRequest
) -> None:
    # The REST resolver (payload 1.0) matches one trailing slash, so a wrong method there is a
    # 405; the HTTP API's (2.0) matches none, so the path is no route, whatever the method.
    rest = request.node.callspec.params["call_api"] == "1.0"
    assert call_api("GET", "/v2/health/live/").status == (200 if rest else 404)
    response = call_api("POST", "/v2/health/live/", {"x": 1})
    if rest:
        assert (response.status, response.headers["Allow"]) == (405, "GET")
    else:
        assert response.status == 404
        assert _json(response)["code"] == "not_found"


def test_413_over_sync_payload_limit(call_api: CallApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinfer.api.payload.MAX_SYNC_PAYLOAD_BYTES", 1000)
    response = call_api("POST", "/v1/models/digits:predict", {"instances": [[0.0] * 64] * 20})
    assert response.status == 413
    assert "/jobs" in _json(response)["error"]


def test_413_too_many_instances(call_api: CallApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinfer.api.payload.MAX_SYNC_INSTANCES", 3)
    response = call_api("POST", "/v1/models/digits:predict", {"instances": [[0.0] * 64] * 4})
    assert response.status == 413
    assert _json(response)["code"] == "payload_too_large"
    assert "instances" in _json(response)["error"]


def test_the_response_limit_counts_the_escapes_of_lambdas_proxy_response(
    call_api: CallApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a response of label strings: the body travels inside the proxy response, itself
    # JSON, where each of its quotes gains a backslash
    from sinfer.api.payload import compact_json

    _, x_test, _, columns, _ = train_breast_cancer()
    instances = [dict(zip(columns, row.tolist(), strict=True)) for row in x_test[:40]]
    path, request = "/v1/models/breast_cancer:predict", {"instances": instances}
    served = call_api("POST", path, request)
    assert served.status == 200
    body = compact_json(json.loads(served.body))  # (the resolver's serialisation)
    quotes = body.count('"')
    assert quotes > len(body) // 11
    # WHEN the limit is what the body takes inside the proxy response, THEN it is served ...
    monkeypatch.setattr("sinfer.api.payload.MAX_SYNC_RESPONSE_BYTES", len(body) + quotes)
    monkeypatch.setattr("sinfer.api.fast.MAX_SYNC_RESPONSE_BYTES", len(body) + quotes)
    assert call_api("POST", path, request).status == 200
    # ... and one byte less is a 413, though the body alone would fit with room to spare
    monkeypatch.setattr("sinfer.api.payload.MAX_SYNC_RESPONSE_BYTES", len(body) + quotes - 1)
    monkeypatch.setattr("sinfer.api.fast.MAX_SYNC_RESPONSE_BYTES", len(body) + quotes - 1)
    refused = call_api("POST", path, request)
    assert refused.status == 413
    assert f"would be {len(body) + quotes:,} bytes" in _json(refused)["error"]


def test_the_real_sync_limits_hold_at_their_edges(call_api: CallApi) -> None:
    # The tests above lower the limits; these are the deployed ones, unpatched: a body of
    # exactly DEFAULT_SYNC_PAYLOAD_BYTES and DEFAULT_SYNC_INSTANCES instances are served, one
    # byte or one instance more is a 413 (a halved limit would refuse valid 2.2-4.4 MB requests)
    from sinfer.api.payload import DEFAULT_SYNC_INSTANCES, DEFAULT_SYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES

    assert MAX_SYNC_PAYLOAD_BYTES == DEFAULT_SYNC_PAYLOAD_BYTES  # (no environment override here)
    # base64 (how API Gateway hands a binary body to Lambda) of the limit fits Lambda's 6 MB
    assert 4 * -(-DEFAULT_SYNC_PAYLOAD_BYTES // 3) < 6 * 1024 * 1024
    doc = json.dumps({"instances": [[0.0] * 64]}).encode()
    exact = doc[:-1] + b" " * (DEFAULT_SYNC_PAYLOAD_BYTES - len(doc)) + b"}"
    assert len(exact) == DEFAULT_SYNC_PAYLOAD_BYTES
    path = "/v1/models/digits:predict"
    assert call_api("POST", path, exact, {"Content-Type": "application/json"}).status == 200
    over = call_api("POST", path, exact + b" ", {"Content-Type": "application/json"})
    assert over.status == 413
    assert _json(over)["code"] == "payload_too_large"
    assert call_api("POST", path, {"instances": [[0.0] * 64] * DEFAULT_SYNC_INSTANCES}).status == 200
    many = call_api("POST", path, {"instances": [[0.0] * 64] * (DEFAULT_SYNC_INSTANCES + 1)})
    assert many.status == 413


def test_415_wrong_content_type(call_api: CallApi) -> None:
    response = call_api("POST", "/v1/models/digits:predict", b"a,b\n1,2", {"Content-Type": "text/csv"})
    assert response.status == 415
    assert "application/json" in _json(response)["error"]
    v2 = call_api("POST", "/v2/models/digits/infer", b"<x/>", {"Content-Type": "application/xml"})
    assert v2.status == 415


@pytest.mark.parametrize(
    ("instances", "needle"),
    [
        ([[1.0, 2.0]], "[64]"),
        ([["a"] * 64], "float32"),
        ([{"b64": "!!!"}], "base64"),
        ([{"b64": base64.b64encode(b"not an image").decode()}], "PNG or JPEG"),
    ],
)
def test_422_wrong_shape_or_dtype_says_what_was_expected(
    call_api: CallApi, instances: list[Any], needle: str
) -> None:
    response = call_api("POST", "/v1/models/digits:predict", {"instances": instances})
    assert response.status == 422
    assert needle in _json(response)["error"]


def test_422_tabular_missing_column(call_api: CallApi) -> None:
    response = call_api("POST", "/v1/models/breast_cancer:predict", {"instances": [{"mean radius": 1.0}]})
    assert response.status == 422
    assert "missing" in _json(response)["error"]


def test_422_v2_shape(call_api: CallApi) -> None:
    request = {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": [0.0] * 63}]}
    response = call_api("POST", "/v2/models/digits/infer", request)
    assert response.status == 422
    assert "[N, 64]" in _json(response)["error"]


@pytest.fixture
def broken_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with a tampered model (sha256 mismatch), a corrupt graph and two digits versions."""
    shutil.copytree(Path("models/digits/1"), tmp_path / "tampered" / "1")
    with (tmp_path / "tampered" / "1" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    (tmp_path / "corrupt" / "1").mkdir(parents=True)
    (tmp_path / "corrupt" / "1" / "model.onnx").write_bytes(b"definitely not onnx")
    shutil.copytree(Path("models/digits/1"), tmp_path / "digits" / "1")
    shutil.copytree(Path("models/breast_cancer/1"), tmp_path / "digits" / "2")  # a different model as v2
    monkeypatch.setenv("MODEL_STORE", str(tmp_path))
    reset_default_registry()
    return tmp_path


def test_503_model_not_ready(call_api: CallApi, broken_store: Path) -> None:
    for name, code in (("tampered", "model_integrity"), ("corrupt", "model_not_ready")):
        response = call_api("POST", f"/v1/models/{name}:predict", {"instances": [[0.0] * 64]})
        assert response.status == 503, name
        assert _json(response)["code"] == code
        assert call_api("GET", f"/v2/models/{name}/ready").status == 503
    tampered = call_api("GET", "/v2/models/tampered")
    assert "sha256" in _json(tampered)["error"]


def test_models_chosen_by_name_and_version(call_api: CallApi, broken_store: Path) -> None:
    latest = call_api("GET", "/v2/models/digits")
    assert _json(latest)["versions"] == ["2"]
    assert _json(call_api("GET", "/v2/models/digits/versions/1"))["inputs"][0]["name"] == "pixels"
    assert _json(call_api("GET", "/v2/models/digits/versions/2"))["inputs"][0]["name"] == "features"


def test_never_a_500_for_garbage(call_api: CallApi) -> None:
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", "/v2/models/digits/infer", b"\xff\xfe\x00garbage", {}),
        ("POST", "/v2/models/digits/infer", b"{}", {"Inference-Header-Content-Length": "999"}),
        ("POST", "/v2/models/digits/infer", b"{}", {"Inference-Header-Content-Length": "x"}),
        ("POST", "/v2/models/digits/infer", b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}),
        ("POST", "/v1/models/digits:predict", b'{"instances": [[[1, 2], [3]]]}', {}),
        ("POST", "/v1/models/digits:predict", b'{"instances": [{"a": 1, "b": 2}]}', {}),
        ("POST", "/v1/models/digits:predict", b"\x89PNG\r\n\x1a\nbroken", {"Content-Type": "image/png"}),
    ]
    for method, path, body, headers in cases:
        response = call_api(method, path, body, headers)
        assert 400 <= response.status < 500, (path, body, response.status, response.body)
        assert "error" in _json(response)
