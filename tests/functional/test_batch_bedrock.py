"""The Bedrock batch path against Bedrock's real API model (botocore Stubber) and moto S3.

moto has no Bedrock batch inference, so the ``bedrock`` fixture wraps real boto3 clients in
``Stubber``: every CreateModelInvocationJob, GetModelInvocationJob and InvokeModel call is
checked against the service's own parameter model, and its answer is scripted here. What
Bedrock would write is written into moto S3 by :func:`answer`, in Bedrock's layout
(``<output>/<jobId>/input.jsonl.out``, lines in no particular order, and ``manifest.json.out``),
and its state-change events are the committed samples in events/batch/, retargeted at the shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterable
from typing import Any

import pytest
from botocore.response import StreamingBody

from sinfer.aws.s3 import S3Uri
from sinfer.batch import orchestrator
from sinfer.batch.handlers import handle_collect
from sinfer.config import Settings
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job
from tests.functional.conftest import AwsStack, BedrockStubs, Configure, batch_event, routed_job

MODEL = "claude_summarize"
MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
ROLE = "arn:aws:iam::123456789012:role/sinfer-bedrock-batch"
SYSTEM = "Summarise the user's text in one sentence. Reply with the sentence only."
KEY = "inputs/claude_summarize/reviews.jsonl"
OUTPUT = "outputs/claude_summarize/reviews.jsonl.predictions.jsonl"
SUMMARY = "outputs/claude_summarize/reviews.jsonl.summary.json"
# Claude 3 Haiku, USD per 1,000 tokens on demand (input, output); batch is billed at half.
HAIKU_PER_1K = (0.00025, 0.00125)


# --- helpers (shared with test_batch_lifecycle.py) ---------------------------------------------


def review(i: int) -> str:
    return f"Review {i}: the kettle boils in {i % 7 + 2} minutes and the lid sticks."


def reviews(count: int, start: int = 0) -> bytes:
    lines = (json.dumps({"id": f"r{i:05d}", "text": review(i)}) for i in range(start, start + count))
    return "".join(line + "\n" for line in lines).encode()


def summary_of(i: int) -> str:
    return f"Kettle {i} is quick but its lid sticks."


def tokens_of(i: int) -> tuple[int, int]:
    return 20 + i % 5, 9


def claude_output(i: int) -> dict[str, Any]:
    """A Claude Messages API response body, as Bedrock puts it in ``modelOutput``."""
    tokens_in, tokens_out = tokens_of(i)
    return {
        "id": f"msg_bdrk_{i:08d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": summary_of(i)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


def claude_input(i: int) -> dict[str, Any]:
    """The modelInput (InvokeModel body) Claude must receive for record ``i``, per model.json."""
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "system": SYSTEM,
        "temperature": 0,
        "messages": [{"role": "user", "content": [{"type": "text", "text": review(i)}]}],
    }


def bedrock_job_id(shard_id: str) -> str:
    """Bedrock's own job id (the ARN's last part, 12 characters): it names the output folder."""
    return hashlib.sha256(shard_id.encode()).hexdigest()[:12]


def job_arn(shard_id: str) -> str:
    return f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{bedrock_job_id(shard_id)}"


def shard(aws: AwsStack, shard_id: str) -> Job:
    found = JobStore(aws.table).get(shard_id)
    assert found is not None, f"no shard {shard_id}"
    return found


def expect_submit(stubs: BedrockStubs, aws: AwsStack, shard_id: str, timeout_hours: int = 72) -> str:
    """Script Bedrock's answer to the shard's CreateModelInvocationJob, and what the call must say."""
    parent, name = shard_id.rsplit("-s", 1)
    work = f"s3://{aws.bucket}/batch/{parent}/s{name}/"
    stubs.control.add_response(
        "create_model_invocation_job",
        {"jobArn": job_arn(shard_id)},
        {
            "jobName": shard_id,
            "clientRequestToken": shard_id,
            "roleArn": ROLE,
            "modelId": MODEL_ID,
            "inputDataConfig": {
                "s3InputDataConfig": {"s3Uri": work + "input.jsonl", "s3InputFormat": "JSONL"}
            },
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": work + "output/"}},
            "timeoutDurationInHours": timeout_hours,
        },
    )
    return job_arn(shard_id)


def expect_status(stubs: BedrockStubs, aws: AwsStack, shard_id: str, status: str, message: str = "") -> None:
    """Script GetModelInvocationJob (what the sweeper asks when an event was missed)."""
    job = shard(aws, shard_id)
    response: dict[str, Any] = {
        "jobArn": job_arn(shard_id),
        "jobName": shard_id,
        "modelId": MODEL_ID,
        "roleArn": ROLE,
        "status": status,
        "submitTime": "2026-01-01T00:00:00Z",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": job.input, "s3InputFormat": "JSONL"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output}},
    }
    if message:
        response["message"] = message
    stubs.control.add_response("get_model_invocation_job", response, {"jobIdentifier": job_arn(shard_id)})


class JsonBody:
    """Matches an InvokeModel ``body`` (bytes) by its JSON value, whatever the key order."""

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        return isinstance(other, bytes | str) and json.loads(other) == self.expected

    def __repr__(self) -> str:
        return f"JsonBody({self.expected!r})"


def expect_invoke(stubs: BedrockStubs, i: int) -> None:
    body = json.dumps(claude_output(i)).encode()
    stubs.runtime.add_response(
        "invoke_model",
        {"body": StreamingBody(io.BytesIO(body), len(body)), "contentType": "application/json"},
        {
            "modelId": MODEL_ID,
            "body": JsonBody(claude_input(i)),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )


def answer(
    aws: AwsStack,
    shard_id: str,
    *,
    errors: dict[int, int] | None = None,
    missing: Iterable[int] = (),
    seed: int = 7,
) -> dict[str, int]:
    """Write what Bedrock writes for a shard's job, lines shuffled; returns the manifest counts.

    ``errors`` maps record indexes to the HTTP status of an error line; ``missing`` records get
    no line at all (a job that ended before reaching them).
    """
    job = shard(aws, shard_id)
    errors = errors or {}
    skip = set(missing)
    lines: list[dict[str, Any]] = []
    tokens = [0, 0]
    for sent in aws.lines(S3Uri.parse(job.input).key):
        i = int(sent["recordId"])
        if i in skip:
            continue
        line: dict[str, Any] = {"recordId": sent["recordId"], "modelInput": sent["modelInput"]}
        if i in errors:
            line["error"] = {"errorCode": errors[i], "errorMessage": f"scripted failure {errors[i]}"}
        else:
            line["modelOutput"] = claude_output(i)
            tokens[0] += tokens_of(i)[0]
            tokens[1] += tokens_of(i)[1]
        lines.append(line)
    random.Random(seed).shuffle(lines)
    # Bedrock names the folder after its own job id: the last part of the ARN the shard got.
    folder = f"{S3Uri.parse(job.output).key}{str(job.extra['backend_job']).rsplit('/', 1)[-1]}/"
    aws.put(folder + "input.jsonl.out", b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    failed = sum(1 for line in lines if "error" in line)
    manifest = {
        "totalRecordCount": job.records,
        "processedRecordCount": len(lines),
        "successRecordCount": len(lines) - failed,
        "errorRecordCount": failed,
        "inputTokenCount": tokens[0],
        "outputTokenCount": tokens[1],
    }
    aws.put(folder + "manifest.json.out", json.dumps(manifest).encode())
    return manifest


def deliver(aws: AwsStack, shard_id: str, status: str = "completed", message: str = "") -> dict[str, Any]:
    """batch_collect's handler, given the service's state-change event for this shard's job."""
    event = batch_event(f"bedrock_{status}", shard_id, str(shard(aws, shard_id).extra["backend_job"]))
    if message:
        event["detail"]["failureMessage"] = message
    return handle_collect(event)


