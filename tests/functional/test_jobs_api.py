"""``POST /jobs`` and ``GET /jobs/{id}`` through predict_api, with s3_ingest doing the work, in moto.

Each job's input lands under ``inputs/<model>/jobs/<job_id>/``; the test then delivers the S3
notification for that object to s3_ingest (as SQS would) and reads the job back through the API.
Every test runs with a REST (1.0) and an HTTP API (2.0) event (``call_api`` is parametrised).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from events import build_s3_events
from functions.s3_ingest.app import lambda_handler as s3_ingest
from sinfer.api.openapi import document
from sinfer.config import reset_settings
from sinfer.inference.registry import default_registry
from sinfer.jobs.store import JobStore
from sinfer.local.s3events import s3_notification, s3_record, sqs_event
from tests.conftest import CallApi, FakeLambdaContext
from tests.functional.conftest import BUCKET, AwsStack, Configure

HELD_OUT = build_s3_events.held_out()
PATIENTS = next(o for o in build_s3_events.objects() if o.key.endswith("samples/patients.csv"))


def _json(response: Any) -> Any:
    return json.loads(response.body)


def _ingest(aws: AwsStack, key: str) -> None:
    """Deliver the S3 notification for ``key`` (its real size and ETag) to s3_ingest via SQS."""
    head = aws.s3.head_object(Bucket=BUCKET, Key=key)
    event = sqs_event(s3_notification(s3_record(BUCKET, key, head["ContentLength"], head["ETag"].strip('"'))))
    assert s3_ingest(event, FakeLambdaContext()) == {"batchItemFailures": []}


def _documented(path: str, method: str, status: int) -> bool:
    """Whether the committed OpenAPI document lists this answer for the operation."""
    return str(status) in document()["paths"][path][method]["responses"]


def _key(uri: str) -> str:
    assert uri.startswith(f"s3://{BUCKET}/")
    return uri.removeprefix(f"s3://{BUCKET}/")


def _presigned_key(url: str) -> str:
    """The object key a presigned URL names (virtual-hosted style: the path is the key)."""
    parsed = urlparse(url)
    assert parsed.hostname is not None
    assert parsed.hostname.startswith(f"{BUCKET}.")
    return unquote(parsed.path.lstrip("/"))


def _digit_rows(count: int) -> list[list[float]]:
    return [HELD_OUT.digits[i].astype(np.float32).tolist() for i in range(count)]


# --- inline instances --------------------------------------------------------------------


def test_inline_instances_become_a_job_that_completes(aws: AwsStack, call_api: CallApi) -> None:
    # GIVEN a job of four inline digits instances
    instances = _digit_rows(4)
    created = call_api("POST", "/jobs", {"model": "digits", "instances": instances})

    # THEN it is accepted, and its input waits under inputs/digits/jobs/<job_id>/
    assert created.status == 202, created.body
    doc = _json(created)
    job_id = doc["job_id"]
    assert job_id.startswith("job-")
    assert (doc["status"], doc["model"], doc["status_url"]) == ("QUEUED", "digits", f"/jobs/{job_id}")
    key = _key(doc["input"])
    assert key == f"inputs/digits/jobs/{job_id}/instances.jsonl"
    assert aws.keys(f"inputs/digits/jobs/{job_id}/") == [key]
    queued = _json(call_api("GET", f"/jobs/{job_id}"))
    assert queued["status"] == "QUEUED"
    assert "result_url" not in queued

    # WHEN s3_ingest gets the upload's notification
    _ingest(aws, key)

    # THEN the job reads COMPLETED with its counts and a SigV4 presigned link to the results
    status = call_api("GET", f"/jobs/{job_id}")
    assert status.status == 200
    job = _json(status)
    assert job["status"] == "COMPLETED"
    assert job["counts"] == {"records": 4, "predictions": 4, "errors": 0}
    assert (job["model"], job["model_version"], job["backend"]) == ("digits", "1", "lambda")
    assert "X-Amz-Signature=" in job["result_url"]
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in job["result_url"]
    assert "X-Amz-Signature=" in job["summary_url"]
    # AND the results it points at are the model's predictions, in order
    results_key = _presigned_key(job["result_url"])
    assert results_key == f"outputs/digits/jobs/{job_id}/instances.jsonl.predictions.jsonl"
    lines = aws.lines(results_key)
    assert [line["id"] for line in lines] == [0, 1, 2, 3]
    expected = default_registry().get("digits").predict(instances)
    assert [line["prediction"]["label"] for line in lines] == [p["label"] for p in expected]
    assert [line["prediction"]["label"] for line in lines] == [str(v) for v in HELD_OUT.digits_predicted[:4]]
    assert aws.json(_presigned_key(job["summary_url"]))["job_id"] == job_id
    # AND the notification is for this job
    assert [(n["job_id"], n["status"]) for n in aws.notifications()] == [(job_id, "COMPLETED")]


def test_job_records_expire_after_job_ttl_days(
    aws: AwsStack, call_api: CallApi, configure: Configure
) -> None:
    # GIVEN records kept 7 days, not the default 90
    configure(JOB_TTL_DAYS=7)
    before = int(time.time())

    # WHEN a job is created by the API and then run by s3_ingest
    store = JobStore(aws.table)
    job_id = _json(call_api("POST", "/jobs", {"model": "digits", "instances": _digit_rows(2)}))["job_id"]
    created = store.get(job_id)
    _ingest(aws, f"inputs/digits/jobs/{job_id}/instances.jsonl")
    done = store.get(job_id)

    # THEN both wrote DynamoDB's expiry (the table's TTL attribute) 7 days out
    assert created is not None
    assert done is not None
    assert done.status == "COMPLETED"
    for job in (created, done):
        assert before + 7 * 86400 <= job.expires_at <= int(time.time()) + 7 * 86400


# --- an object already in the data bucket ------------------------------------------------


def test_an_input_in_the_data_bucket_is_copied_to_the_job(aws: AwsStack, call_api: CallApi) -> None:
    # GIVEN a CSV already in the data bucket's staging/ prefix (which triggers nothing itself),
    # tagged as its owner's tools may tag it
    aws.put("staging/patients.csv", PATIENTS.data, "text/csv")
    aws.s3.put_object_tagging(
        Bucket=BUCKET, Key="staging/patients.csv", Tagging={"TagSet": [{"Key": "team", "Value": "oncology"}]}
    )

    created = call_api(
        "POST", "/jobs", {"model": "breast_cancer", "input": f"s3://{BUCKET}/staging/patients.csv"}
    )

    assert created.status == 202, created.body
    job_id = _json(created)["job_id"]
    key = f"inputs/breast_cancer/jobs/{job_id}/patients.csv"
    assert _json(created)["input"] == f"s3://{BUCKET}/{key}"
    assert aws.get(key) == PATIENTS.data
    # ... without its tags: copying them would need s3:GetObjectTagging and s3:PutObjectTagging,
    # which predict_api's role does not have (moto grants all; AWS would deny the copy)
    assert aws.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"] == []

    _ingest(aws, key)

    job = _json(call_api("GET", f"/jobs/{job_id}"))
    assert job["status"] == "COMPLETED"
    assert job["counts"]["predictions"] == len(PATIENTS.ids)
    lines = aws.lines(_presigned_key(job["result_url"]))
    assert [line["id"] for line in lines] == list(PATIENTS.ids)
    classes, predicted = HELD_OUT.cancer_classes, HELD_OUT.cancer_predicted
    assert [line["prediction"]["label"] for line in lines] == [classes[predicted[r]] for r in PATIENTS.rows]


# --- a presigned upload ------------------------------------------------------------------


def test_an_upload_url_job_waits_for_the_upload_then_completes(aws: AwsStack, call_api: CallApi) -> None:
    # GIVEN a job that asks for somewhere to upload its file
    created = call_api("POST", "/jobs", {"model": "breast_cancer", "upload": {"filename": "patients.csv"}})
    assert created.status == 202, created.body
    doc = _json(created)
    job_id = doc["job_id"]

    # THEN it is PENDING with a presigned PUT URL for inputs/breast_cancer/jobs/<job_id>/patients.csv
    assert doc["status"] == "PENDING"
    assert doc["upload_method"] == "PUT"
    assert "X-Amz-Signature=" in doc["upload_url"]
    key = _presigned_key(doc["upload_url"])
    assert key == f"inputs/breast_cancer/jobs/{job_id}/patients.csv" == _key(doc["input"])
    assert _json(call_api("GET", f"/jobs/{job_id}"))["status"] == "PENDING"
    assert aws.keys("inputs/") == []

    # WHEN the client uploads there and s3_ingest gets the notification
    aws.put(key, PATIENTS.data, "text/csv")
    _ingest(aws, key)

    # THEN the job completes
    job = _json(call_api("GET", f"/jobs/{job_id}"))
    assert job["status"] == "COMPLETED"
    assert job["counts"] == {"records": len(PATIENTS.ids), "predictions": len(PATIENTS.ids), "errors": 0}
    assert [line["id"] for line in aws.lines(_presigned_key(job["result_url"]))] == list(PATIENTS.ids)


def test_a_job_whose_file_cannot_be_read_reads_failed(aws: AwsStack, call_api: CallApi) -> None:
    created = _json(call_api("POST", "/jobs", {"model": "digits", "upload": {"filename": "data.jsonl.gz"}}))
    key = _presigned_key(created["upload_url"])
    aws.put(key, b"this is not gzip")
    _ingest(aws, key)

    job = _json(call_api("GET", f"/jobs/{created['job_id']}"))
    assert job["status"] == "FAILED"
    assert "gzip" in job["error"]
    assert "result_url" not in job


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "no_such_model", "instances": [[0.0] * 64]}, 404, "no_such_model"),
        ({"instances": [[0.0] * 64]}, 400, "model"),
        ({"model": "digits", "instances": [[0.0] * 64], "upload": {"filename": "x.csv"}}, 400, "exactly one"),
        ({"model": "digits"}, 400, "exactly one"),
        ({"model": "digits", "input": "s3://someone-elses-bucket/data.csv"}, 400, "data bucket"),
        ({"model": "digits", "input": f"s3://{BUCKET}/outputs/digits/x.jsonl"}, 400, "staging/"),
        ({"model": "digits", "instances": []}, 400, "non-empty"),
        ({"model": "digits", "upload": {"filename": "../../etc/passwd"}}, 400, "plain file name"),
        ({"model": "digits", "upload": {"filename": "x.csv\n"}}, 400, "plain file name"),
        ({"model": "digits", "instances": [[0.0] * 64], "backend": "gpu"}, 400, "'backend' must be one of"),
        # a backend that cannot run the model is refused, not quietly replaced by the one that can
        ({"model": "digits", "instances": [[0.0] * 64], "backend": "bedrock"}, 422, "is an ONNX model"),
        (
            {"model": "claude_summarize", "instances": [{"text": "a review"}], "backend": "lambda"},
            422,
            "is a Bedrock foundation-model entry",
        ),
    ],
    ids=[
        "unknown-model",
        "missing-model",
        "two-sources",
        "no-source",
        "other-bucket",
        "outputs-prefix",
        "no-instances",
        "path-in-filename",
        "newline-in-filename",
        "unknown-backend",
        "onnx-on-bedrock",
        "bedrock-entry-in-lambda",
    ],
)
def test_bad_job_requests_are_refused_with_the_reason(
    aws: AwsStack, call_api: CallApi, body: dict[str, Any], status: int, says: str
) -> None:
    response = call_api("POST", "/jobs", body)

    assert response.status == status, response.body
    assert says in _json(response)["error"]
    assert _documented("/jobs", "post", status)
    # AND nothing was started
    assert aws.keys() == []
    assert aws.dynamodb.scan(TableName=aws.table)["Count"] == 0


def test_a_job_body_that_is_not_json_is_a_400(aws: AwsStack, call_api: CallApi) -> None:
    response = call_api("POST", "/jobs", b"{not json", {"Content-Type": "application/json"})
    assert response.status == 400
    assert "JSON" in _json(response)["error"]


def test_an_unknown_job_id_is_a_404(aws: AwsStack, call_api: CallApi) -> None:
    for job_id in ("job-0123456789abcdef0123456789abcdef", "not a job!"):
        response = call_api("GET", f"/jobs/{job_id}")
        assert response.status == 404
        assert "no job" in _json(response)["error"]


def test_jobs_without_a_data_bucket_are_not_configured(
    aws: AwsStack, call_api: CallApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment of the API alone (no DATA_BUCKET)
    monkeypatch.delenv("DATA_BUCKET")
    reset_settings()

    # THEN both job routes say so with a 503, not a 500
    for method, path, body in (
        ("POST", "/jobs", {"model": "digits", "instances": [[0.0] * 64]}),
        ("GET", "/jobs/job-0123456789abcdef0123456789abcdef", b""),
    ):
        response = call_api(method, path, body)
        assert response.status == 503, response.body
        assert "DATA_BUCKET" in _json(response)["error"]
        assert _documented(path if method == "POST" else "/jobs/{job_id}", method.lower(), 503)
