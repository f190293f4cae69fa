"""``sinfer serve`` in a subprocess on a loopback port, driven by plain HTTP and by tritonclient.

What is checked is what a user of ``sam local start-api`` relies on: the real handler answers
through an HTTP server; stock clients work unchanged (``tritonclient.http`` with binary tensor
data on and off, over its keep-alive connection pool); the answers equal the model's own; a taken
port is refused with one line; SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from models.build_models import train_breast_cancer, train_digits
from tests.conftest import EVENTS, MODELS, ROOT
from tests.integration.processes import ServerProcess as Server
from tests.integration.processes import spawn

pytestmark = pytest.mark.integration

ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
}


def _start(tmp_path: Path, *extra: str) -> Server:
    server = spawn(
        tmp_path, "serve", lambda port: ["serve", "--port", str(port), "--model-store", "models", *extra], ENV
    )
    process = server.process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sinfer serve exited with {process.returncode}:\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    server.stop()
    pytest.fail(f"sinfer serve was not ready within 60 s:\n{server.logs()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = _start(tmp_path_factory.mktemp("serve"))
    try:
        yield started
    finally:
        started.stop()


def _request(
    server: Server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    # urllib (like curl -d) would otherwise label every body application/x-www-form-urlencoded
    headers = {"Content-Type": "application/json", **(headers or {})} if body is not None else {}
    request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode("utf-8")


# --- plain HTTP ------------------------------------------------------------------------------


def test_ready_line_names_the_url(server: Server) -> None:
    server.stdout.seek(0)
    line = server.stdout.read().decode("utf-8").strip()
    assert line.startswith(f"sinfer serve: {server.url}/ (PredictApiFunction, REST API payload 1.0")


def test_health_metadata_and_errors_over_http(server: Server) -> None:
    assert _request(server, "GET", "/v2/health/live")[::2] == (200, b'{"live":true}')
    status, headers, body = _request(server, "GET", "/v2/models/digits")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["inputs"][0]["name"] == "pixels"
    assert _request(server, "POST", "/v1/models/nope:predict", _json({"instances": [[1]]}))[0] == 404
    wrong = {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": [0] * 63}]}
    status, _, body = _request(server, "POST", "/v2/models/digits/infer", _json(wrong))
    assert status == 422
    assert "64" in json.loads(body)["error"]
    assert _request(server, "GET", "/no/such/route?x=1")[0] == 404
    # Any method reaches the function (API Gateway's ANY); a HEAD answer never carries a body.
    _, head_headers, head_body = _request(server, "HEAD", "/v2/health/live")
    assert head_body == b""
    assert "Content-Length" in head_headers


def test_v1_predict_json_and_raw_image_body(server: Server) -> None:
    _, x_test, expected = train_digits()
    status, _, body = _request(
        server,
        "POST",
        "/v1/models/digits:predict",
        _json({"instances": x_test[:20].tolist()}),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    assert [int(p["label"]) for p in json.loads(body)["predictions"]] == expected[:20].tolist()
    event = json.loads((EVENTS / "api/rest/predict_digits_png_body.json").read_text(encoding="utf-8"))
    png = base64.b64decode(event["body"])
    status, _, body = _request(
        server, "POST", "/v1/models/digits:predict", png, {"Content-Type": "image/png"}
    )
    assert status == 200
    assert json.loads(body)["predictions"][0]["label"] == str(expected[0])


def test_keep_alive_and_chunked_requests(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(3):
            connection.request("GET", "/v2/health/live")
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(response.read()))
        first_socket = connection.sock
        chunks = iter([b'{"instances": ', b"[[0, 0, 5, 13, 9, 1, 0, 0" + b", 0" * 56 + b"]]}"])
        connection.request(
            "POST",
            "/v1/models/digits:predict",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert len(json.loads(response.read())["predictions"]) == 1
        assert connection.sock is first_socket  # one connection served all four requests
    finally:
        connection.close()


# --- tritonclient ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    triton_client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}", concurrency=2)
    try:
        yield triton_client
    finally:
        triton_client.close()


def _direct(model: str, name: str, rows: np.ndarray[Any, Any]) -> list[Any]:
    session = ort.InferenceSession(
        str(MODELS / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    outputs: list[Any] = session.run(None, {name: rows.astype(np.float32)})
    return outputs


def test_tritonclient_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert not client.is_model_ready("no_such_model")
    meta = client.get_model_metadata("breast_cancer")
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
    assert [o["name"] for o in meta["outputs"]] == ["output_label", "output_probability"]


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_infer_digits(
    client: triton.InferenceServerClient, binary_in: bool, binary_out: bool
) -> None:
    # GIVEN held-out digits and what scikit-learn and ONNX Runtime themselves predict for them
    _, x_test, expected = train_digits()
    rows = x_test[:16].astype(np.float32)
    labels, probabilities = _direct("digits", "pixels", rows)
    # WHEN tritonclient sends them, with binary tensor data on or off in each direction
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary_in)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_out) for name in ("label", "probabilities")
    ]
    result = client.infer("digits", [tensor], outputs=outputs)
    # THEN the served outputs are the model's own
    assert result.as_numpy("label").tolist() == labels.tolist() == expected[:16].tolist()
    assert np.allclose(result.as_numpy("probabilities"), probabilities, atol=1e-6)


@pytest.mark.parametrize("binary_data", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_breast_cancer(client: triton.InferenceServerClient, binary_data: bool) -> None:
    model, x_test, expected, _, _ = train_breast_cancer()
    rows = x_test[:10].astype(np.float32)
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary_data)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary_data)
        for n in ("output_label", "output_probability")
    ]
    result = client.infer("breast_cancer", [tensor], outputs=outputs)
    assert result.as_numpy("output_label").tolist() == expected[:10].tolist()
    # ZipMap's per-row {class: probability} maps travel as one JSON document per row (BYTES).
    served = [json.loads(item) for item in result.as_numpy("output_probability")]
    direct = _direct("breast_cancer", "features", rows)[1]
    assert np.allclose(
        [[row["0"], row["1"]] for row in served], [[row[0], row[1]] for row in direct], atol=1e-6
    )
    assert np.allclose([[row["0"], row["1"]] for row in served], model.predict_proba(rows), atol=1e-5)


def test_tritonclient_defaults(client: triton.InferenceServerClient) -> None:
    """No outputs named: tritonclient's defaults (binary input, all outputs as JSON) still work."""
    _, x_test, expected = train_digits()
    tensor = triton.InferInput("pixels", [4, 64], "FP32")
    tensor.set_data_from_numpy(x_test[:4].astype(np.float32))
    assert client.infer("digits", [tensor]).as_numpy("label").tolist() == expected[:4].tolist()