def expected_usd(indexes: Iterable[int]) -> float:
    tokens_in = tokens_out = 0
    for i in indexes:
        tokens_in += tokens_of(i)[0]
        tokens_out += tokens_of(i)[1]
    return round((tokens_in * HAIKU_PER_1K[0] + tokens_out * HAIKU_PER_1K[1]) / 1000 * 0.5, 8)


@pytest.fixture
def env(aws: AwsStack, bedrock: BedrockStubs, configure: Configure) -> Settings:
    return configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE)


# --- tests -------------------------------------------------------------------------------------


def test_shards_become_bedrock_jobs_and_shuffled_outputs_merge_in_input_order(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN 300 reviews routed to batch, at most 150 records per Bedrock job file
    configure(
        BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BEDROCK_MAX_RECORDS=150, BEDROCK_TIMEOUT_HOURS=24
    )
    job_id = routed_job(aws, KEY, reviews(300), MODEL)
    first, second = f"{job_id}-s0000", f"{job_id}-s0001"
    expect_submit(bedrock, aws, first, timeout_hours=24)
    expect_submit(bedrock, aws, second, timeout_hours=24)

    # WHEN batch_submit runs
    result = orchestrator.submit(job_id)

    # THEN each shard is one job, named after the shard (the Stubber checked every parameter)
    bedrock.assert_all_called()
    assert result == {"job_id": job_id, "status": "SUBMITTED", "shards": 2, "records": 300}
    for shard_id in (first, second):
        submitted = shard(aws, shard_id)
        assert submitted.status == "SUBMITTED"
        assert submitted.extra["backend_job"] == job_arn(shard_id)
        assert submitted.extra["lane"] == f"bedrock:{MODEL_ID}"
    sent = aws.lines(f"batch/{job_id}/s0000/input.jsonl")
    assert [line["recordId"] for line in sent] == [f"{i:011d}" for i in range(150)]
    assert sent[3]["modelInput"] == claude_input(3)

    # WHEN Bedrock finishes the second job first, then the first (outputs in no order)
    answer(aws, second, seed=1)
    assert deliver(aws, second)["merged"] is False
    answer(aws, first, seed=2)
    assert deliver(aws, first)["merged"] is True

    # THEN one line per review, in input order, with Claude's text as the prediction
    lines = aws.lines(OUTPUT)
    assert lines == [{"id": f"r{i:05d}", "prediction": summary_of(i)} for i in range(300)]
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 300, "predictions": 300, "errors": 0}
    assert summary["records_match"] is True
    assert summary["backend"] == "bedrock"
    assert summary["shards"] == 2
    assert summary["tokens"] == {
        "input": sum(tokens_of(i)[0] for i in range(300)),
        "output": sum(tokens_of(i)[1] for i in range(300)),
    }
    assert summary["cost_estimate"]["usd"] == pytest.approx(expected_usd(range(300)))
    parent = aws.job(job_id)
    assert parent is not None
    assert parent["status"] == "COMPLETED"
    assert parent["counts"] == {"records": 300, "predictions": 300, "errors": 0}
    assert [n["status"] for n in aws.notifications()] == ["COMPLETED"]


