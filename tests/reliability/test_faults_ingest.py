"""s3_ingest under injected faults: after each, every record is in the output exactly once.

Faults are the services' own errors, raised by botocore from sinfer's clients (see conftest):
S3 throttling and 5xx on every call a file makes, a body that breaks mid-read, a multipart
part that fails, DynamoDB throttling and lost conditional-write races, SNS failing to publish,
the invocation running out of time, and a hard kill in the middle of a file. The pattern is
always: deliver, inject, check the state left behind is one a redelivery can finish from
(nothing half-written, the claim released or leased), redeliver as SQS would, and check the end
state: one predictions file whose lines are the input's records in order with unique ids, a
summary and a job record that agree with it, and one notification.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import IncompleteReadError, ReadTimeoutError

from functions.s3_ingest.app import lambda_handler
from sinfer.jobs import ingest
from sinfer.jobs.types import object_job_id
from sinfer.local.s3events import s3_notification, s3_record, sqs_event
from sinfer.records import writer as writer_module
from tests.conftest import FakeLambdaContext, emf_documents
from tests.functional.conftest import BUCKET, AwsStack, Configure
from tests.reliability.conftest import (
    Killed,
    assert_accounted,
    break_reads,
    failed_ids,
    inject,
    kill_switch,
    outputs,
    sqs_for,
)

KEY = "inputs/digits/faults/records.jsonl"


def _records(count: int, prefix: str = "r") -> bytes:
    rows = (",".join(str((i * 7 + j) % 17) for j in range(64)) for i in range(count))
    return "".join(f'{{"id": "{prefix}{i}", "instance": [{row}]}}\n' for i, row in enumerate(rows)).encode()


def _ids(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _deliver(event: dict[str, Any], context: FakeLambdaContext | None = None) -> dict[str, Any]:
    response: dict[str, Any] = lambda_handler(event, context or FakeLambdaContext())
    return response


def _attempts(aws: AwsStack, job_id: str) -> int:
    from sinfer.jobs.store import JobStore

    job = JobStore(aws.table, dynamodb=aws.dynamodb).get(job_id)
    assert job is not None
    return job.attempts


def _job_id(aws: AwsStack, key: str) -> str:
    head = aws.s3.head_object(Bucket=BUCKET, Key=key)
    return object_job_id(BUCKET, key, str(head.get("VersionId") or head["ETag"]).strip('"'))


def _expire_lease(aws: AwsStack, job_id: str) -> None:
    """What time does to a dead worker's claim (the lease is the Lambda's maximum duration)."""
    aws.dynamodb.update_item(
        TableName=aws.table,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )


def assert_done_once(
    aws: AwsStack, key: str, ids: list[str], earlier: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The end state every fault must reach: one output, every record once, consistent records.

    ``earlier`` are notifications a test already drained: at most one COMPLETED notification
    per job, unless the test expects an at-least-once repeat and passes the first one here.
    """
    predictions_key, summary_key = outputs(key)
    assert [k for k in aws.keys("outputs/") if k.startswith(predictions_key.rsplit(".", 2)[0])] == sorted(
        [predictions_key, summary_key]
    )
    lines = aws.lines(predictions_key)
    assert_accounted(lines, ids)
    assert len({line["id"] for line in lines}) == len(ids)  # no record twice
    assert all("prediction" in line for line in lines)
    counts = {"records": len(ids), "predictions": len(ids), "errors": 0}
    summary = aws.json(summary_key)
    assert (summary["status"], summary["counts"]) == ("COMPLETED", counts)
    job = aws.job(_job_id(aws, key))
    assert job is not None
    assert (job["status"], job["counts"]) == ("COMPLETED", counts)
    assert not job["lease_until"]
    notes = [*(earlier or []), *aws.notifications()]
    assert [(n["job_id"], n["status"]) for n in notes] == [(job["job_id"], "COMPLETED")] * (
        1 + len(earlier or [])
    )
    assert all(n["counts"] == counts for n in notes)
    assert aws.pending_multipart_uploads() == []
    return job


PART = 16 * 1024


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 KiB multipart parts (moto's and the writer's minimum lowered): small files go up in parts."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    monkeypatch.setattr(writer_module, "MIN_PART_SIZE", 1024)
    monkeypatch.setattr(  # (ingest's own arguments, background=True, kept)
        ingest,
        "S3JsonlWriter",
        lambda bucket, key, **kwargs: writer_module.S3JsonlWriter(bucket, key, part_size=PART, **kwargs),
    )