# --- lifecycle -------------------------------------------------------------------------------


def test_a_taken_port_is_refused_with_one_line(server: Server) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sinfer.cli.main",
            "serve",
            "--port",
            str(server.port),
            "--model-store",
            "models",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    message = f"port {server.port} on 127.0.0.1 is already in use; free it or pick another --port"
    assert done.stderr.strip().splitlines() == [f"sinfer serve: error: {message}"]


def test_http_api_payload_and_clean_sigterm(tmp_path: Path) -> None:
    # GIVEN a server speaking HTTP API (payload 2.0) events to the handler
    server = _start(tmp_path, "--payload-version", "2.0")
    try:
        # WHEN it serves a prediction
        _, _, expected = train_digits()
        body = (EVENTS / "api/http/predict_digits.json").read_text(encoding="utf-8")
        payload = base64.b64decode(json.loads(body)["body"])
        status, _, answer = _request(
            server, "POST", "/v1/models/digits:predict", payload, {"Content-Type": "application/json"}
        )
        assert status == 200
        assert [p["label"] for p in json.loads(answer)["predictions"]] == [str(v) for v in expected[:3]]
    finally:
        # THEN SIGTERM stops it cleanly
        code = server.stop()
    assert code == 0, server.logs()
    assert "sinfer serve: stopped" in server.logs()