@pytest.mark.parametrize(
    ("code", "http_status"), [("ThrottlingException", 429), ("ServiceQuotaExceededException", 400)]
)
def test_a_refused_submission_waits_queued_and_the_sweeper_submits_it_later(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings, code: str, http_status: int
) -> None:
    # GIVEN Bedrock refuses the job for now (throttled, or the account's job quota is full)
    job_id = routed_job(aws, KEY, reviews(120), MODEL)
    shard_id = f"{job_id}-s0000"
    bedrock.control.add_client_error(
        "create_model_invocation_job", service_error_code=code, http_status_code=http_status
    )

    # WHEN the file is submitted
    orchestrator.submit(job_id)

    # THEN the shard waits as QUEUED (not failed), and nothing is reported yet
    bedrock.assert_all_called()
    assert shard(aws, shard_id).status == "QUEUED"
    parent = aws.job(job_id)
    assert parent is not None
    assert parent["status"] == "SUBMITTED"
    assert aws.notifications() == []

    # WHEN the sweeper runs and Bedrock accepts the job this time
    expect_submit(bedrock, aws, shard_id)
    orchestrator.sweep()

    # THEN the shard is submitted, and its completion merges the file
    bedrock.assert_all_called()
    assert shard(aws, shard_id).status == "SUBMITTED"
    answer(aws, shard_id)
    assert deliver(aws, shard_id)["merged"] is True
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(120)]


def test_a_remainder_under_bedrocks_minimum_runs_through_invoke_model(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN 104 reviews and at most 100 records per job file: 100 go to a job, 4 remain
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BEDROCK_MAX_RECORDS=100)
    job_id = routed_job(aws, KEY, reviews(104), MODEL)
    expect_submit(bedrock, aws, f"{job_id}-s0000")
    # Bedrock refuses jobs under 100 records: the 4 go through InvokeModel, one by one. The
    # third is refused as malformed (a 400), which no retry would change.
    for i in (100, 101):
        expect_invoke(bedrock, i)
    bedrock.runtime.add_client_error(
        "invoke_model", service_error_code="ValidationException", service_message="Malformed input request",
        http_status_code=400,
    )  # fmt: skip
    expect_invoke(bedrock, 103)

    # WHEN the file is submitted
    orchestrator.submit(job_id)

    # THEN the remainder already ran, in Bedrock's output format, and only the job is in flight
    bedrock.assert_all_called()
    remainder = shard(aws, f"{job_id}-s0001")
    assert remainder.status == "COMPLETED"
    assert remainder.extra["realtime"] is True
    realtime_out = aws.lines(f"batch/{job_id}/s0001/output/realtime/input.jsonl.out")
    assert [line["recordId"] for line in realtime_out] == [f"{i:011d}" for i in range(100, 104)]
    assert not aws.keys(f"batch/{job_id}/s0001-r")  # a 400 is not retried

    # WHEN the job completes
    answer(aws, f"{job_id}-s0000")
    assert deliver(aws, f"{job_id}-s0000")["merged"] is True

    # THEN both halves are joined in input order; the refused record is an error line
    lines = aws.lines(OUTPUT)
    assert [line["id"] for line in lines] == [f"r{i:05d}" for i in range(104)]
    assert [line.get("prediction") for line in lines[:102]] == [summary_of(i) for i in range(102)]
    assert lines[102]["error"]["code"] == "bedrock_400"
    assert "Malformed input request" in lines[102]["error"]["message"]
    assert lines[103] == {"id": "r00103", "prediction": summary_of(103)}
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 104, "predictions": 103, "errors": 1}
    assert summary["tokens"]["input"] == sum(tokens_of(i)[0] for i in range(104) if i != 102)
    # AND the estimate prices the job's tokens at batch prices, InvokeModel's at on-demand (2x)
    assert summary["cost_estimate"]["usd"] == pytest.approx(
        expected_usd(range(100)) + 2 * expected_usd([100, 101, 103]), abs=2e-8
    )
    assert "InvokeModel's" in summary["cost_estimate"]["basis"]