# --- 1. a service fails once: the message is retried and the file completes once --------------------

ONE_FAULT = [
    # (service, operation, error code, HTTP status, skip: calls let through first,
    #  whether the results were written before the failure)
    ("s3", "HeadObject", "InternalError", 500, 0, False),
    ("s3", "GetObject", "SlowDown", 503, 0, False),
    ("s3", "PutObject", "SlowDown", 503, 0, False),  # the predictions file
    ("s3", "PutObject", "InternalError", 500, 1, True),  # the summary, after the predictions
    ("dynamodb", "PutItem", "ProvisionedThroughputExceededException", 400, 0, False),  # the claim
    ("dynamodb", "UpdateItem", "ThrottlingException", 400, 0, True),  # RUNNING → COMPLETED
    ("dynamodb", "UpdateItem", "InternalServerError", 500, 1, True),  # marking the notification sent
    ("sns", "Publish", "InternalError", 500, 0, True),
    ("sns", "Publish", "Throttling", 400, 0, True),
]


@pytest.mark.parametrize(
    ("service", "operation", "code", "status", "skip", "written"),
    ONE_FAULT,
    ids=[f"{s}-{o}-{c}-after-{k}" for s, o, c, _, k, _ in ONE_FAULT],
)
def test_one_failed_call_is_retried_and_the_file_completes_exactly_once(
    aws: AwsStack, service: str, operation: str, code: str, status: int, skip: int, written: bool
) -> None:
    # GIVEN a 50-record file, and the service failing this one call (botocore's retries exhausted)
    aws.put(KEY, _records(50))
    fault = inject(service, operation, code, status, skip=skip)
    event = sqs_for(aws, KEY)

    # WHEN it is delivered, THEN the message goes back to the queue
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    assert fault.raised == 1

    # ... leaving a state a redelivery can finish from: no claim held, nothing half-written
    job = aws.job(_job_id(aws, KEY))
    if job is not None:
        assert job["status"] in ("QUEUED", "COMPLETED"), job
        assert not job["lease_until"]
    assert aws.pending_multipart_uploads() == []
    # (a redelivery rewrites the same keys; until then a reader may see results whose job
    # still says QUEUED, never a job that says COMPLETED without its results)
    assert (outputs(KEY)[0] in aws.keys("outputs/")) is written
    sent = aws.notifications()
    # only a failure to *record* a sent notification lets one out before the retry
    assert len(sent) == (1 if (service, skip) == ("dynamodb", 1) else 0)

    if service == "sns":  # the work is done and recorded; only the notification is owed
        assert job is not None
        assert job["status"] == "COMPLETED"

    # WHEN SQS redelivers it
    assert _deliver(event) == {"batchItemFailures": []}

    # THEN the file is done exactly once; notifications are at least once: the one whose
    # sending could not be recorded is sent again
    assert_done_once(aws, KEY, _ids(50), earlier=sent)
    if service == "sns":  # ... by a redelivery that published without running the file again
        assert _attempts(aws, _job_id(aws, KEY)) == 1


def test_dynamodb_down_for_the_whole_finish_leaves_a_lease_that_a_later_delivery_takes_over(
    aws: AwsStack,
) -> None:
    # GIVEN DynamoDB refuses both the COMPLETED transition and the release of the claim
    aws.put(KEY, _records(20))
    inject("dynamodb", "UpdateItem", "InternalServerError", 500, times=2)
    event = sqs_for(aws, KEY)

    # WHEN it is delivered, THEN it is retried, and the claim stays with the failed invocation
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    job_id = _job_id(aws, KEY)
    job = aws.job(job_id)
    assert job is not None
    assert job["status"] == "RUNNING"
    assert job["lease_until"]

    # ... so a redelivery inside the lease is refused as busy, touching nothing
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    assert aws.notifications() == []

    # WHEN the lease runs out, THEN the next delivery takes over and finishes once
    _expire_lease(aws, job_id)
    assert _deliver(event) == {"batchItemFailures": []}
    assert assert_done_once(aws, KEY, _ids(20))["job_id"] == job_id


