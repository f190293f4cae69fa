"""A batch file's life: quota queueing, every terminal status, retries, duplicates, the sweeper, handlers.

Bedrock is scripted with botocore's Stubber (see test_batch_bedrock.py, whose helpers write
Bedrock's outputs into moto S3 and deliver the committed sample events); end-to-end runs use
the local backend, which emulates both services (the SageMaker side drives the real container
app over HTTP). Throughout, what matters is the invariant the user relies on: every input
record comes out exactly once, as a prediction or an error, in input order, and the file is
merged and notified once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import ANY

from events import build_batch_events
from functions.batch_collect.app import lambda_handler as batch_collect
from functions.batch_submit.app import lambda_handler as batch_submit
from sinfer.batch import orchestrator
from sinfer.batch.backends import LocalBackend, Target
from sinfer.batch.handlers import ScheduleRefusedError, handle_collect, handle_submit
from sinfer.batch.orchestrator import parse_state_change
from sinfer.config import Settings
from sinfer.jobs.events import ObjectRef
from sinfer.jobs.ingest import process_object
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job, object_job_id
from tests.conftest import EVENTS, FakeLambdaContext, emf_documents, load_event
from tests.functional.conftest import AwsStack, BedrockStubs, Configure, batch_event, routed_job
from tests.functional.test_batch_bedrock import (
    KEY,
    MODEL,
    MODEL_ID,
    OUTPUT,
    ROLE,
    SUMMARY,
    answer,
    deliver,
    expect_invoke,
    expect_status,
    expect_submit,
    reviews,
    shard,
    summary_of,
)
from tests.functional.test_batch_sagemaker import assert_same_as_direct, direct, scans


@pytest.fixture
def env(aws: AwsStack, bedrock: BedrockStubs, configure: Configure) -> Settings:
    return configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE)


def answered_job(aws: AwsStack, bedrock: BedrockStubs) -> tuple[str, str]:
    """(job id, shard id) of a routed file of 120 records, submitted as one shard whose batch
    job has written its outputs (its events not yet delivered)."""
    job_id = routed_job(aws, KEY, reviews(120), MODEL)
    shard_id = f"{job_id}-s0000"
    expect_submit(bedrock, aws, shard_id)
    orchestrator.submit(job_id)
    answer(aws, shard_id)
    return job_id, shard_id


def statuses(aws: AwsStack, job_id: str) -> dict[str, str]:
    return {
        child.job_id.removeprefix(job_id + "-"): child.status
        for child in JobStore(aws.table).children(job_id)
    }


class Submissions:
    """Bedrock accepting CreateModelInvocationJob for whichever shards the dispatcher picks.

    Which queued shard goes first is not specified (they wait in a DynamoDB index), so the
    Stubber is told to expect any job name here, and a hook records what each call asked for.
    """

    def __init__(self, stubs: BedrockStubs) -> None:
        self.stubs = stubs
        self.names: list[str] = []
        self._ids = itertools.count()
        stubs.control.client.meta.events.register(
            "before-parameter-build.bedrock.CreateModelInvocationJob", self._record
        )

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        assert params["clientRequestToken"] == params["jobName"]
        self.names.append(params["jobName"])

    def accept(self, count: int = 1) -> None:
        for _ in range(count):
            arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/queued{next(self._ids):06d}"
            self.stubs.control.add_response(
                "create_model_invocation_job",
                {"jobArn": arn},
                {
                    "jobName": ANY,
                    "clientRequestToken": ANY,
                    "roleArn": ROLE,
                    "modelId": MODEL_ID,
                    "inputDataConfig": ANY,
                    "outputDataConfig": ANY,
                    "timeoutDurationInHours": 72,
                },
            )


# --- quota-aware queueing ------------------------------------------------------------------------


def _submitted_with_two_slots(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure, records: int
) -> tuple[str, Submissions]:
    """A file of ``records`` reviews submitted in job files of 100, with room for 2 jobs at a
    time (the 2 accepted); its job id, and the stubs that accept further submissions."""
    configure(
        BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BEDROCK_MAX_RECORDS=100, BATCH_MAX_CONCURRENT_JOBS=2
    )
    job_id = routed_job(aws, KEY, reviews(records), MODEL)
    submissions = Submissions(bedrock)
    submissions.accept(2)
    orchestrator.submit(job_id)
    return job_id, submissions


def test_shards_wait_for_a_free_slot_and_each_terminal_event_starts_the_next(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN 500 reviews in 5 job files of 100, and room for 2 jobs at a time for this model
    # WHEN the file is submitted
    job_id, submissions = _submitted_with_two_slots(aws, bedrock, configure, 500)

    # THEN only 2 jobs are started; 3 wait
    bedrock.assert_all_called()
    assert sorted(statuses(aws, job_id).values()) == ["QUEUED"] * 3 + ["SUBMITTED"] * 2

    # WHEN each running job completes, one at a time
    finished = 0
    while running := sorted(k for k, v in statuses(aws, job_id).items() if v == "SUBMITTED"):
        waiting = sum(1 for v in statuses(aws, job_id).values() if v == "QUEUED")
        if waiting:
            submissions.accept()
        answer(aws, f"{job_id}-{running[0]}")
        outcome = deliver(aws, f"{job_id}-{running[0]}")
        finished += 1
        bedrock.assert_all_called()
        # THEN its slot goes to the next waiting shard, and never more than 2 run at once
        now = statuses(aws, job_id)
        assert sum(1 for v in now.values() if v == "SUBMITTED") == min(2, 5 - finished)
        assert outcome["merged"] == (finished == 5)

    # THEN every shard was submitted once, under its own name, and all 500 records are merged
    assert sorted(submissions.names) == [f"{job_id}-s{i:04d}" for i in range(5)]
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(500)]
    assert len(aws.notifications()) == 1


def test_a_shard_being_submitted_holds_its_slot(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN 2 slots, both taken: one job running, and one shard another dispatcher (an event,
    # or a sweep) is submitting right now
    job_id, _ = _submitted_with_two_slots(aws, bedrock, configure, 300)
    bedrock.assert_all_called()
    running = sorted(k for k, v in statuses(aws, job_id).items() if v == "SUBMITTED")
    jobs = JobStore(aws.table)
    assert jobs.transition(f"{job_id}-{running[1]}", "SUBMITTING", allowed_from=("SUBMITTED",))

    # WHEN this dispatcher looks for free slots
    ctx = orchestrator.Context.default()
    parent = jobs.get(job_id)
    assert parent is not None
    started = orchestrator.dispatch(orchestrator.target_for(parent, ctx), ctx)

    # THEN it starts nothing: the shard being submitted counts as running (no Bedrock call is
    # stubbed, so one would fail the test too)
    assert started == 0
    assert sorted(statuses(aws, job_id).values()) == ["QUEUED", "SUBMITTED", "SUBMITTING"]


# --- terminal statuses, retries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "processed", "shard_status"),
    [
        ("partially_completed", 80, "COMPLETED"),
        ("stopped", 80, "FAILED"),
        ("failed", 0, "FAILED"),
        ("expired", 0, "FAILED"),
    ],
)
def test_records_a_job_did_not_reach_are_retried_as_a_new_job(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings, status: str, processed: int, shard_status: str
) -> None:
    # GIVEN a job of 200 reviews that ends <status> having processed only the first `processed`
    job_id = routed_job(aws, KEY, reviews(200), MODEL)
    first, retry = f"{job_id}-s0000", f"{job_id}-s0000-r1"
    expect_submit(bedrock, aws, first)
    orchestrator.submit(job_id)
    if processed:
        answer(aws, first, missing=range(processed, 200))
    expect_submit(bedrock, aws, retry)

    # WHEN its state change arrives
    outcome = deliver(aws, first, status, "the job ended early")

    # THEN the unprocessed records (at least 100: a Bedrock job again) went to job -r1, by recordId
    bedrock.assert_all_called()
    assert outcome["collected"] is True
    assert outcome["merged"] is False
    assert shard(aws, first).status == shard_status
    again = shard(aws, retry)
    assert (again.status, again.records, again.extra["attempt"]) == ("SUBMITTED", 200 - processed, 2)
    sent = aws.lines(f"batch/{job_id}/s0000-r1/input.jsonl")
    assert [int(line["recordId"]) for line in sent] == list(range(processed, 200))

    # WHEN the retry completes
    answer(aws, retry)
    assert deliver(aws, retry)["merged"] is True

    # THEN the file is whole, in order
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(200)]
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 200, "predictions": 200, "errors": 0}
    assert summary["retries"] == 1


def test_a_completed_job_with_error_lines_retries_what_may_succeed_then_reports_the_rest(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job of 150 reviews that ends Completed, yet: 5 records refused (400), 5 failed on
    # Bedrock's side (500), 2 throttled (429), and 3 with no output line at all
    reads: list[str] = []
    read_outcomes = orchestrator._read_outcomes

    def counted(shard: Job, target: Any) -> Any:
        reads.append(shard.job_id.rsplit("-", 1)[-1] if "-r" in shard.job_id else "s0000")
        return read_outcomes(shard, target)

    monkeypatch.setattr(orchestrator, "_read_outcomes", counted)
    job_id = routed_job(aws, KEY, reviews(150), MODEL)
    expect_submit(bedrock, aws, f"{job_id}-s0000")
    orchestrator.submit(job_id)
    refused, faulted, throttled, missing = (10, 20, 30, 40, 50), (11, 21, 31, 41, 51), (12, 22), (13, 23, 33)
    errors = {i: 400 for i in refused} | {i: 500 for i in faulted} | {i: 429 for i in throttled}
    answer(aws, f"{job_id}-s0000", errors=errors, missing=missing)
    # The 10 retryable records are under Bedrock's job minimum: they are retried through
    # InvokeModel (attempt 2), where three fail again, and once more (attempt 3, the last).
    stubborn = (11, 21, 31)
    for i in sorted(faulted + throttled + missing):
        if i in stubborn:
            bedrock.runtime.add_client_error("invoke_model", "InternalServerException", http_status_code=500)
        else:
            expect_invoke(bedrock, i)
    for _ in stubborn:
        bedrock.runtime.add_client_error("invoke_model", "InternalServerException", http_status_code=500)

    # WHEN the Completed event arrives
    outcome = deliver(aws, f"{job_id}-s0000")

    # THEN the lines were trusted over the status: retries ran, and the file is merged
    bedrock.assert_all_called()
    assert outcome["merged"] is True
    assert statuses(aws, job_id) == {"s0000": "COMPLETED", "s0000-r1": "COMPLETED", "s0000-r2": "COMPLETED"}
    lines = aws.lines(OUTPUT)
    assert len(lines) == 150
    for i, line in enumerate(lines):
        if i in refused:
            assert line["error"]["code"] == "bedrock_400", line
        elif i in stubborn:
            assert line["error"]["code"] == "bedrock_500", line
            assert "InternalServerException" in line["error"]["message"]
        else:
            assert line == {"id": f"r{i:05d}", "prediction": summary_of(i)}
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 150, "predictions": 142, "errors": 8}
    assert summary["retries"] == 2
    # AND each attempt's backend output was read once, when it was collected: the merge reads
    # the outcomes collection saved beside each attempt's input
    assert sorted(reads) == ["r1", "r2", "s0000"]
    assert {k.rsplit("/", 2)[-2] for k in aws.keys("batch/") if k.endswith("/outcomes.jsonl")} == {
        "s0000",
        "s0000-r1",
        "s0000-r2",
    }


def test_records_still_missing_after_the_last_attempt_are_reported_as_not_processed(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN two attempts per record, and a job that fails, then a retry that expires
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BATCH_MAX_ATTEMPTS=2)
    job_id = routed_job(aws, KEY, reviews(150), MODEL)
    expect_submit(bedrock, aws, f"{job_id}-s0000")
    orchestrator.submit(job_id)
    expect_submit(bedrock, aws, f"{job_id}-s0000-r1")
    deliver(aws, f"{job_id}-s0000", "failed", "Access denied to the input file")

    # WHEN the retry expires too
    outcome = deliver(aws, f"{job_id}-s0000-r1", "expired", "The job did not start within 72 hours")

    # THEN no third job: every record is an error line saying why it was not processed
    bedrock.assert_all_called()
    assert outcome["merged"] is True
    lines = aws.lines(OUTPUT)
    assert [line["id"] for line in lines] == [f"r{i:05d}" for i in range(150)]
    assert {line["error"]["code"] for line in lines} == {"not_processed"}
    assert "Expired" in lines[0]["error"]["message"]
    assert "did not start within 72 hours" in lines[0]["error"]["message"]
    assert aws.json(SUMMARY)["counts"] == {"records": 150, "predictions": 0, "errors": 150}
    [notice] = aws.notifications()
    assert notice["counts"] == {"records": 150, "predictions": 0, "errors": 150}


# --- duplicates and order ---------------------------------------------------------------------------


def test_duplicate_and_late_events_collect_merge_and_notify_once(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings
) -> None:
    # GIVEN a submitted file whose job has completed
    job_id, shard_id = answered_job(aws, bedrock)

    # WHEN the Completed event arrives, then again, then a late InProgress and a stray Failed
    first = deliver(aws, shard_id)
    collected_at = shard(aws, shard_id).extra["collected_at"]
    again = deliver(aws, shard_id)
    late = deliver(aws, shard_id, "in_progress")
    stray = deliver(aws, shard_id, "failed", "not this job's fate")

    # THEN only the first one collected and merged; the others changed nothing
    assert (first["collected"], first["merged"]) == (True, True)
    assert (again["collected"], again["merged"]) == (False, False)
    assert late["note"] == "not terminal"
    assert (stray["collected"], stray["merged"]) == (False, False)
    assert shard(aws, shard_id).status == "COMPLETED"
    assert shard(aws, shard_id).extra["collected_at"] == collected_at
    assert len(aws.lines(OUTPUT)) == 120
    assert [n["job_id"] for n in aws.notifications()] == [job_id]


# --- the sweeper -------------------------------------------------------------------------------------


def test_a_missed_bedrock_event_is_recovered_by_the_sweeper(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings
) -> None:
    # GIVEN a submitted file whose job is still running
    job_id = routed_job(aws, KEY, reviews(120), MODEL)
    shard_id = f"{job_id}-s0000"
    expect_submit(bedrock, aws, shard_id)
    orchestrator.submit(job_id)
    expect_status(bedrock, aws, shard_id, "InProgress")

    # WHEN the sweeper runs, it leaves a running job alone
    found = handle_collect(load_event("batch/sweep.json"))
    assert (found["polled"], found["collected"], found["merged"]) == (1, 0, 0)

    # WHEN the job completes, its event is lost, and the sweeper runs again
    answer(aws, shard_id)
    expect_status(bedrock, aws, shard_id, "Completed")
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN GetModelInvocationJob told it, and it collected and merged the file, once
    bedrock.assert_all_called()
    assert (found["collected"], found["merged"]) == (1, 1)
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(120)]
    assert handle_collect(load_event("batch/sweep.json"))["polled"] == 0  # no Bedrock call
    assert len(aws.notifications()) == 1


def test_the_sweeper_requeues_a_submission_that_died_midway(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure
) -> None:
    # GIVEN two shards left SUBMITTING: one by a dispatcher that died an hour ago, one just now
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BEDROCK_MAX_RECORDS=120)
    job_id = routed_job(aws, KEY, reviews(240), MODEL)
    bedrock.control.add_client_error(
        "create_model_invocation_job", "ThrottlingException", http_status_code=429
    )
    orchestrator.submit(job_id)
    jobs = JobStore(aws.table)
    stale, fresh = f"{job_id}-s0000", f"{job_id}-s0001"
    assert jobs.transition(
        stale, "SUBMITTING", allowed_from=("QUEUED",), fields={"updated_at": "2026-01-01T00:00:00.000000Z"}
    )
    assert jobs.transition(fresh, "SUBMITTING", allowed_from=("QUEUED",))

    # WHEN the sweeper runs
    expect_submit(bedrock, aws, stale)  # the same name and token: Bedrock would not start it twice
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN the stale one was put back in the queue and submitted; the fresh one is left alone
    bedrock.assert_all_called()
    assert found["requeued"] == 1
    assert statuses(aws, job_id) == {"s0000": "SUBMITTED", "s0001": "SUBMITTING"}


LONG_AGO = "2026-01-01T00:00:00.000000Z"


def test_the_sweeper_redoes_a_collection_that_died_midway(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings
) -> None:
    # GIVEN a completed job whose collector died while reading its outputs, an hour ago
    _, shard_id = answered_job(aws, bedrock)
    jobs = JobStore(aws.table)
    assert jobs.transition(
        shard_id, "COLLECTING", allowed_from=("SUBMITTED",), fields={"updated_at": LONG_AGO}
    )
    # (EventBridge's retry of the same event finds the shard taken, and changes nothing)
    assert deliver(aws, shard_id)["collected"] is False

    # WHEN the sweeper runs
    expect_status(bedrock, aws, shard_id, "Completed")
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN it put the shard back, asked Bedrock, collected it and merged the file
    bedrock.assert_all_called()
    assert (found["requeued"], found["collected"], found["merged"]) == (1, 1, 1)
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(120)]
    assert len(aws.notifications()) == 1


def _submitted_with_its_remainder_dying(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Callable[..., None], list[str]]:
    """102 reviews submitted (a job of 100 and a remainder of 2), the submitter dying at the
    Lambda timeout during the remainder's InvokeModel calls, after the job was started. Returns
    the file's job id, the dying stand-in for realtime_bedrock (patched only during the
    submission) and the shards it was asked to run."""
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN=ROLE, BEDROCK_MAX_RECORDS=100)
    job_id = routed_job(aws, KEY, reviews(102), MODEL)
    expect_submit(bedrock, aws, f"{job_id}-s0000")
    runs: list[str] = []

    def timed_out(shard: Job, *_: Any, **__: Any) -> None:
        runs.append(shard.job_id)
        raise TimeoutError("Task timed out after 900.00 seconds")

    with monkeypatch.context() as patch:
        patch.setattr(orchestrator, "realtime_bedrock", timed_out)
        with pytest.raises(TimeoutError):
            orchestrator.submit(job_id)
    return job_id, timed_out, runs


def test_the_sweeper_reruns_a_real_time_remainder_only_once_its_run_has_died(
    aws: AwsStack, bedrock: BedrockStubs, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 102 reviews (a job of 100 and a remainder of 2) whose submitter dies during the
    # remainder's InvokeModel calls, after the job was started
    job_id, _, _ = _submitted_with_its_remainder_dying(aws, bedrock, configure, monkeypatch)
    bedrock.assert_all_called()
    assert statuses(aws, job_id) == {"s0000": "SUBMITTED", "s0001": "SUBMITTED"}

    # WHEN the sweeper runs while such a run could still be going on
    expect_status(bedrock, aws, f"{job_id}-s0000", "InProgress")
    handle_collect(load_event("batch/sweep.json"))

    # THEN it leaves the remainder alone (no InvokeModel call was scripted)
    bedrock.assert_all_called()
    assert shard(aws, f"{job_id}-s0001").status == "SUBMITTED"

    # WHEN it runs again, the remainder untouched (and its run's hold expired) for longer than
    # any Lambda runs
    JobStore(aws.table).transition(
        f"{job_id}-s0001", "SUBMITTED", fields={"updated_at": LONG_AGO, "lease_until": 1}
    )
    expect_status(bedrock, aws, f"{job_id}-s0000", "InProgress")
    for i in (100, 101):
        expect_invoke(bedrock, i)
    handle_collect(load_event("batch/sweep.json"))

    # THEN the remainder is run again, and the job's completion merges everything
    bedrock.assert_all_called()
    assert shard(aws, f"{job_id}-s0001").status == "COMPLETED"
    answer(aws, f"{job_id}-s0000")
    assert deliver(aws, f"{job_id}-s0000")["merged"] is True
    assert [line["prediction"] for line in aws.lines(OUTPUT)] == [summary_of(i) for i in range(102)]


def test_a_real_time_remainder_whose_runs_keep_dying_is_given_up_and_reported(
    aws: AwsStack,
    bedrock: BedrockStubs,
    configure: Configure,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN 102 reviews (a job of 100 and a remainder of 2), and records that InvokeModel
    # answers too slowly for any run to finish within a Lambda's time
    job_id, timed_out, runs = _submitted_with_its_remainder_dying(aws, bedrock, configure, monkeypatch)
    monkeypatch.setattr(orchestrator, "realtime_bedrock", timed_out)  # every later run too
    remainder = f"{job_id}-s0001"

    # WHEN the sweeper finds it dead again and again (untouched, its hold expired)
    for _ in range(3):
        JobStore(aws.table).transition(
            remainder, "SUBMITTED", fields={"updated_at": LONG_AGO, "lease_until": 1}
        )
        expect_status(bedrock, aws, f"{job_id}-s0000", "InProgress")
        # (through the handler, which flushes the SweepFailures each dying run counts)
        batch_collect(load_event("batch/sweep.json"), FakeLambdaContext())

    # THEN it ran three times in all, then was given up: FAILED, saying why, and not retried
    # (attempts remained, but a retry would run the same records the same way)
    bedrock.assert_all_called()
    assert runs == [remainder] * 3
    given_up = shard(aws, remainder)
    assert given_up.status == "FAILED"
    assert "gave up after 3 runs of its records through InvokeModel" in given_up.error
    assert given_up.extra["retry"] == ""
    assert not aws.keys(f"batch/{job_id}/s0001-r1/")
    # AND an operator sees it: logged at WARNING with its reason, and counted
    [failed] = [r for r in caplog.records if r.getMessage() == "shard failed"]
    assert failed.levelname == "WARNING"
    assert (failed.shard, failed.parent) == (remainder, job_id)  # type: ignore[attr-defined]
    assert "gave up after 3 runs" in failed.error  # type: ignore[attr-defined]
    assert sum(_metric(capsys, "ShardsFailed")) == 1

    # WHEN the job completes, THEN its records are merged and the remainder's are reported
    answer(aws, f"{job_id}-s0000")
    assert batch_collect(_state_change(aws, f"{job_id}-s0000"), FakeLambdaContext())["merged"] is True
    lines = aws.lines(OUTPUT)
    assert [line["prediction"] for line in lines[:100]] == [summary_of(i) for i in range(100)]
    assert [line["error"]["code"] for line in lines[100:]] == ["not_processed"] * 2
    assert "gave up after 3 runs" in lines[100]["error"]["message"]
    # AND the file is counted as s3_ingest counts one: completed, with its lines
    out = capsys.readouterr().out
    assert (_metric(out, "FilesCompleted"), _metric(out, "Predictions"), _metric(out, "RecordErrors")) == (
        [1.0],
        [100.0],
        [2.0],
    )


def _state_change(aws: AwsStack, shard_id: str) -> dict[str, Any]:
    """The Bedrock state-change event for a shard's completed job (what ``deliver`` hands on)."""
    return batch_event("bedrock_completed", shard_id, str(shard(aws, shard_id).extra["backend_job"]))


