"""s3_ingest's handler against moto: uploads under inputs/<model>/ → predictions, summary, job, notification.

The events are the committed samples in events/s3/ (built by ``python -m events.build_s3_events``),
and the objects they name are the committed bytes in events/s3/objects/, so each event carries
the real size and ETag of what the test uploads. Where a test needs a file of its own, it builds
the event for that exact key with :mod:`sinfer.local.s3events`, the builders the samples use.

Expected predictions come from two independent places: ``LoadedModel.predict`` on the same
instances (every field, scores within float32 rounding), and scikit-learn's own labels for the
held-out rows the files were built from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

import sinfer.aws.s3
from events import build_s3_events
from events.build_s3_events import SampleObject
from functions.s3_ingest.app import lambda_handler
from sinfer.config import reset_settings, settings
from sinfer.inference.registry import default_registry
from sinfer.jobs import ingest
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job, object_job_id
from sinfer.local.s3events import eventbridge_object_created, s3_notification, s3_record, sqs_event
from sinfer.records.writer import MIN_PART_SIZE, S3JsonlWriter
from tests.conftest import FakeLambdaContext, emf_documents, load_event
from tests.functional.conftest import BUCKET, AwsStack

OBJECTS = {obj.key: obj for obj in build_s3_events.objects()}
HELD_OUT = build_s3_events.held_out()
MiB = 1024 * 1024

# --- helpers -----------------------------------------------------------------------------


def _upload(aws: AwsStack, *keys: str) -> None:
    for key in keys:
        obj = OBJECTS[key]
        aws.put(key, obj.data, obj.content_type)


def _invoke(event: dict[str, Any], context: FakeLambdaContext | None = None) -> Any:
    return lambda_handler(event, context or FakeLambdaContext())


def _sqs_for(aws: AwsStack, key: str, version_id: str = "") -> dict[str, Any]:
    """An SQS-delivered S3 notification for an object already in the bucket (its real size, ETag)."""
    head = aws.s3.head_object(Bucket=BUCKET, Key=key, **({"VersionId": version_id} if version_id else {}))
    record = s3_record(BUCKET, key, head["ContentLength"], head["ETag"].strip('"'), version_id)
    return sqs_event(s3_notification(record))


def _job_id(key: str, version: str) -> str:
    return object_job_id(BUCKET, key, version)


def _outputs(key: str) -> tuple[str, str]:
    base = "outputs/" + key.removeprefix("inputs/")
    return f"{base}.predictions.jsonl", f"{base}.summary.json"


def _failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def _message_ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def _instances(obj: SampleObject) -> list[Any]:
    """What each record of a sample object means to its model, to predict directly."""
    data = HELD_OUT
    if obj.model == "digits":
        if obj.format in ("png", "jpg"):
            return [obj.data]
        return [data.digits[r].astype(np.float32).tolist() for r in obj.rows]
    columns = data.cancer_columns
    return [dict(zip(columns, data.cancer[r].astype(np.float32).tolist(), strict=True)) for r in obj.rows]


def _sklearn_labels(obj: SampleObject) -> list[str]:
    if obj.model == "digits":
        return [str(HELD_OUT.digits_predicted[r]) for r in obj.rows]
    return [HELD_OUT.cancer_classes[HELD_OUT.cancer_predicted[r]] for r in obj.rows]


def _assert_same_prediction(got: Any, expected: Any) -> None:
    """Equal labels and structure; scores equal within float32 rounding (batch sizes differ)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict)
        assert got.keys() == expected.keys()
        for name in expected:
            _assert_same_prediction(got[name], expected[name])
    elif isinstance(expected, list):
        assert isinstance(got, list)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            _assert_same_prediction(a, b)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
    else:
        assert got == expected


def _digits_jsonl(count: int, id_prefix: str = "r") -> bytes:
    """``count`` JSON lines cycling through the digits held-out rows (a few hundred bytes each)."""
    rows = HELD_OUT.digits
    lines = []
    for i in range(count):
        row = ",".join(str(int(v)) for v in rows[i % len(rows)])
        lines.append(f'{{"id":"{id_prefix}{i}","instance":[{row}]}}\n')
    return "".join(lines).encode()


@pytest.fixture(scope="module")
def big_jsonl() -> bytes:
    """About 6 MB of digits JSON Lines, whose predictions file is over S3's 5 MiB minimum part size."""
    return _digits_jsonl(36_000)


