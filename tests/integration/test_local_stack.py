"""``sinfer local`` and ``sinfer demo`` as a user runs them: subprocesses on free loopback ports,
talked to only through public interfaces (HTTP to the API, boto3 against the AWS endpoint)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from sinfer.local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return env


@dataclass
class Running:
    process: subprocess.Popen[str]
    api: str
    endpoint: str


@pytest.fixture(scope="module")
def local() -> Iterator[Running]:
    api_port, aws_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sinfer.cli.main",
            "local",
            "--api-port",
            str(api_port),
            "--aws-port",
            str(aws_port),
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "sinfer local is up" in first, first
        yield Running(process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{aws_port}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, doc: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(doc).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_api_answers_with_models_loaded_from_the_local_s3(local: Running) -> None:
    assert _get(f"{local.api}/v2/health/ready") == {"ready": True}
    assert {"breast_cancer", "digits"} <= set(_get(f"{local.api}/v1/models")["models"])
    prediction = _post(f"{local.api}/v1/models/digits:predict", {"instances": [[0.0] * 64]})["predictions"][0]
    assert set(prediction) == {"label", "score", "top_k"}


def test_an_upload_to_inputs_comes_back_as_a_predictions_file(local: Running) -> None:
    s3 = boto3.client("s3", endpoint_url=local.endpoint, region_name="us-east-1")
    lines = "\n".join(json.dumps({"id": f"r{i}", "instance": [float(i)] * 64}) for i in range(30))
    s3.put_object(
        Bucket="sinfer-data", Key="inputs/digits/it/batch.jsonl", Body=lines.encode() + b"\n{broken\n"
    )
    key = "outputs/digits/it/batch.jsonl.predictions.jsonl"
    deadline = time.monotonic() + 60
    while True:
        try:
            body = s3.get_object(Bucket="sinfer-data", Key=key)["Body"].read().decode()
            break
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, "no output within 60 s"
            time.sleep(0.2)
    results = [json.loads(line) for line in body.splitlines()]
    assert len(results) == 31  # records in = predictions + errors
    assert [r["id"] for r in results[:30]] == [f"r{i}" for i in range(30)]
    assert "error" in results[30]
    summary = json.loads(
        s3.get_object(Bucket="sinfer-data", Key=key.replace(".predictions.jsonl", ".summary.json"))[
            "Body"
        ].read()
    )
    assert summary["counts"] == {"records": 31, "predictions": 30, "errors": 1}


def test_a_taken_port_is_refused_with_one_clear_line(local: Running) -> None:
    api_port = int(local.api.rsplit(":", 1)[1])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sinfer.cli.main",
            "local",
            "--api-port",
            str(api_port),
            "--aws-port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"port {api_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_tour_passes_end_to_end() -> None:
    """CI runs the README's `make demo` tour, so a broken demo cannot land."""
    result = subprocess.run(
        [sys.executable, "-m", "sinfer.cli.main", "demo"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "steps passed" in result.stdout


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