# --- 2. a read breaks, a part fails ------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        lambda: IncompleteReadError(actual_bytes=10, expected_bytes=20),
        lambda: ReadTimeoutError(endpoint_url=f"https://{BUCKET}.s3.amazonaws.com/"),
    ],
    ids=["incomplete-read", "read-timeout"],
)
def test_a_body_that_breaks_mid_read_is_retried_from_the_start(
    aws: AwsStack, small_parts: None, error: Any
) -> None:
    # GIVEN a file of more than one 1 MiB read, whose output is going up in parts when the
    # connection breaks during the second read
    body = _records(6000)
    aws.put(KEY, body)
    assert len(body) > 1024 * 1024
    uploads = inject("s3", "UploadPart", "unused", 0, times=0)  # counts calls, fails none
    broken = break_reads(after=1024 * 1024, error=error)
    event = sqs_for(aws, KEY)

    # WHEN it is delivered, THEN it is retried, the part upload was aborted, nothing is left
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    assert broken[0].read_bytes == 1024 * 1024
    assert uploads.calls > 0  # parts had been uploaded
    assert aws.pending_multipart_uploads() == []
    assert aws.keys("outputs/") == []
    job = aws.job(_job_id(aws, KEY))
    assert job is not None
    assert job["status"] == "QUEUED"

    # WHEN redelivered, THEN the whole file is read again and written once
    assert _deliver(event) == {"batchItemFailures": []}
    assert_done_once(aws, KEY, _ids(6000))


@pytest.mark.parametrize(
    ("operation", "skip"),
    [("CreateMultipartUpload", 0), ("UploadPart", 2), ("CompleteMultipartUpload", 0)],
)
def test_a_multipart_write_failing_part_way_is_aborted_and_retried(
    aws: AwsStack, small_parts: None, operation: str, skip: int
) -> None:
    aws.put(KEY, _records(300))
    fault = inject("s3", operation, "SlowDown", 503, skip=skip)
    event = sqs_for(aws, KEY)

    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    assert fault.raised == 1
    assert aws.pending_multipart_uploads() == []  # aborted: no parts left to pay for
    assert aws.keys("outputs/") == []

    assert _deliver(event) == {"batchItemFailures": []}
    assert "-" in aws.s3.head_object(Bucket=BUCKET, Key=outputs(KEY)[0])["ETag"]  # really multipart
    assert_done_once(aws, KEY, _ids(300))


# --- 3. two workers, one job -----------------------------------------------------------------------


def test_two_workers_claiming_at_once_one_wins_the_other_retries(aws: AwsStack) -> None:
    # GIVEN another invocation creates the job between our read of it and our claim (the
    # conditional PutItem then fails with ConditionalCheckFailedException)
    aws.put(KEY, _records(10))
    job_id = _job_id(aws, KEY)
    from sinfer.aws.clients import client
    from sinfer.jobs.store import JobStore
    from sinfer.jobs.types import Job

    other = JobStore(aws.table, dynamodb=aws.dynamodb)  # the other worker: its own client
    raced: list[Any] = []

    def other_worker_claims_first(**_: Any) -> None:
        if not raced:
            raced.append(other.claim(Job(job_id=job_id, model="digits", status="RUNNING"), "other", 900))

    client("dynamodb").meta.events.register("before-call.dynamodb.PutItem", other_worker_claims_first)
    event = sqs_for(aws, KEY)

    # WHEN our delivery claims, THEN it loses cleanly: busy, retried later, nothing written
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    assert raced[0].outcome == "claimed"
    job = aws.job(job_id)
    assert job is not None
    assert (job["status"], job["owner"]) == ("RUNNING", "other")
    assert aws.keys("outputs/") == []

    # AND when the winner died (its lease ran out), the retry takes over and finishes once
    _expire_lease(aws, job_id)
    assert _deliver(event) == {"batchItemFailures": []}
    assert_done_once(aws, KEY, _ids(10))


