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

from sinfer.local.lambda_runtime import function_environment
from sinfer.local.stack import LocalStack, StackConfig, free_port

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
    banner: str


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
        banner, exports = [first], False
        while True:  # to the end of the banner: the last export's last line
            banner.append(process.stdout.readline())
            assert banner[-1], "".join(banner)
            if banner[-1].startswith("For `sinfer invoke`"):
                exports = True
            elif exports and not banner[-1].rstrip().endswith("\\"):
                break
        yield Running(
            process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{aws_port}", "".join(banner)
        )
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


def _banner_commands(banner: str) -> list[str]:
    """The banner's commands, each continued line joined."""
    return [" ".join(command.split()) for command in banner.replace("\\\n", " ").splitlines()]


def test_the_banners_examples_work_as_printed(local: Running) -> None:
    # GIVEN the copy-paste examples sinfer local prints: the predict and jobs requests' bodies
    commands = _banner_commands(local.banner)
    predict = next(c for c in commands if ":predict" in c)
    jobs = next(c for c in commands if c.startswith("curl -s -X POST") and "/jobs" in c)

    # WHEN they are sent
    prediction = _post(
        f"{local.api}/v1/models/digits:predict", json.loads(predict.split("-d ")[1].strip("'"))
    )
    job = _post(f"{local.api}/jobs", json.loads(jobs.split("-d ")[1].strip("'")))
    deadline = time.monotonic() + 60
    while (status := _get(f"{local.api}/jobs/{job['job_id']}"))["status"] not in {"COMPLETED", "FAILED"}:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)

    # THEN each gives a prediction, not an error (the jobs example once sent 3 values to digits)
    assert prediction["predictions"][0]["label"] == "0"
    assert status["status"] == "COMPLETED", status
    assert status["counts"] == {"records": 1, "predictions": 1, "errors": 0}

    # AND the upload names a file that exists, and the tritonclient example runs with the
    # interpreter it names (a bare `python` was the system's, without tritonclient)
    upload = next(c for c in commands if c.startswith("aws s3 cp "))
    assert (ROOT / upload.split()[3]).is_file(), upload
    triton = next(c for c in commands if "tritonclient" in c)
    assert triton.startswith(sys.executable)
    done = subprocess.run(triton, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "'name': 'digits'" in done.stdout


def test_the_banners_exports_point_sinfer_invoke_at_the_stack(local: Running) -> None:
    # GIVEN the environment the banner says to export for sinfer invoke
    env = _env()
    for command in _banner_commands(local.banner):
        if command.startswith("export "):
            env.update(pair.split("=", 1) for pair in command.split()[1:])
    assert env["AWS_ENDPOINT_URL"] == local.endpoint

    # WHEN batch_collect is invoked with the sample events (as events/batch/README.md shows)
    def invoke(event: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sinfer.cli.main", "invoke", "BatchCollectFunction", "--event", event],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    sweep = invoke("events/batch/sweep.json")
    unknown = invoke("events/batch/bedrock_completed.json")

    # THEN they reach the stack's table (no stand-in names, nothing left empty)
    assert sweep.returncode == 0, sweep.stderr
    assert unknown.returncode == 0, unknown.stderr
    assert "left empty" not in sweep.stderr
    assert "ResourceNotFound" not in sweep.stdout + unknown.stdout
    assert "unknown" in unknown.stdout.lower(), unknown.stdout


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
    assert "all 9 steps passed" in result.stdout
    assert "edge: pull, then predict offline" in result.stdout  # every mode, the edge one too


def test_the_four_functions_share_one_service_name_in_the_stacks_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The template names each function's service (predict_api, s3_ingest, ...), but sinfer reads
    # it once per process, at import: without a shell value, the first function imported named
    # every function's logs and metrics "predict_api".
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    stack = LocalStack(StackConfig())
    overrides = {"Parameters": stack.environment}
    for logical_id in (
        "PredictApiFunction",
        "S3IngestFunction",
        "BatchSubmitFunction",
        "BatchCollectFunction",
    ):
        spec = stack.template.function(logical_id)
        assert spec.environment["POWERTOOLS_SERVICE_NAME"] != "sinfer"  # the deployed name
        env = function_environment(spec, overrides, shell={})
        assert env["POWERTOOLS_SERVICE_NAME"] == "sinfer", logical_id


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_moto_lists_its_services_once_and_still_the_same_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto's own listing (a folder walk it repeats on every request)
    import moto.backends

    from sinfer.local.stack import _list_moto_services_once

    # (moto's own function: a stack started earlier in this process may have cached it already)
    current = moto.backends.list_of_moto_modules
    original = getattr(current, "moto_original", current)
    monkeypatch.setattr(moto.backends, "list_of_moto_modules", original)  # (restored after)

    # WHEN the stack caches it, twice
    _list_moto_services_once()
    cached = moto.backends.list_of_moto_modules
    _list_moto_services_once()

    # THEN it answers what moto would, from one listing kept once
    assert cached is not original
    assert moto.backends.list_of_moto_modules is cached
    assert list(cached()) == list(original())
    assert {"s3", "sqs", "dynamodb", "sns"} <= set(cached())
