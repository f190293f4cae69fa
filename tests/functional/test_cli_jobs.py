"""``sinfer jobs submit|status|wait|results`` end to end against the embedded stack.

The stack (:class:`sinfer.local.stack.LocalStack`: moto's server on a loopback port, the API,
S3 → SQS → s3_ingest) runs in this process for the module; the command talks to it only over
HTTP, as it would to ``sinfer local`` or a deployed API. Signing and error handling are checked
against a tiny recording HTTP server instead, since the local API has no auth.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from sinfer.aws.clients import reset_clients
from sinfer.cli.jobs import BACKENDS, upload_name
from sinfer.cli.main import main
from sinfer.config import reset_settings
from sinfer.inference.registry import reset_default_registry
from sinfer.local.stack import LocalStack, StackConfig, free_port
from tests.conftest import MODELS, ROOT

WAIT = "60"


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    config = StackConfig(
        api_port=free_port(),
        aws_port=free_port(),
        models=MODELS,
        template=ROOT / "template.yaml",
        quiet=True,
        # The functions run in this process: their logs and EMF metrics would print into the
        # stdout the commands under test write their JSON to.
        extra_env={"POWERTOOLS_LOG_LEVEL": "ERROR", "LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "1"},
    )
    # LocalStack.stop() leaves some function environment variables behind (its functions'
    # environments are unwound first-in-first-out), so the process environment is put back here.
    saved = dict(os.environ)
    running = LocalStack(config).start()
    try:
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()
        reset_settings()
        reset_default_registry()


@pytest.fixture
def api(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's API as the default endpoint ($SINFER_API), so commands need no --endpoint."""
    monkeypatch.setenv("SINFER_API", stack.api_url)
    return stack.api_url


def cancer_csv(rows: int, bad_row: bool = True) -> str:
    """Held-out-like breast cancer rows with an id column, and one ragged row at the end."""
    columns = json.loads((MODELS / "breast_cancer/1/model.json").read_text())["inputs"]["features"]["columns"]
    lines = [",".join(["id", *(f'"{c}"' for c in columns)])]
    for i in range(rows):
        lines.append(",".join([f"r{i}", *(str(10.0 + (i + j) % 7) for j in range(len(columns)))]))
    if bad_row:
        lines.append("broken,1,2")
    return "\n".join(lines) + "\n"


# --- end to end --------------------------------------------------------------------------------


def test_submit_a_file_wait_and_fetch_the_results(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a CSV of 8 good rows and a ragged one
    source = tmp_path / "patients.csv"
    source.write_text(cancer_csv(8))

    # WHEN it is submitted with --file --wait
    code, out, err = cli(
        capsys, "jobs", "submit", "breast_cancer", "--file", source, "--wait", "--timeout", WAIT
    )

    # THEN the final status is printed: completed, every record accounted for
    assert code == 0, err
    job = json.loads(out)
    assert job["status"] == "COMPLETED"
    assert job["counts"] == {"records": 9, "predictions": 8, "errors": 1}
    assert job["input"].endswith("/patients.csv")
    assert f"{job['job_id']}: COMPLETED" in err

    # AND `jobs results -o FILE` downloads the predictions, in input order
    target = tmp_path / "results" / "out.jsonl"
    code, out, err = cli(capsys, "jobs", "results", job["job_id"], "-o", target)
    assert code == 0, err
    assert out == ""
    results = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in results] == [f"r{i}" for i in range(8)] + ["broken"]
    assert all(r["prediction"]["label"] in ("malignant", "benign") for r in results[:8])
    assert results[8]["error"]["code"] == "ragged_row"

    # AND without -o they go to stdout; --summary gives the summary
    code, out, _ = cli(capsys, "jobs", "results", job["job_id"])
    assert code == 0
    assert out == target.read_text()
    code, out, _ = cli(capsys, "jobs", "results", job["job_id"], "--summary")
    assert code == 0
    assert json.loads(out)["counts"] == job["counts"]