class SpyBody:
    """A streaming body that records every read size (and can fail after some bytes)."""

    def __init__(self, body: Any, fail_after: int | None = None) -> None:
        self._body = body
        self.sizes: list[int | None] = []
        self.total = 0
        self._fail_after = fail_after

    def read(self, size: int | None = None) -> bytes:
        self.sizes.append(size)
        if self._fail_after is not None and self.total >= self._fail_after:
            raise ReadTimeoutError(endpoint_url=f"https://{BUCKET}.s3.amazonaws.com/")
        data: bytes = self._body.read(size)
        self.total += len(data)
        return data


def _spy_streams(monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[SpyBody]:
    opened: list[SpyBody] = []
    real = sinfer.aws.s3.open_stream

    def open_stream(bucket: str, key: str, version: str | None = None) -> SpyBody:
        spy = SpyBody(real(bucket, key, version), fail_after)
        opened.append(spy)
        return spy

    monkeypatch.setattr(sinfer.aws.s3, "open_stream", open_stream)
    return opened


def _small_parts(monkeypatch: pytest.MonkeyPatch) -> list[S3JsonlWriter]:
    """Make ingest write with S3's minimum part size, and keep the writers it creates."""
    writers: list[S3JsonlWriter] = []

    def make(bucket: str, key: str, **kwargs: Any) -> S3JsonlWriter:
        writer = S3JsonlWriter(bucket, key, part_size=MIN_PART_SIZE, **kwargs)  # (background=True kept)
        writers.append(writer)
        return writer

    monkeypatch.setattr(ingest, "S3JsonlWriter", make)
    return writers


def _throttled(operation: str) -> ClientError:
    """What botocore raises when S3 answers 503 SlowDown (after its own retries)."""
    response: Any = {
        "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
        "ResponseMetadata": {"HTTPStatusCode": 503},
    }
    return ClientError(response, operation)


# --- 1. every input format ---------------------------------------------------------------

FORMAT_EVENTS = {
    "sqs_digits_jsonl": "inputs/digits/samples/digits.jsonl",
    "sqs_digits_json": "inputs/digits/samples/digits.json",
    "sqs_breast_cancer_csv": "inputs/breast_cancer/samples/patients.csv",
    "sqs_digits_csv": "inputs/digits/samples/digits.csv",
    "sqs_digits_npy": "inputs/digits/samples/digits.npy",
    "sqs_digits_png": "inputs/digits/samples/digit-028.png",
    "sqs_digits_jpg": "inputs/digits/samples/digit-029.jpg",
    "sqs_breast_cancer_csv_gz": "inputs/breast_cancer/samples/patients.csv.gz",
    "sqs_digits_jsonl_gz": "inputs/digits/samples/digits.jsonl.gz",
    "sqs_key_with_spaces": "inputs/breast_cancer/my data/été 2026.csv",
}


def test_the_committed_s3_events_are_what_the_builder_writes() -> None:
    stale = build_s3_events.stale(build_s3_events.build())
    assert stale == [], f"regenerate with `python -m events.build_s3_events`: {stale}"


def test_the_corpus_covers_every_format_once() -> None:
    formats = {OBJECTS[key].format for key in FORMAT_EVENTS.values()}
    assert formats == {"jsonl", "json", "csv", "npy", "png", "jpg", "csv.gz", "jsonl.gz"}
    csvs = [OBJECTS[key] for key in FORMAT_EVENTS.values() if OBJECTS[key].format == "csv"]
    assert any(obj.data.startswith(b"id,") for obj in csvs)  # with an id column
    assert any(not obj.data.startswith(b"id,") for obj in csvs)  # and without
    # S3 URL-encodes keys in notifications (spaces as "+"); EventBridge does not
    body = json.loads(load_event("s3/sqs_key_with_spaces.json")["Records"][0]["body"])
    assert body["Records"][0]["s3"]["object"]["key"] == "inputs/breast_cancer/my+data/%C3%A9t%C3%A9+2026.csv"
    detail = load_event("s3/eventbridge_object_created.json")["detail"]
    assert detail["object"]["key"] == "inputs/breast_cancer/samples/patients.jsonl"


@pytest.mark.parametrize("event_name", sorted(FORMAT_EVENTS))
def test_each_format_is_predicted_in_order_with_ids(aws: AwsStack, event_name: str) -> None:
    # GIVEN the sample object uploaded to the data bucket
    key = FORMAT_EVENTS[event_name]
    obj = OBJECTS[key]
    _upload(aws, key)
    event = load_event(f"s3/{event_name}.json")

    # WHEN its S3 notification arrives through SQS
    response = _invoke(event)

    # THEN the message is acknowledged and there is one line per record, in order, ids kept
    assert response == {"batchItemFailures": []}
    predictions_key, summary_key = _outputs(key)
    lines = aws.lines(predictions_key)
    assert [line["id"] for line in lines] == list(obj.ids)
    assert all("error" not in line for line in lines), lines
    # ... predicting what the model predicts directly, and what scikit-learn predicts
    expected = default_registry().get(obj.model).predict(_instances(obj))
    for line, want in zip(lines, json.loads(json.dumps(expected)), strict=True):
        _assert_same_prediction(line["prediction"], want)
    if obj.format != "jpg":  # JPEG is lossy: only the direct prediction on the same bytes must agree
        assert [line["prediction"]["label"] for line in lines] == _sklearn_labels(obj)

    # AND the summary, the job record and exactly one notification say COMPLETED with the counts
    count = len(obj.ids)
    summary = aws.json(summary_key)
    job_id = _job_id(key, obj.etag)
    assert summary["status"] == "COMPLETED"
    assert summary["counts"] == {"records": count, "predictions": count, "errors": 0}
    assert summary["records_match"] is True
    assert (summary["model"], summary["model_version"], summary["backend"]) == (obj.model, "1", "lambda")
    assert summary["job_id"] == job_id
    assert summary["output"] == f"s3://{BUCKET}/{predictions_key}"
    assert summary["cost_estimate"]["usd"] > 0
    assert summary["timings"]["seconds"] >= 0
    job = aws.job(job_id)
    assert job is not None
    assert job["status"] == "COMPLETED"
    assert job["counts"] == summary["counts"]
    assert job["input"] == f"s3://{BUCKET}/{key}"
    notes = aws.notifications()
    assert [(n["job_id"], n["status"]) for n in notes] == [(job_id, "COMPLETED")]
    assert notes[0]["counts"] == summary["counts"]


def test_a_batch_of_three_messages_processes_each_object(aws: AwsStack) -> None:
    event = load_event("s3/sqs_batch_3.json")
    keys = [
        "inputs/digits/samples/digits.npy",
        "inputs/digits/samples/digits.json",
        "inputs/breast_cancer/samples/patients.csv",
    ]
    _upload(aws, *keys)
    assert len(event["Records"]) == 3

    assert _invoke(event) == {"batchItemFailures": []}

    for key in keys:
        assert [line["id"] for line in aws.lines(_outputs(key)[0])] == list(OBJECTS[key].ids)
    assert sorted(n["input"] for n in aws.notifications()) == sorted(f"s3://{BUCKET}/{k}" for k in keys)


def test_the_cost_estimate_is_at_the_memory_the_context_gives(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an environment that says another function's memory (as in `sinfer local`, where the
    # functions share one process), and an invocation of a 3,008 MB function
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    reset_settings()
    key = "inputs/digits/samples/digits.npy"
    _upload(aws, key)
    context = FakeLambdaContext()
    context.memory_limit_in_mb = 3008

    # WHEN the upload is processed
    assert _invoke(_sqs_for(aws, key), context) == {"batchItemFailures": []}

    # THEN its summary prices the GB-seconds at the context's memory
    summary = aws.json(_outputs(key)[1])
    assert "GB-s of Lambda at 3008 MB" in summary["cost_estimate"]["basis"]
    gb_seconds = float(summary["cost_estimate"]["basis"].split(" GB-s")[0])
    assert gb_seconds == pytest.approx(3008 / 1024 * summary["timings"]["seconds"], rel=0.01, abs=0.001)


def test_one_transient_failure_in_a_batch_fails_only_its_message(
    aws: AwsStack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a batch of three, where reading the JSON document is throttled
    event = load_event("s3/sqs_batch_3.json")
    _upload(aws, "inputs/digits/samples/digits.npy", "inputs/digits/samples/digits.json",
            "inputs/breast_cancer/samples/patients.csv")  # fmt: skip
    real = sinfer.aws.s3.open_stream

    def open_stream(bucket: str, key: str, version: str | None = None) -> Any:
        if key.endswith("digits.json"):
            raise _throttled("GetObject")
        return real(bucket, key, version)

    monkeypatch.setattr(sinfer.aws.s3, "open_stream", open_stream)

    # WHEN it is delivered, THEN only that message is reported back for redelivery
    assert _failures(_invoke(event)) == [_message_ids(event)[1]]
    assert len(aws.notifications()) == 2
    # AND the failure is logged with its key and the exception, and counted
    [failed] = [r for r in caplog.records if r.getMessage().startswith("message failed")]
    assert failed.levelname == "ERROR"
    assert failed.keys == ["inputs/digits/samples/digits.json"]  # type: ignore[attr-defined]
    assert failed.exc_info is not None
    assert "SlowDown" in str(failed.exc_info[1])
    metrics = emf_documents(capsys.readouterr().out)
    assert [m["MessagesRetried"] for m in metrics if "MessagesRetried" in m] in ([1.0], [[1.0]])


# --- 2. bad records ----------------------------------------------------------------------


def test_bad_jsonl_records_become_error_lines_and_the_file_goes_on(aws: AwsStack) -> None:
    # GIVEN a JSONL file with a bad JSON line and a wrong-shape instance between good lines
    rows = HELD_OUT.digits
    good = [rows[i].astype(np.float32).tolist() for i in range(3)]
    text = (
        json.dumps({"id": "a", "instance": good[0]}) + "\n"
        + '{"id": "b", "instance": [1, 2,\n'
        + json.dumps({"id": "c", "instance": good[1][:63]}) + "\n"
        + "\n"  # a blank line is not a record
        + json.dumps({"id": "d", "instance": good[2]}) + "\n"
    )  # fmt: skip
    key = "inputs/digits/bad/records.jsonl"
    aws.put(key, text.encode())

    # WHEN it is ingested
    assert _invoke(_sqs_for(aws, key)) == {"batchItemFailures": []}

    # THEN every input record has a line, in order, and the bad ones say why
    lines = aws.lines(_outputs(key)[0])
    assert len(lines) == 4  # records in
    assert [line["id"] for line in lines] == ["a", 1, "c", "d"]  # an unparseable line keeps its position
    assert "prediction" in lines[0]
    assert "prediction" in lines[3]
    assert lines[1]["error"]["code"] == "invalid_json"
    assert "line 2" in lines[1]["error"]["message"]
    assert lines[2]["error"]["code"] == "invalid_input"
    assert "64" in lines[2]["error"]["message"]
    summary = aws.json(_outputs(key)[1])
    assert summary["status"] == "COMPLETED"
    assert summary["counts"] == {"records": 4, "predictions": 2, "errors": 2}
    assert summary["records_match"] is True


def test_bad_csv_rows_become_error_lines_and_the_file_goes_on(aws: AwsStack) -> None:
    # GIVEN a breast cancer CSV with a ragged row, text in a numeric column and an empty cell
    rows, columns = HELD_OUT.cancer, HELD_OUT.cancer_columns
    cells = [[str(np.float32(v)) for v in rows[i]] for i in range(5)]
    ragged = cells[1][:-2]
    text_cell = ["not-a-number", *cells[2][1:]]
    empty_cell = [*cells[3][:4], "", *cells[3][5:]]
    body = [
        ["p1", *cells[0]],
        ["p2", *ragged],
        ["p3", *text_cell],
        ["p4", *empty_cell],
        ["p5", *cells[4]],
    ]
    data = "\n".join(",".join(row) for row in [["id", *columns], *body]) + "\n"
    key = "inputs/breast_cancer/bad/rows.csv"
    aws.put(key, data.encode(), "text/csv")

    assert _invoke(_sqs_for(aws, key)) == {"batchItemFailures": []}

    lines = aws.lines(_outputs(key)[0])
    assert [line["id"] for line in lines] == ["p1", "p2", "p3", "p4", "p5"]
    errors = {line["id"]: line["error"] for line in lines if "error" in line}
    assert set(errors) == {"p2", "p3", "p4"}
    assert errors["p2"]["code"] == "ragged_row"
    assert "expected 31 cells" in errors["p2"]["message"]
    assert errors["p3"]["code"] == "invalid_input"
    assert "got text" in errors["p3"]["message"]
    assert errors["p4"]["code"] == "empty_cell"
    assert repr(columns[4]) in errors["p4"]["message"]
    classes, predicted = HELD_OUT.cancer_classes, HELD_OUT.cancer_predicted
    assert [lines[0]["prediction"]["label"], lines[4]["prediction"]["label"]] == [
        classes[predicted[0]],
        classes[predicted[4]],
    ]
    summary = aws.json(_outputs(key)[1])
    assert summary["counts"] == {"records": len(body), "predictions": 2, "errors": 3}


# --- 3. unreadable files and unknown models ----------------------------------------------

# A gzip header followed by bytes that are not deflate data.
CORRUPT_GZIP = b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate data"


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("inputs/digits/broken/data.jsonl.gz", CORRUPT_GZIP, "not valid gzip"),
        ("inputs/digits/broken/data.xyz", b"1,2,3\n", "cannot tell the format"),
        ("inputs/nope/data.jsonl", b'{"instance": [1, 2]}\n', "nope"),
    ],
    ids=["corrupt-gzip", "unknown-extension", "unknown-model"],
)
def test_an_unreadable_file_fails_the_job_and_is_acknowledged(
    aws: AwsStack, key: str, data: bytes, reason: str
) -> None:
    # GIVEN a file that cannot be processed at all
    aws.put(key, data, "application/octet-stream")
    event = _sqs_for(aws, key)

    # WHEN it is delivered
    response = _invoke(event)

    # THEN retrying would not help: the message is acknowledged, not returned to the queue
    assert response == {"batchItemFailures": []}
    predictions_key, summary_key = _outputs(key)
    assert predictions_key not in aws.keys("outputs/")
    summary = aws.json(summary_key)
    assert summary["status"] == "FAILED"
    assert reason in summary["error"]
    assert summary["records_match"] is True
    job_id = _job_id(key, hashlib.md5(data, usedforsecurity=False).hexdigest())
    job = aws.job(job_id)
    assert job is not None
    assert job["status"] == "FAILED"
    assert reason in job["error"]
    notes = aws.notifications()
    assert [(n["job_id"], n["status"]) for n in notes] == [(job_id, "FAILED")]
    assert reason in notes[0]["error"]


# --- 4. redelivery and concurrency -------------------------------------------------------


def test_a_redelivered_event_produces_the_output_once(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "inputs/digits/samples/digits.jsonl"
    _upload(aws, key)
    event = load_event("s3/sqs_digits_jsonl.json")
    assert _invoke(event) == {"batchItemFailures": []}
    first = aws.get(_outputs(key)[0])
    writers = _small_parts(monkeypatch)  # now counts any writer the second delivery would open

    # WHEN S3/SQS deliver the same notification again
    assert _invoke(event) == {"batchItemFailures": []}

    # THEN nothing is written again and there is still one COMPLETED notification
    assert writers == []
    assert aws.keys("outputs/") == sorted(_outputs(key))
    assert aws.get(_outputs(key)[0]) == first
    assert [n["status"] for n in aws.notifications()] == ["COMPLETED"]


def test_a_delivery_while_another_worker_holds_the_job_is_retried_later(
    aws: AwsStack, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN another invocation is processing the same object version (a live lease)
    key = "inputs/digits/samples/digits.jsonl"
    obj = OBJECTS[key]
    _upload(aws, key)
    job_id = _job_id(key, obj.etag)
    store = JobStore(aws.table)
    other = store.claim(Job(job_id=job_id, model="digits", status="RUNNING"), "other-worker", 900)
    assert other.outcome == "claimed"
    event = load_event("s3/sqs_digits_jsonl.json")

    # WHEN a second delivery arrives, THEN it goes back to the queue ("busy") and leaves it alone
    assert _failures(_invoke(event)) == _message_ids(event)
    # AND that is logged as what it is, expected under at-least-once delivery, not an ERROR
    [deferred] = [r for r in caplog.records if r.getMessage().startswith("message deferred")]
    assert deferred.levelname == "INFO"
    assert deferred.keys == [key]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # ... and counted apart from failures (IngestMessagesRetriedAlarm reads MessagesRetried)
    [metrics] = emf_documents(capsys.readouterr().out)
    assert metrics["MessagesDeferred"] in (1.0, [1.0])
    assert "MessagesRetried" not in metrics
    job = aws.job(job_id)
    assert job is not None
    assert (job["status"], job["owner"]) == ("RUNNING", "other-worker")
    assert aws.keys("outputs/") == []
    assert aws.notifications() == []

    # WHEN that worker dies and its lease runs out, THEN the redelivery takes over and finishes
    aws.dynamodb.update_item(
        TableName=aws.table,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    assert _invoke(event) == {"batchItemFailures": []}
    assert aws.keys("outputs/") == sorted(_outputs(key))
    assert [(n["job_id"], n["status"]) for n in aws.notifications()] == [(job_id, "COMPLETED")]


def test_a_new_version_of_the_same_key_is_a_new_job(aws: AwsStack) -> None:
    # GIVEN a versioned bucket and a first version processed
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "inputs/digits/versioned/data.jsonl"
    v1 = aws.put(key, _digits_jsonl(3, "v1-"))["VersionId"]
    assert _invoke(_sqs_for(aws, key, v1)) == {"batchItemFailures": []}

    # WHEN a second version is uploaded and its event arrives (and the first one's is redelivered)
    v2 = aws.put(key, _digits_jsonl(5, "v2-"))["VersionId"]
    assert v2 != v1
    assert _invoke(_sqs_for(aws, key, v2)) == {"batchItemFailures": []}
    assert _invoke(_sqs_for(aws, key, v1)) == {"batchItemFailures": []}

    # THEN each version is its own completed job, and the output is the new version's
    notes = aws.notifications()
    assert [(n["job_id"], n["status"]) for n in notes] == [
        (_job_id(key, v1), "COMPLETED"),
        (_job_id(key, v2), "COMPLETED"),
    ]
    assert [line["id"] for line in aws.lines(_outputs(key)[0])] == [f"v2-{i}" for i in range(5)]


# --- 5. events that are not work ---------------------------------------------------------


def test_the_sample_event_of_a_superseded_version_is_acknowledged_and_ignored(aws: AwsStack) -> None:
    # GIVEN a versioned bucket (as the stack's is) whose object's current version is not the
    # one the sample event names
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "inputs/digits/samples/digits.jsonl"
    _upload(aws, key)
    current = aws.s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    event = load_event("s3/sqs_superseded_version.json")
    named = json.loads(event["Records"][0]["body"])["Records"][0]["s3"]["object"]["versionId"]
    assert current != named == build_s3_events.SUPERSEDED_VERSION_ID
    before = aws.keys()

    # WHEN its notification arrives
    response = _invoke(event)

    # THEN it is acknowledged, and nothing is read into a job, written or notified: the current
    # version's own event writes the results
    assert response == {"batchItemFailures": []}
    assert aws.keys() == before
    assert aws.dynamodb.scan(TableName=aws.table)["Count"] == 0
    assert aws.notifications() == []
    # ... while the current version's event is processed as usual
    assert _invoke(_sqs_for(aws, key, current)) == {"batchItemFailures": []}
    assert len(aws.lines(_outputs(key)[0])) == len(OBJECTS[key].ids)


@pytest.mark.parametrize("event_name", ["sqs_test_event", "sqs_outputs_key"])
def test_test_events_and_output_keys_are_acknowledged_and_ignored(aws: AwsStack, event_name: str) -> None:
    # GIVEN even an existing object under outputs/ (what a recursion would feed back)
    aws.put("outputs/digits/samples/digits.jsonl.predictions.jsonl", b'{"id":0,"prediction":1}\n')
    before = aws.keys()

    response = _invoke(load_event(f"s3/{event_name}.json"))

    assert response == {"batchItemFailures": []}
    assert aws.keys() == before
    assert aws.dynamodb.scan(TableName=aws.table)["Count"] == 0
    assert aws.notifications() == []


@pytest.mark.parametrize("body", ['{"Records": "x"}', '{"Records": [{"s3": 5}]}'])
def test_an_s3_event_of_the_wrong_shape_is_logged_counted_and_retried(
    aws: AwsStack, body: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a message that says it holds S3 records, in a shape S3 never sends
    event = sqs_event(body)

    # WHEN it is delivered, THEN it goes back to SQS (and, after 5 receives, to the DLQ) ...
    assert _failures(_invoke(event)) == _message_ids(event)
    # ... logged at ERROR with its body, since it names no key, and counted as a retry
    [failed] = [r for r in caplog.records if r.getMessage().startswith("message failed")]
    assert failed.levelname == "ERROR"
    assert (failed.keys, failed.body) == ([], body)  # type: ignore[attr-defined]
    metrics = emf_documents(capsys.readouterr().out)
    assert [m["MessagesRetried"] for m in metrics if "MessagesRetried" in m] in ([1.0], [[1.0]])


# --- 6. transient faults -----------------------------------------------------------------


def test_a_throttled_read_is_retried_later_and_leaves_nothing_behind(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN S3 throttles the GetObject
    key = "inputs/digits/samples/digits.jsonl"
    _upload(aws, key)

    real = sinfer.aws.s3.open_stream
    s3_is_throttling = True

    def open_stream(bucket: str, key: str, version: str | None = None) -> Any:
        if s3_is_throttling:
            raise _throttled("GetObject")
        return real(bucket, key, version)

    monkeypatch.setattr(sinfer.aws.s3, "open_stream", open_stream)
    event = load_event("s3/sqs_digits_jsonl.json")

    # WHEN the notification is delivered
    response = _invoke(event)

    # THEN the message goes back for redelivery, the job is QUEUED again, nothing is written
    assert _failures(response) == _message_ids(event)
    job = aws.job(_job_id(key, OBJECTS[key].etag))
    assert job is not None
    assert job["status"] == "QUEUED"
    assert not job["lease_until"]
    assert aws.keys("outputs/") == []
    assert aws.pending_multipart_uploads() == []
    assert aws.notifications() == []

    # AND once S3 recovers, the redelivery completes the job
    s3_is_throttling = False
    assert _invoke(event) == {"batchItemFailures": []}
    assert [n["status"] for n in aws.notifications()] == ["COMPLETED"]


def test_a_connection_fault_mid_file_aborts_the_multipart_upload(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a large file whose output is already being uploaded in parts when the read times out
    # (10 MB: the pipeline reads a few MB of blocks ahead of what it has written)
    big_jsonl = _digits_jsonl(60_000)
    key = "inputs/digits/big/midway.jsonl"
    aws.put(key, big_jsonl)
    writers = _small_parts(monkeypatch)
    # (the read after the last byte times out: by then most of the output has been written)
    _spy_streams(monkeypatch, fail_after=len(big_jsonl))
    event = _sqs_for(aws, key)

    # WHEN it is processed
    response = _invoke(event)

    # THEN the message is retried, the part upload was started and then aborted, and no
    # output, summary or multipart upload is left in the bucket
    assert _failures(response) == _message_ids(event)
    assert len(writers) == 1
    assert writers[0].counts.bytes > MIN_PART_SIZE  # so at least one part had been uploaded
    assert aws.pending_multipart_uploads() == []
    assert aws.keys("outputs/") == []
    job = aws.job(_job_id(key, hashlib.md5(big_jsonl, usedforsecurity=False).hexdigest()))
    assert job is not None
    assert job["status"] == "QUEUED"
    assert aws.notifications() == []


# --- 7. routing to a batch backend -------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "limit", "reason"),
    [
        ("MAX_INLINE_BYTES", 1000, "bytes is over MAX_INLINE_BYTES (1,000)"),
        ("MAX_INLINE_RECORDS", 3, "records is over MAX_INLINE_RECORDS (3)"),
    ],
    ids=["bytes", "records"],
)
def test_a_file_over_an_inline_limit_is_routed_not_processed(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, variable: str, limit: int, reason: str
) -> None:
    # GIVEN a deployment that keeps only files up to 1 KB (or 3 records) inside Lambda
    monkeypatch.setenv(variable, str(limit))
    reset_settings()
    key = "inputs/digits/samples/digits.jsonl"
    _upload(aws, key)
    assert len(OBJECTS[key].data) > 1000
    assert OBJECTS[key].data.count(b"\n") > 3

    # WHEN a larger file arrives
    assert _invoke(load_event("s3/sqs_digits_jsonl.json")) == {"batchItemFailures": []}

    # THEN it is handed to the model's batch backend, saying which limit: job ROUTED, nothing
    # written here
    job = aws.job(_job_id(key, OBJECTS[key].etag))
    assert job is not None
    assert (job["status"], job["backend"]) == ("ROUTED", "sagemaker")
    assert reason in job["route_reason"]
    assert aws.keys("outputs/") == []


def test_a_file_that_would_outlast_the_invocation_is_routed(aws: AwsStack) -> None:
    # GIVEN an invocation with one second left
    key = "inputs/breast_cancer/samples/patients.jsonl"
    _upload(aws, key)
    nearly_done = FakeLambdaContext(remaining_ms=1000)

    # WHEN the file arrives (directly from EventBridge, whose results carry the reason)
    results = _invoke(load_event("s3/eventbridge_object_created.json"), nearly_done)

    # THEN it is routed, saying that time is the reason, and not started here
    assert [r["status"] for r in results] == ["routed"]
    assert "left in this invocation" in results[0]["reason"]
    job = aws.job(_job_id(key, OBJECTS[key].etag))
    assert job is not None
    assert (job["status"], job["backend"]) == ("ROUTED", "sagemaker")
    assert aws.keys("outputs/") == []

    # AND through SQS the same decision is made
    other = "inputs/digits/samples/digits.npy"
    _upload(aws, other)
    assert _invoke(load_event("s3/sqs_digits_npy.json"), nearly_done) == {"batchItemFailures": []}
    routed = aws.job(_job_id(other, OBJECTS[other].etag))
    assert routed is not None
    assert routed["status"] == "ROUTED"


def test_a_tiny_file_does_not_make_the_next_mid_size_file_look_too_slow(aws: AwsStack) -> None:
    # GIVEN this execution environment has just processed a 2 KB file (all fixed costs)
    _upload(aws, "inputs/digits/samples/digits.jsonl")
    assert _invoke(load_event("s3/sqs_digits_jsonl.json")) == {"batchItemFailures": []}

    # WHEN a file of under 1 MB, a fraction of a second's work, arrives with half a second to
    # spare (the 2 KB file's bytes/second would make it look like several seconds)
    data = _digits_jsonl(5000)
    key = "inputs/digits/mid/data.jsonl"
    aws.put(key, data)
    context = FakeLambdaContext(remaining_ms=settings().time_safety_ms + 500)
    assert _invoke(_sqs_for(aws, key), context) == {"batchItemFailures": []}

    # THEN it is still processed here, not routed to a batch backend
    job = aws.job(_job_id(key, hashlib.md5(data, usedforsecurity=False).hexdigest()))
    assert job is not None
    assert job["status"] == "COMPLETED"


# --- 8. streaming ------------------------------------------------------------------------


def test_a_large_file_is_streamed_in_bounded_reads_and_written_in_parts(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, big_jsonl: bytes
) -> None:
    # GIVEN a multi-MB JSONL whose predictions file is larger than the part size
    key = "inputs/digits/big/data.jsonl"
    aws.put(key, big_jsonl)
    assert len(big_jsonl) > 5 * MiB
    streams = _spy_streams(monkeypatch)
    writers = _small_parts(monkeypatch)

    # WHEN it is processed
    assert _invoke(_sqs_for(aws, key)) == {"batchItemFailures": []}

    # THEN the object was read whole, and never with an unbounded or over-8 MiB read
    assert len(streams) == 1
    assert streams[0].total == len(big_jsonl)
    sizes = streams[0].sizes
    assert sizes
    assert all(size is not None and 0 < size <= 8 * MiB for size in sizes), set(sizes)
    # AND the output went up as a multipart upload (S3's ETag for one is "<md5>-<parts>")
    assert writers[0].counts.bytes > MIN_PART_SIZE
    head = aws.s3.head_object(Bucket=BUCKET, Key=_outputs(key)[0])
    assert "-" in head["ETag"]
    assert head["ContentLength"] == writers[0].counts.bytes
    lines = aws.get(_outputs(key)[0]).splitlines()
    assert len(lines) == 36_000
    assert json.loads(lines[-1])["id"] == "r35999"
    assert aws.json(_outputs(key)[1])["counts"] == {"records": 36_000, "predictions": 36_000, "errors": 0}
    assert aws.pending_multipart_uploads() == []


def test_a_gzipped_file_is_decompressed_as_it_is_read(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _digits_jsonl(2000)
    key = "inputs/digits/big/data.jsonl.gz"
    aws.put(key, gzip.compress(data, mtime=0))
    streams = _spy_streams(monkeypatch)

    assert _invoke(_sqs_for(aws, key)) == {"batchItemFailures": []}

    assert all(size is not None and 0 < size <= 8 * MiB for size in streams[0].sizes)
    assert aws.json(_outputs(key)[1])["counts"]["predictions"] == 2000


# --- 9. EventBridge ----------------------------------------------------------------------


def test_an_eventbridge_object_created_event_is_processed(aws: AwsStack) -> None:
    key = "inputs/breast_cancer/samples/patients.jsonl"
    obj = OBJECTS[key]
    _upload(aws, key)

    results = _invoke(load_event("s3/eventbridge_object_created.json"))

    job_id = _job_id(key, obj.etag)
    assert results == [
        {
            "status": "completed",
            "job_id": job_id,
            "reason": "",
            "counts": {"records": 4, "predictions": 4, "errors": 0},
            "output": f"s3://{BUCKET}/{_outputs(key)[0]}",
        }
    ]
    lines = aws.lines(_outputs(key)[0])
    assert [line["id"] for line in lines] == list(obj.ids)
    assert [line["prediction"]["label"] for line in lines] == _sklearn_labels(obj)
    assert [(n["job_id"], n["status"]) for n in aws.notifications()] == [(job_id, "COMPLETED")]


def test_an_eventbridge_event_inside_sqs_is_processed_too(aws: AwsStack) -> None:
    key = "inputs/breast_cancer/samples/patients.jsonl"
    obj = OBJECTS[key]
    _upload(aws, key)
    event = sqs_event(eventbridge_object_created(BUCKET, key, len(obj.data), obj.etag))

    assert _invoke(event) == {"batchItemFailures": []}
    assert [line["id"] for line in aws.lines(_outputs(key)[0])] == list(obj.ids)