def _metric(source: pytest.CaptureFixture[str] | str, name: str) -> list[float]:
    """A metric's values in the EMF lines written (to stdout) since the last read."""
    out = source if isinstance(source, str) else source.readouterr().out
    values: list[float] = []
    for doc in emf_documents(out):
        value = doc.get(name, [])
        values.extend(value if isinstance(value, list) else [value])
    return values


def test_a_batch_file_that_fails_is_logged_and_counted(
    aws: AwsStack, configure: Configure, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file routed to Bedrock on a stack deployed without Bedrock's service role
    configure(BATCH_BACKEND="bedrock", BEDROCK_ROLE_ARN="")
    job_id = routed_job(aws, KEY, reviews(5), MODEL)

    # WHEN batch_submit runs it
    assert batch_submit({"job_id": job_id}, FakeLambdaContext())["status"] == "FAILED"

    # THEN the owner's FAILED summary is matched by what an operator sees: an ERROR naming the
    # job, the input and the reason (the deployment's fault), and the file counted as failed
    [failed] = [r for r in caplog.records if r.getMessage() == "batch file failed"]
    assert failed.levelname == "ERROR"
    assert failed.job_id == job_id  # type: ignore[attr-defined]
    assert failed.input.endswith(KEY)  # type: ignore[attr-defined]
    assert failed.error.startswith("not_configured:")  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert (_metric(out, "FilesFailed"), _metric(out, "FilesCompleted")) == ([1.0], [])
    assert _metric(out, "FilesFailedByDeployment") == [1.0]  # (what BatchFailuresAlarm reads)


def test_a_batch_file_that_fails_for_its_own_fault_is_reported_not_alarmed(
    aws: AwsStack, configure: Configure, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a routed file deleted before its submission (the owner's doing, not the stack's)
    configure(BATCH_BACKEND="local")
    job_id = routed_job(aws, KEY, reviews(5), MODEL)
    aws.s3.delete_object(Bucket=aws.bucket, Key=KEY)

    # WHEN batch_submit runs it
    assert batch_submit({"job_id": job_id}, FakeLambdaContext())["status"] == "FAILED"

    # THEN it is a WARNING and a failed file on the dashboard, not what the alarm reads
    [failed] = [r for r in caplog.records if r.getMessage() == "batch file failed"]
    assert failed.levelname == "WARNING"
    assert failed.error.startswith("input_not_found:")  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert (_metric(out, "FilesFailed"), _metric(out, "FilesFailedByDeployment")) == ([1.0], [])


def test_the_sweeper_submits_a_routed_file_nobody_submitted(aws: AwsStack, configure: Configure) -> None:
    # GIVEN a large upload that s3_ingest routed to batch, with no batch_submit to ask
    configure(BATCH_BACKEND="local", MAX_INLINE_BYTES=1_000)
    key = "inputs/claude_summarize/late.jsonl"
    aws.put(key, reviews(30))
    routed = process_object(ObjectRef(aws.bucket, key), lambda: 900_000)
    assert routed.status == "routed"
    assert (aws.job(routed.job_id) or {})["status"] == "ROUTED"

    # WHEN the sweeper runs
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN it submitted the file, and (the local emulator being quick) it is done
    assert found["submitted"] == 1
    done = aws.job(routed.job_id)
    assert done is not None
    assert done["status"] == "COMPLETED"
    assert done["counts"] == {"records": 30, "predictions": 30, "errors": 0}
    assert len(aws.lines("outputs/claude_summarize/late.jsonl.predictions.jsonl")) == 30


def test_a_routed_file_that_cannot_be_submitted_fails_alone_and_the_sweep_goes_on(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN three routed files: one deleted since, one for a model the store no longer has,
    # and a good one
    configure(BATCH_BACKEND="local")
    gone = routed_job(aws, "inputs/claude_summarize/gone.jsonl", reviews(5), MODEL)
    aws.s3.delete_object(Bucket=aws.bucket, Key="inputs/claude_summarize/gone.jsonl")
    unknown = routed_job(aws, "inputs/retired/old.jsonl", reviews(5), "retired")
    good = routed_job(aws, KEY, reviews(5), MODEL)

    # WHEN the sweeper runs
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN the two that cannot run fail, saying why, and the good one is done all the same
    assert found["submitted"] == 3
    failed = {job_id: aws.job(job_id) or {} for job_id in (gone, unknown)}
    assert failed[gone]["status"] == "FAILED"
    assert "does not exist" in failed[gone]["error"]
    assert failed[unknown]["status"] == "FAILED"
    assert "retired" in failed[unknown]["error"]
    assert (aws.job(good) or {})["status"] == "COMPLETED"
    assert sorted(n["status"] for n in aws.notifications()) == ["COMPLETED", "FAILED", "FAILED"]


def test_a_file_whose_model_left_the_store_does_not_stop_the_sweep(
    aws: AwsStack, bedrock: BedrockStubs, env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file in flight for a model since removed from the store ...
    jobs = JobStore(aws.table)
    orphan = routed_job(aws, "inputs/retired/old.jsonl", reviews(5), "retired")
    assert jobs.transition(orphan, "SUBMITTED", allowed_from=("ROUTED",), fields={"shards": 1})
    assert jobs.create(
        Job(
            job_id=f"{orphan}-s0000",
            model="retired",
            status="SUBMITTED",
            input=f"s3://{aws.bucket}/batch/{orphan}/s0000/input.jsonl",
            output=f"s3://{aws.bucket}/batch/{orphan}/s0000/output/",
            backend="bedrock",
            extra={"parent": orphan, "lane": "bedrock:retired", "shard": 0, "attempt": 1},
        )
    )
    # ... and a good file whose job completed, its event lost
    job_id, shard_id = answered_job(aws, bedrock)
    expect_status(bedrock, aws, shard_id, "Completed")

    # WHEN the sweeper runs (through batch_collect's handler, which flushes its metrics)
    capsys.readouterr()
    found = batch_collect(load_event("batch/sweep.json"), FakeLambdaContext())

    # THEN it reports the file it could not reconcile (its shard, then the file) and still
    # finished the good one
    bedrock.assert_all_called()
    assert found["failed"] == 2
    assert (found["collected"], found["merged"]) == (1, 1)
    assert (aws.job(job_id) or {})["status"] == "COMPLETED"
    assert (aws.job(orphan) or {})["status"] == "SUBMITTED"
    # AND the failures are counted, where BatchSweepFailuresAlarm looks (namespace, dimension)
    [emf] = emf_documents(capsys.readouterr().out)
    assert emf["SweepFailures"] in (2.0, [2.0])
    assert emf["service"] == "sinfer"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "sinfer"


# --- end to end through the local backend ------------------------------------------------------------


def test_an_onnx_upload_runs_end_to_end_through_the_emulated_batch_transform(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN an upload of 40 digit scans (and two bad records), too large for Lambda here
    configure(BATCH_BACKEND="local", MAX_INLINE_BYTES=1_000, SAGEMAKER_MAX_RECORDS=15)
    body = scans(40, bad=True)
    key = "inputs/digits/big/scans.jsonl"
    aws.put(key, body)

    # WHEN s3_ingest routes it and batch_submit submits it
    routed = process_object(ObjectRef(aws.bucket, key), lambda: 900_000)
    assert routed.status == "routed"
    result = handle_submit({"job_id": routed.job_id})

    # THEN 3 transform jobs ran on the real container app, and the results are the model's own
    assert result["shards"] == 3
    merged = aws.lines("outputs/digits/big/scans.jsonl.predictions.jsonl")
    assert_same_as_direct(merged, direct(body))
    summary = aws.json("outputs/digits/big/scans.jsonl.summary.json")
    assert summary["counts"] == {"records": 42, "predictions": 40, "errors": 2}
    assert summary["backend"] == "local (sagemaker emulator)"
    job = aws.job(routed.job_id)
    assert job is not None
    assert job["status"] == "COMPLETED"
    assert job["backend"] == "sagemaker"
    [notice] = aws.notifications()
    assert notice["status"] == "COMPLETED"


def test_the_emulated_batch_transform_takes_bodies_up_to_the_jobs_max_payload(
    aws: AwsStack, configure: Configure
) -> None:
    line = json.dumps([0.0] * 64).encode() + b"\n"
    target = Target("sagemaker", "digits", "1", "sagemaker")
    events: list[dict[str, Any]] = []

    def run(config: Settings, shard_id: str, body: bytes) -> str:
        aws.put(f"batch/shards/{shard_id}.jsonl", body)
        job = Job(
            job_id=shard_id,
            model="digits",
            status="SUBMITTED",
            input=f"s3://{aws.bucket}/batch/shards/{shard_id}.jsonl",
            output=f"s3://{aws.bucket}/batch/outputs/",
        )
        LocalBackend(config, sink=events.append).submit(job, target)
        return str(events[-1]["detail"]["TransformJobStatus"])

    # GIVEN the emulator has served the model under the default MaxPayloadInMB (6)
    assert run(configure(BATCH_BACKEND="local"), "j-s0000", line) == "Completed"

    # WHEN MaxPayloadInMB is raised to 7 and a shard of 6.5 MiB runs, posted whole
    count = int(6.5 * 1024 * 1024) // len(line)
    status = run(configure(SAGEMAKER_MAX_PAYLOAD_MB=7), "j-s0001", line * count)

    # THEN its container took the body, as a real one given MaxPayloadInMB=7 does (it was a 413)
    assert status == "Completed", events[-1]["detail"]
    answers = aws.lines("batch/outputs/j-s0001.jsonl.out")
    assert len(answers) == count
    assert all(set(answer) == {"prediction"} for answer in answers)

    # AND a shard whose last line has no newline, of exactly the limit without one: its
    # requests are sized as sent (with the newline added), so none is over the limit
    limit = 1024 * 1024
    head = line * (limit // len(line) - 1)
    last = line.rstrip(b"\n")
    last = last[:-1] + b" " * (limit - len(head) - len(last)) + b"]"
    assert len(head + last) == limit
    status = run(configure(SAGEMAKER_MAX_PAYLOAD_MB=1), "j-s0002", head + last)
    assert status == "Completed", events[-1]["detail"]
    assert len(aws.lines("batch/outputs/j-s0002.jsonl.out")) == limit // len(line)


def test_a_bedrock_entry_upload_runs_end_to_end_through_the_emulator(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN an upload of 250 reviews and two bad lines for the Bedrock entry
    configure(BATCH_BACKEND="local", BEDROCK_MAX_RECORDS=100)
    body = reviews(125) + b"not json\n" + b'{"id": "blank", "text": ""}\n' + reviews(125, start=125)
    aws.put(KEY, body)

    # WHEN s3_ingest routes it (a foundation model never runs in Lambda) and batch_submit runs
    routed = process_object(ObjectRef(aws.bucket, KEY), lambda: 900_000)
    assert routed.status == "routed"
    result = orchestrator.submit(routed.job_id)

    # THEN two emulated jobs of 100 and an InvokeModel remainder of 50 cover every record
    assert result["shards"] == 3
    assert (aws.job(f"{routed.job_id}-s0002") or {})["counts"]["records"] == 50
    lines = aws.lines(OUTPUT)
    assert len(lines) == 252
    good = [line for line in lines if "prediction" in line]
    assert [line["id"] for line in good] == [f"r{i:05d}" for i in range(250)]
    for i, line in enumerate(good):
        assert line["prediction"].startswith(f"[emulated anthropic] Review {i}:")
    assert [line["error"]["code"] for line in lines if "error" in line] == ["invalid_json", "invalid_input"]
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 252, "predictions": 250, "errors": 2}
    assert summary["records_match"] is True
    assert summary["backend"] == "local (bedrock emulator)"
    assert summary["tokens"]["input"] > 0
    assert summary["cost_estimate"]["usd"] > 0


# --- handlers and the sample events --------------------------------------------------------------------


def test_handle_submit_takes_a_job_id_and_explains_anything_else(aws: AwsStack, configure: Configure) -> None:
    configure(BATCH_BACKEND="local")
    job_id = routed_job(aws, KEY, reviews(3), MODEL)

    assert handle_submit({"job_id": job_id})["status"] == "SUBMITTED"
    assert (aws.job(job_id) or {})["status"] == "COMPLETED"
    assert handle_submit({"job_id": job_id}) == {
        "job_id": job_id,
        "status": "COMPLETED",
        "note": "already submitted",
    }
    assert handle_submit({"job_id": "s3-none"})["status"] == "unknown job"
    assert "expected" in handle_submit({"Records": []})["error"]


def test_a_scheduled_run_makes_each_object_a_job_once(
    aws: AwsStack, configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN two files under the scheduled prefix (and a folder marker)
    configure(BATCH_BACKEND="local")
    event = load_event("batch/scheduled_run.json")
    assert event == {"action": "scheduled-run", "prefix": "scheduled/", "model": "digits"}
    first, second = scans(4), scans(6)
    aws.put("scheduled/2026-01-01/", b"")
    aws.put("scheduled/2026-01-01/a.jsonl", first)
    aws.put("scheduled/2026-01-01/b.jsonl", second)

    # WHEN the schedule fires
    result = handle_submit(event)

    # THEN each object became one batch job, its results beside the other outputs
    assert len(result["jobs"]) == 2
    for name, body in (("a", first), ("b", second)):
        merged = aws.lines(f"outputs/scheduled/2026-01-01/{name}.jsonl.predictions.jsonl")
        assert_same_as_direct(merged, direct(body))
        head = aws.s3.head_object(Bucket=aws.bucket, Key=f"scheduled/2026-01-01/{name}.jsonl")
        assert (
            object_job_id(aws.bucket, f"scheduled/2026-01-01/{name}.jsonl", head["ETag"].strip('"'))
            in result["jobs"]
        )
    assert len(aws.notifications()) == 2

    # WHEN it fires again with nothing new
    again = handle_submit(event)

    # THEN nothing is run twice
    assert again["jobs"] == []
    assert aws.notifications() == []
    # A schedule that cannot run fails its invocation (so Lambda's error alarm sees it, and the
    # event lands in the batch DLQ), logged at ERROR with what it asked for
    with pytest.raises(ScheduleRefusedError, match="refusing to read outputs/"):
        handle_submit({**event, "prefix": "outputs/"})
    [failed] = [r for r in caplog.records if r.getMessage() == "invocation failed"]
    assert failed.levelname == "ERROR"
    assert failed.event == {**event, "prefix": "outputs/"}  # type: ignore[attr-defined]
    with pytest.raises(ScheduleRefusedError, match="needs 'prefix' and 'model'"):
        handle_submit({**event, "model": ""})
    # a prefix named like a model: its results (outputs/<key>) would be that model's uploads'
    aws.put("breast_cancer/2026/a.jsonl", first)
    with pytest.raises(
        ScheduleRefusedError, match="must not start with a model's name \\('breast_cancer'\\)"
    ):
        handle_submit({**event, "prefix": "breast_cancer/2026/"})
    # ... and a prefix that lists such objects skips them, saying which
    partial = handle_submit({**event, "prefix": "breast"})
    assert (partial["jobs"], partial["skipped"]) == ([], ["breast_cancer/2026/a.jsonl"])
    assert aws.keys("outputs/breast_cancer/") == []


def test_handle_collect_ignores_what_is_not_its_business(aws: AwsStack, configure: Configure) -> None:
    configure(BATCH_BACKEND="local")
    # An S3 event (not a batch job state change)
    assert handle_collect(load_event("s3/eventbridge_object_created.json")) == {"ignored": True}
    # A job sinfer does not own (the samples name shards of files that do not exist)
    for path in sorted((EVENTS / "batch").glob("*_completed.json")):
        outcome = handle_collect(json.loads(path.read_text()))
        assert outcome["ignored"].startswith("unknown job"), path.name
    # The sweeper on an empty table
    assert handle_collect(load_event("batch/sweep.json")) == {
        "polled": 0,
        "collected": 0,
        "requeued": 0,
        "merged": 0,
        "submitted": 0,
        "failed": 0,
    }
    assert aws.notifications() == []


def test_the_committed_batch_events_are_what_the_builder_writes() -> None:
    assert build_batch_events.stale(build_batch_events.build()) == []


@pytest.mark.parametrize(
    ("name", "service", "status", "terminal"),
    [
        ("bedrock_completed", "bedrock", "Completed", True),
        ("bedrock_partially_completed", "bedrock", "PartiallyCompleted", True),
        ("bedrock_failed", "bedrock", "Failed", True),
        ("bedrock_stopped", "bedrock", "Stopped", True),
        ("bedrock_expired", "bedrock", "Expired", True),
        ("bedrock_in_progress", "bedrock", "InProgress", False),
        ("sagemaker_completed", "sagemaker", "Completed", True),
        ("sagemaker_failed", "sagemaker", "Failed", True),
        ("sagemaker_stopped", "sagemaker", "Stopped", True),
    ],
)
def test_each_sample_state_change_reads_as_its_service_and_status(
    name: str, service: str, status: str, terminal: bool
) -> None:
    event = load_event(f"batch/{name}.json")
    change = parse_state_change(event)
    assert change is not None
    assert (change.service, change.status, change.terminal) == (service, status, terminal)
    assert change.name.startswith("s3-")
    assert change.name.endswith("-s0000")
    if status == "Failed":
        assert change.message
    if service == "sagemaker":  # SageMaker's times are epoch milliseconds
        assert event["detail"]["CreationTime"] > 10**12


def test_a_routed_version_overwritten_before_submission_yields_to_the_newer_one(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN a routed file whose key was uploaded again before batch_submit ran
    configure(BATCH_BACKEND="local")
    old = routed_job(aws, KEY, reviews(5), MODEL)
    newer = routed_job(aws, KEY, reviews(7), MODEL)

    # WHEN both are submitted, the older one last (events may arrive in any order)
    handle_submit({"job_id": newer})
    result = handle_submit({"job_id": old})

    # THEN the older version fails as superseded, naming the version that replaced it, and the
    # output holds the newer version's records only
    assert result["status"] == "FAILED"
    failed = aws.job(old) or {}
    assert failed["status"] == "FAILED"
    assert failed["error"].startswith("superseded: version ")
    current = aws.s3.head_object(Bucket=aws.bucket, Key=KEY)
    assert str(current.get("VersionId") or current["ETag"].strip('"')) in failed["error"]
    assert (aws.job(newer) or {})["status"] == "COMPLETED"
    assert len(aws.lines(OUTPUT)) == 7


def test_a_version_uploaded_while_the_batch_runs_keeps_the_older_merge_from_publishing(
    aws: AwsStack, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a routed file whose key is uploaded again while its shards are being merged
    configure(BATCH_BACKEND="local")
    old = routed_job(aws, KEY, reviews(5), MODEL)
    read_index = orchestrator.read_index
    uploaded: list[str] = []

    def upload_during_merge(lines: Any) -> Any:
        if not uploaded:
            uploaded.append(str(aws.put(KEY, reviews(7)).get("VersionId") or ""))
        return read_index(lines)

    monkeypatch.setattr(orchestrator, "read_index", upload_during_merge)

    # WHEN the older version's batch finishes and merges
    handle_submit({"job_id": old})

    # THEN it fails as superseded and publishes nothing: the output and summary keys belong to
    # the newer version's job
    assert uploaded
    failed = aws.job(old) or {}
    assert failed["status"] == "FAILED"
    assert failed["error"].startswith("superseded: version ")
    assert OUTPUT not in aws.keys("outputs/")
    assert SUMMARY not in aws.keys("outputs/")


def test_a_file_being_submitted_is_left_alone_by_a_second_submitter(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN a routed file that one batch_submit invocation is sharding right now (its lease is live)
    configure(BATCH_BACKEND="local")
    job_id = routed_job(aws, KEY, reviews(5), MODEL)
    assert JobStore(aws.table).lease(job_id, "ROUTED", 900, "submit_attempts") == 1

    # WHEN the sweeper (or a duplicate event) submits it too
    second = handle_submit({"job_id": job_id})
    found = handle_collect(load_event("batch/sweep.json"))

    # THEN neither shards it again: it stays with the first submitter
    assert second["note"] == "being submitted by another invocation"
    assert found["submitted"] == 1
    job = aws.job(job_id) or {}
    assert job["status"] == "ROUTED"
    assert JobStore(aws.table).children(job_id) == []


def test_a_file_no_submission_can_finish_fails_after_the_last_attempt(
    aws: AwsStack, configure: Configure
) -> None:
    # GIVEN a routed file whose submissions all died midway (each lease taken, then run out)
    configure(BATCH_BACKEND="local")
    job_id = routed_job(aws, KEY, reviews(5), MODEL)
    jobs = JobStore(aws.table)
    for attempt in range(1, orchestrator.MAX_SUBMIT_ATTEMPTS + 1):
        assert jobs.lease(job_id, "ROUTED", -1, "submit_attempts") == attempt

    # WHEN the sweeper re-drives it once more
    handle_collect(load_event("batch/sweep.json"))

    # THEN it fails, saying why and what to do, and the owner is told once
    job = aws.job(job_id) or {}
    assert job["status"] == "FAILED"
    assert job["error"].startswith(
        f"submit_failed: gave up after {orchestrator.MAX_SUBMIT_ATTEMPTS} attempts"
    )
    assert "smaller files" in job["error"]
    assert [n["status"] for n in aws.notifications()] == ["FAILED"]
    # ... with a FAILED summary where the results would be, as for any file that fails
    summary = aws.json(SUMMARY)
    assert (summary["status"], summary["error"]) == ("FAILED", job["error"])


def _routed_with_a_broken_writer(
    aws: AwsStack, configure: Configure, monkeypatch: pytest.MonkeyPatch, message: str
) -> str:
    """A routed file (local backend) whose shard writer raises RuntimeError(message)."""
    configure(BATCH_BACKEND="local")
    job_id = routed_job(aws, KEY, reviews(5), MODEL)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(message)

    monkeypatch.setattr(orchestrator, "write_shards", broken)
    return job_id


def test_a_submission_that_keeps_failing_is_retried_at_once_and_fails_naming_the_error(
    aws: AwsStack, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a routed file whose sharding raises something that is not the file's known fault
    job_id = _routed_with_a_broken_writer(aws, configure, monkeypatch, "the shard writer broke")

    # WHEN every attempt is made (the invocation fails each time, so Lambda retries it)
    for _ in range(orchestrator.MAX_SUBMIT_ATTEMPTS):
        with pytest.raises(RuntimeError):
            handle_submit({"job_id": job_id})
        record = JobStore(aws.table).get(job_id)
        # THEN the lease is released for the retry, and the error kept on the job
        assert record is not None
        assert record.status == "ROUTED"
        assert not record.lease_until
        assert record.extra["submit_error"] == "RuntimeError: the shard writer broke"
    outcome = handle_submit({"job_id": job_id})

    # THEN the last attempt fails the file with that error, not a timeout it never had
    assert outcome["status"] == "FAILED"
    job = aws.job(job_id) or {}
    assert job["status"] == "FAILED"
    assert job["error"] == (
        f"submit_failed: gave up after {orchestrator.MAX_SUBMIT_ATTEMPTS} attempts to prepare the "
        "file's batch shards; the last failed with RuntimeError: the shard writer broke"
    )
    assert [n["status"] for n in aws.notifications()] == ["FAILED"]


def test_an_error_of_an_earlier_attempt_is_not_reported_as_the_last(
    aws: AwsStack, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a file whose first submission raised, and whose next two died at the timeout
    working = orchestrator.write_shards
    job_id = _routed_with_a_broken_writer(aws, configure, monkeypatch, "a throttle on attempt 1")
    with pytest.raises(RuntimeError):
        handle_submit({"job_id": job_id})
    monkeypatch.setattr(orchestrator, "write_shards", working)
    jobs = JobStore(aws.table)
    for attempt in (2, 3):
        assert jobs.lease(job_id, "ROUTED", -1, "submit_attempts") == attempt

    # WHEN the attempts have run out
    handle_submit({"job_id": job_id})

    # THEN the file fails for the timeouts, with their advice, not for attempt 1's error
    job = aws.job(job_id) or {}
    assert job["status"] == "FAILED"
    assert "none finished within" in job["error"]
    assert "smaller files" in job["error"]
    assert "throttle" not in job["error"]