def test_submit_instances_then_status_and_wait(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({"instances": [[0.0] * 64, [16.0] * 64, [1.0, 2.0]]}))

    code, out, err = cli(capsys, "jobs", "submit", "digits", "--instances", instances)
    assert code == 0, err
    created = json.loads(out)
    job_id = created["job_id"]
    assert created["status"] == "QUEUED"
    assert "upload_url" not in created

    code, out, err = cli(capsys, "jobs", "wait", job_id, "--timeout", WAIT)
    assert code == 0, err
    assert json.loads(out)["counts"] == {"records": 3, "predictions": 2, "errors": 1}

    code, out, _ = cli(capsys, "jobs", "status", job_id)
    assert code == 0
    status = json.loads(out)
    assert status["status"] == "COMPLETED"
    assert status["result_url"].startswith("http://127.0.0.1:")


def test_submit_an_s3_input(stack: LocalStack, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    body = "".join(json.dumps({"id": f"x{i}", "instance": [float(i)] * 64}) + "\n" for i in range(4))
    s3.put_object(Bucket=stack.config.bucket, Key="staging/cli/batch.jsonl", Body=body.encode())

    uri = f"s3://{stack.config.bucket}/staging/cli/batch.jsonl"
    code, out, err = cli(capsys, "jobs", "submit", "digits:1", "--input", uri, "--wait", "--timeout", WAIT)

    assert code == 0, err
    assert json.loads(out)["counts"] == {"records": 4, "predictions": 4, "errors": 0}


def test_a_failed_job_exits_1_and_has_no_results(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "broken.json"
    source.write_text('{"instances": [1, 2')

    code, out, err = cli(capsys, "jobs", "submit", "digits", "--file", source, "--wait", "--timeout", WAIT)

    assert code == 1
    job = json.loads(out)
    assert job["status"] == "FAILED"
    assert "not valid JSON" in job["error"]
    code, out, err = cli(capsys, "jobs", "results", job["job_id"])
    assert (code, out) == (1, "")
    assert "failed: unreadable_input" in err


def test_a_job_still_waiting_has_no_results_and_wait_times_out(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job that asked for an upload URL and never used it (PENDING for good)
    request = urllib.request.Request(
        f"{api}/jobs",
        data=json.dumps({"model": "digits", "upload": {"filename": "never.csv"}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        job_id = json.loads(response.read())["job_id"]

    code, out, err = cli(capsys, "jobs", "results", job_id)
    assert (code, out) == (1, "")
    assert f"{job_id} is PENDING" in err

    code, out, err = cli(capsys, "jobs", "wait", job_id, "--timeout", "0.3")
    assert (code, out) == (1, "")
    assert "did not finish within 0.3 s" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "nope", "--instances", "INSTANCES"], "HTTP 404: model 'nope' not found"),
        (["status", "job-unknown"], "HTTP 404: no job 'job-unknown'"),
        (["results", "job-unknown"], "HTTP 404: no job 'job-unknown'"),
        (
            ["submit", "digits", "--input", "s3://elsewhere/x.csv"],
            "HTTP 400: 'input' must be in the data bucket",
        ),
    ],
)
def test_api_errors_are_one_line_with_the_apis_message(
    api: str, args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    instances = tmp_path / "i.json"
    instances.write_text("[[1.0]]")
    code, out, err = cli(capsys, "jobs", *[str(instances) if a == "INSTANCES" else a for a in args])
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert message in err


# --- without the stack -------------------------------------------------------------------------


def test_connection_refused_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = cli(capsys, "jobs", "status", "job-x", "--endpoint", endpoint)
    assert (code, out) == (1, "")  # a run that could not finish, as with an unreachable store
    assert err.count("\n") == 1
    assert "connection refused; is sinfer local running?" in err
    assert "Traceback" not in err

    monkeypatch.setenv("SINFER_API", endpoint)  # the default endpoint
    code, _, err = cli(capsys, "jobs", "wait", "job-x")
    assert code == 1
    assert f"cannot connect to {endpoint}" in err


def test_usage_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "jobs", "submit", "digits", "--file", tmp_path / "missing.csv")
    assert code == 2
    assert "is not a file" in err
    code, _, err = cli(capsys, "jobs", "submit", "digits", "--input", "/local/file.csv")
    assert code == 2
    assert "--input must be an s3:// URI" in err
    code, _, err = cli(capsys, "jobs", "submit", "digits")
    assert code == 2
    assert "one of the arguments --file --input --instances is required" in err


@dataclass
class Recorder:
    """A stand-in API that records requests and answers with a canned response."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append({"path": self.path, "headers": dict(self.headers.items())})
            payload = json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/Prod"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_sigv4_signs_requests_for_execute_api(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    recorder.body = {"job_id": "job-1", "status": "RUNNING"}

    code, out, err = cli(
        capsys, "jobs", "status", "job-1", "--endpoint", recorder.url, "--sigv4", "--region", "eu-west-1"
    )

    assert code == 0, err
    assert json.loads(out) == recorder.body
    [request] = recorder.requests
    assert request["path"] == "/Prod/jobs/job-1"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers
    assert headers["x-amz-security-token"] == "testing"


def test_requests_are_unsigned_by_default_and_a_403_suggests_sigv4(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.status = 403
    recorder.body = {"message": "Missing Authentication Token"}

    code, _, err = cli(capsys, "jobs", "status", "job-1", "--endpoint", recorder.url)

    assert code == 2
    assert "authorization" not in {k.lower() for k in recorder.requests[0]["headers"]}
    assert "HTTP 403: Missing Authentication Token (an IAM-auth API: add --sigv4)" in err


def test_an_upload_that_cannot_reach_its_url_names_the_job_it_leaves_pending(
    recorder: Recorder, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN an API that creates the job, and an upload URL nothing answers at
    recorder.status = 202
    dead = f"http://127.0.0.1:{free_port()}/upload"
    recorder.body = {"job_id": "job-abc123", "status": "PENDING", "upload_url": dead}
    data = tmp_path / "rows.jsonl"
    data.write_text("[1]\n")

    code, _, err = cli(capsys, "jobs", "submit", "digits", "--file", str(data), "--endpoint", recorder.url)

    # THEN it exits 1, naming the job the API made, which waits for an upload
    assert code == 1
    assert f"job-abc123: uploading {data} failed: cannot connect to 127.0.0.1:" in err


def test_a_server_error_exits_1(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    recorder.status = 502
    recorder.body = {"message": "Internal server error"}
    code, _, err = cli(capsys, "jobs", "status", "job-1", "--endpoint", recorder.url)
    assert code == 1
    assert err.strip() == "sinfer jobs: error: HTTP 502: Internal server error"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rows.csv", "rows.csv"),
        ("my data (1).csv.gz", "my data _1_.csv.gz"),
        ("..hidden..jsonl", "hidden.jsonl"),
        ("données.json", "donn_es.json"),
        ("x" * 300 + ".csv.gz", "x" * 194 + ".csv.gz"),  # the API takes at most 201 characters
    ],
)
def test_upload_names_are_what_the_api_accepts(name: str, expected: str) -> None:
    assert upload_name(name) == expected


def test_submit_takes_every_backend_the_api_takes(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "batch" (the README's and the option's own help) was refused as an invalid choice
    from sinfer.jobs.api import BACKENDS as API_BACKENDS

    assert set(BACKENDS) == set(API_BACKENDS)
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps([[0.0] * 64]))
    code, out, err = cli(capsys, "jobs", "submit", "digits", "--instances", instances, "--backend", "batch")
    assert code == 0, err
    assert json.loads(out)["status"] in {"QUEUED", "ROUTED"}
