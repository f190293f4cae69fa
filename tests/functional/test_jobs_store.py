"""The jobs table's conditional updates, against moto's DynamoDB."""

from __future__ import annotations

from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job
from tests.functional.conftest import AwsStack


def test_transition_to_returns_the_job_as_it_now_stands(aws: AwsStack) -> None:
    # GIVEN a running job
    jobs = JobStore(aws.table)
    assert jobs.create(Job(job_id="j1", model="digits", status="RUNNING", owner="me", input="s3://b/k"))

    # WHEN it completes with its counts
    done = jobs.transition_to(
        "j1", "COMPLETED", owner="me", allowed_from=("RUNNING",), fields={"records": 3, "predictions": 3}
    )

    # THEN the answer is the stored job (what a notification publishes), without reading it back
    assert done is not None
    assert done == jobs.get("j1")
    assert (done.status, done.records, done.predictions, done.input) == ("COMPLETED", 3, 3, "s3://b/k")


def test_transition_to_returns_none_when_the_job_did_not_move(aws: AwsStack) -> None:
    jobs = JobStore(aws.table)
    assert jobs.create(Job(job_id="j2", model="digits", status="COMPLETED", owner="me"))

    assert jobs.transition_to("j2", "FAILED", owner="me", allowed_from=("RUNNING",)) is None
    assert jobs.transition_to("j2", "FAILED", owner="someone else") is None
    assert jobs.transition_to("missing", "FAILED") is None
    stored = jobs.get("j2")
    assert stored is not None
    assert stored.status == "COMPLETED"