def test_bad_records_are_reported_and_never_sent_to_bedrock(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings
) -> None:
    # GIVEN 100 good reviews among a broken JSON line, a record without "text" and an empty text
    body = reviews(50) + b'{"id": "broken", "text": \n' + b'{"id": "no-text", "body": "x"}\n'
    body += b'{"id": "empty", "text": "   "}\n' + reviews(50, start=50)
    job_id = routed_job(aws, KEY, body, MODEL)
    expect_submit(bedrock, aws, f"{job_id}-s0000")

    # WHEN it is submitted and the job completes
    orchestrator.submit(job_id)
    sent = aws.lines(f"batch/{job_id}/s0000/input.jsonl")
    answer(aws, f"{job_id}-s0000")
    deliver(aws, f"{job_id}-s0000")

    # THEN exactly the 100 good records were sent (keyed by their position in the file) ...
    assert len(sent) == 100
    assert "00000000050" not in {line["recordId"] for line in sent}
    # ... and the three others are error lines in their places
    lines = aws.lines(OUTPUT)
    assert len(lines) == 103
    assert [lines[i]["error"]["code"] for i in (50, 51, 52)] == [
        "invalid_json",
        "invalid_input",
        "invalid_input",
    ]
    assert lines[51]["id"] == "no-text"
    assert lines[52]["id"] == "empty"
    assert aws.json(SUMMARY)["counts"] == {"records": 103, "predictions": 100, "errors": 3}


def test_a_file_with_no_usable_record_is_reported_without_any_bedrock_call(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings
) -> None:
    # GIVEN a file whose every record is unusable
    job_id = routed_job(aws, KEY, b'not json\n{"id": "x", "text": ""}\n', MODEL)

    # WHEN it is submitted (the Stubber has no answer scripted: any call would fail the test)
    orchestrator.submit(job_id)

    # THEN it is merged at once, every record an error line, and the owner notified
    assert [line["error"]["code"] for line in aws.lines(OUTPUT)] == ["invalid_json", "invalid_input"]
    assert aws.json(SUMMARY)["counts"] == {"records": 2, "predictions": 0, "errors": 2}
    assert [n["status"] for n in aws.notifications()] == ["COMPLETED"]


def test_without_a_service_role_the_file_fails_before_sharding_and_says_what_to_set(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN="")
    job_id = routed_job(aws, KEY, reviews(150), MODEL)

    result = orchestrator.submit(job_id)

    assert result["status"] == "FAILED"
    assert "BEDROCK_ROLE_ARN" in result["error"]
    assert aws.keys(f"batch/{job_id}/") == []
    [notice] = aws.notifications()
    assert notice["status"] == "FAILED"
    assert "BEDROCK_ROLE_ARN" in notice["error"]
    # AND a FAILED summary is where the results would be, as the job record says
    summary = aws.json(SUMMARY)
    assert summary["status"] == "FAILED"
    assert "BEDROCK_ROLE_ARN" in summary["error"]
    assert summary["counts"] == {"records": 0, "predictions": 0, "errors": 0}
    assert summary["output"] is None
    assert set(summary["timings"]) >= {"started_at", "finished_at", "seconds"}
    job = aws.job(job_id)
    assert job is not None
    assert job["summary"] == f"s3://{aws.bucket}/{SUMMARY}"