def test_a_worker_whose_lease_expired_mid_file_cannot_finish_over_its_successor(
    aws: AwsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN worker A is so slow that its lease runs out mid-file, and worker B (a redelivery)
    # takes the job over and finishes it while A is still reading
    body = _records(200)
    aws.put(KEY, body)
    event = sqs_for(aws, KEY)
    job_id = _job_id(aws, KEY)
    from sinfer.aws.clients import client
    from sinfer.jobs.events import refs_from_message_body

    ref = refs_from_message_body(event["Records"][0]["body"])[0]  # type: ignore[index]
    b_result: list[ingest.IngestResult] = []
    opened: list[Any] = []

    class SlowBody:
        def __init__(self, body: Any) -> None:
            self._body = body

        def read(self, size: int = -1) -> bytes:
            if not b_result:  # A stalls before its first byte; B (another environment) runs
                _expire_lease(aws, job_id)
                b_result.append(ingest.process_object(ref, lambda: 29_000))
            data: bytes = self._body.read(size)
            return data

    def a_is_slow(parsed: dict[str, Any], **_: Any) -> None:
        opened.append(parsed)
        if len(opened) == 1:
            parsed["Body"] = SlowBody(parsed["Body"])

    client("s3").meta.events.register("after-call.s3.GetObject", a_is_slow)

    # WHEN A finishes after B
    a_response = _deliver(event)

    # THEN both acknowledge, the job is B's, and there is one output and one notification:
    # A's conditional COMPLETED (owner = A) failed, so A did not notify a second time
    assert [r.status for r in b_result] == ["completed"]
    assert a_response == {"batchItemFailures": []}
    assert_done_once(aws, KEY, _ids(200))
    assert _attempts(aws, job_id) == 2
    # AND A counts itself a duplicate, not a second completed file with B's 200 predictions
    [metrics] = emf_documents(capsys.readouterr().out)
    assert metrics["FilesDuplicate"] in (1.0, [1.0])
    assert "FilesCompleted" not in metrics
    assert "Predictions" not in metrics


# --- 4. time runs out, or the environment dies ---------------------------------------------------------


class DwindlingContext(FakeLambdaContext):
    """An invocation with plenty of time at the start whose clock then jumps to nearly done."""

    def __init__(self, after_calls: int) -> None:
        super().__init__()
        self._calls = 0
        self._after = after_calls

    def get_remaining_time_in_millis(self) -> int:
        self._calls += 1
        return 29_000 if self._calls <= self._after else 1_000


def test_running_out_of_time_mid_file_hands_it_to_batch_which_writes_it_once(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN a file routing lets Lambda start, in an invocation whose time then runs short
    config = configure(BATCH_BACKEND="local", SAGEMAKER_MAX_RECORDS=2000)
    count = ingest.TIME_CHECK_EVERY * 2 + 100
    aws.put(KEY, _records(count))
    event = sqs_for(aws, KEY)

    # WHEN it is delivered, THEN it stops at the first time check and is routed, leaving nothing
    assert _deliver(event, DwindlingContext(after_calls=1)) == {"batchItemFailures": []}
    job_id = _job_id(aws, KEY)
    job = aws.job(job_id)
    assert job is not None
    assert (job["status"], job["route_reason"]) == ("ROUTED", "ran out of time in Lambda")
    assert aws.keys("outputs/") == []
    assert aws.pending_multipart_uploads() == []
    assert aws.notifications() == []

    # WHEN the batch path runs it (the sweeper submits ROUTED files; here, directly)
    from sinfer.batch import orchestrator
    from sinfer.batch.backends import LocalBackend
    from sinfer.inference.registry import default_registry
    from sinfer.jobs.store import JobStore

    ctx = orchestrator.Context(config, JobStore.of(config), default_registry(), LocalBackend(config))
    orchestrator.submit(job_id, ctx)

    # THEN the same output key holds every record once, in order: Lambda's partial work is gone
    assert_done_once(aws, KEY, _ids(count))
    assert aws.json(outputs(KEY)[1])["shards"] == 3


def test_a_hard_kill_mid_file_is_taken_over_after_the_lease_and_written_once(
    aws: AwsStack, small_parts: None
) -> None:
    # GIVEN the execution environment dies mid-file, as its third output part goes up: no
    # except block, no cleanup runs after that
    aws.put(KEY, _records(300))
    event = sqs_for(aws, KEY)
    switch = kill_switch("s3", "dynamodb", "sns")
    parts: list[int] = []

    def die_on_the_third_part(**_: Any) -> None:
        parts.append(1)
        if len(parts) == 3:
            switch.tripped = True
            raise Killed("timeout")

    from sinfer.aws.clients import client

    client("s3").meta.events.register("before-call.s3.UploadPart", die_on_the_third_part)
    with pytest.raises(Killed):
        _deliver(event)
    switch.tripped = False  # a new execution environment

    # THEN the dead invocation still holds its claim, with parts uploaded and never completed
    job_id = _job_id(aws, KEY)
    job = aws.job(job_id)
    assert job is not None
    assert job["status"] == "RUNNING"
    assert job["lease_until"]
    assert len(aws.pending_multipart_uploads()) == 1  # the bucket's lifecycle rule aborts these
    assert outputs(KEY)[0] not in aws.keys("outputs/")

    # WHEN SQS redelivers inside the lease, THEN it is busy; after the lease, it takes over
    assert failed_ids(_deliver(event)) == [event["Records"][0]["messageId"]]
    _expire_lease(aws, job_id)
    assert _deliver(event) == {"batchItemFailures": []}

    # THEN one output with every record once; the dead attempt's parts never became an object
    for upload in aws.pending_multipart_uploads():
        aws.s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    assert_done_once(aws, KEY, _ids(300))
    assert _attempts(aws, job_id) == 2


# --- 5. duplicate and out-of-order events ------------------------------------------------------------


def test_duplicate_notifications_in_one_batch_and_one_notification_are_processed_once(aws: AwsStack) -> None:
    aws.put(KEY, _records(30))
    head = aws.s3.head_object(Bucket=BUCKET, Key=KEY)
    record = s3_record(BUCKET, KEY, head["ContentLength"], head["ETag"].strip('"'))
    event = sqs_event(s3_notification(record, record), s3_notification(record), s3_notification(record))

    assert _deliver(event) == {"batchItemFailures": []}
    assert _deliver(event) == {"batchItemFailures": []}  # and the whole batch again

    assert_done_once(aws, KEY, _ids(30))


def test_versions_delivered_out_of_order_leave_the_latest_versions_results(aws: AwsStack) -> None:
    # GIVEN two versions of one key, whose notifications arrive newest first
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = aws.put(KEY, _records(3, "old"))["VersionId"]
    v2 = aws.put(KEY, _records(5, "new"))["VersionId"]

    assert _deliver(sqs_for(aws, KEY, v2)) == {"batchItemFailures": []}
    assert _deliver(sqs_for(aws, KEY, v1)) == {"batchItemFailures": []}

    # THEN the output is the latest version's, and agrees with its job; the stale event changed nothing
    assert assert_done_once(aws, KEY, _ids(5, "new"))["job_id"] == object_job_id(BUCKET, KEY, v2)
    assert aws.job(object_job_id(BUCKET, KEY, v1)) is None


def test_a_version_uploaded_while_the_older_one_runs_keeps_the_older_from_publishing(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a versioned key whose next version is uploaded while the first is being predicted
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = aws.put(KEY, _records(3, "old"))["VersionId"]
    process_records = ingest.process_records
    newer: list[str] = []

    def upload_while_running(*args: Any, **kwargs: Any) -> Any:
        result = process_records(*args, **kwargs)
        if not newer:
            newer.append(aws.put(KEY, _records(5, "new"))["VersionId"])
        return result

    monkeypatch.setattr(ingest, "process_records", upload_while_running)

    # WHEN the first version's run finishes after the second was uploaded
    assert _deliver(sqs_for(aws, KEY, v1)) == {"batchItemFailures": []}

    # THEN it publishes nothing (no output, no summary) and its job fails as superseded
    older = aws.job(object_job_id(BUCKET, KEY, v1)) or {}
    assert older["status"] == "FAILED"
    assert older["error"].startswith(f"superseded: version {v1} ")
    assert newer[0] in older["error"]
    assert aws.keys("outputs/") == []
    assert [(n["job_id"], n["status"]) for n in aws.notifications()] == [(older["job_id"], "FAILED")]
    # ... counted as superseded, not as a failure (nor its 3 unpublished predictions)
    [metrics] = emf_documents(capsys.readouterr().out)
    assert metrics["FilesSuperseded"] in (1.0, [1.0])
    assert "FilesFailed" not in metrics
    assert "Predictions" not in metrics

    # AND the newer version's own event writes the results
    assert _deliver(sqs_for(aws, KEY, newer[0])) == {"batchItemFailures": []}
    assert assert_done_once(aws, KEY, _ids(5, "new"))["job_id"] == object_job_id(BUCKET, KEY, newer[0])


def test_an_event_for_an_object_deleted_before_delivery_is_acknowledged(aws: AwsStack) -> None:
    aws.put(KEY, _records(3))
    event = sqs_for(aws, KEY)
    aws.s3.delete_object(Bucket=BUCKET, Key=KEY)

    assert _deliver(event) == {"batchItemFailures": []}
    assert aws.keys("outputs/") == []
    assert aws.dynamodb.scan(TableName=aws.table)["Count"] == 0
