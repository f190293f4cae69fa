"""Fixtures for functional tests that need AWS: the data bucket, jobs table and topic in moto.

Only opt-in fixtures live here: tests that do not ask for ``aws`` (test_api.py, test_events.py,
test_invoke_cli.py) see exactly the environment they saw before. The jobs table is created from
template.yaml's own JobsTable (keys and indexes), so tests never drift from what is deployed.

Bedrock has no moto implementation: the ``bedrock`` fixture puts real boto3 clients wrapped in
botocore's ``Stubber`` (which checks every call's parameters against the real API model) where
:func:`sinfer.aws.clients.client` finds them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sinfer.aws.clients import reset_clients, set_client
from sinfer.config import Settings, reset_settings, settings
from sinfer.inference.registry import reset_default_registry
from sinfer.jobs import routing
from tests.conftest import ROOT

BUCKET = "sinfer-data"
TABLE = "sinfer-jobs"
TOPIC = "sinfer-notifications"
REGION = "us-east-1"


@dataclass
class AwsStack:
    """Handles on the moto resources, and helpers that read them back as tests need."""

    s3: Any
    dynamodb: Any
    sqs: Any
    bucket: str
    table: str
    topic_arn: str
    queue_url: str

    def put(self, key: str, body: bytes, content_type: str | None = None) -> dict[str, Any]:
        """Upload ``body`` and return the object's head (ContentLength, ETag, VersionId?)."""
        extra = {"ContentType": content_type} if content_type else {}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        head: dict[str, Any] = self.s3.head_object(Bucket=self.bucket, Key=key)
        return head

    def get(self, key: str) -> bytes:
        data: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def lines(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.get(key).decode("utf-8").splitlines()]

    def json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def keys(self, prefix: str = "") -> list[str]:
        found = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(item["Key"] for item in found)

    def job(self, job_id: str) -> dict[str, Any] | None:
        from sinfer.jobs.store import JobStore

        job = JobStore(self.table).get(job_id)
        return None if job is None else {**job.public(), "lease_until": job.lease_until, "owner": job.owner}

    def notifications(self) -> list[dict[str, Any]]:
        """Every SNS message published so far (drained from the subscribed queue)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                envelope = json.loads(message["Body"])
                messages.append(json.loads(envelope["Message"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def pending_multipart_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return uploads


def jobs_table_args(name: str) -> dict[str, Any]:
    """CreateTable arguments from template.yaml's JobsTable, so the moto table never drifts from it.

    The keys and indexes (``status-lane``, ``parent-job``) are what the code queries; settings
    moto ignores or the API names differently (SSE, PITR, TTL, tags) are left out.
    """
    from sinfer.local.template import Template

    template = Template.load(ROOT / "template.yaml")
    props: dict[str, Any] = template.resolver.resolve(template.resources["JobsTable"]["Properties"])
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return args


def _reset() -> None:
    reset_settings()
    reset_clients()
    reset_default_registry()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, model_store: Path) -> Iterator[AwsStack]:
    """moto with the data bucket, jobs table and notification topic; env pointed at them.

    The topic has an SQS queue subscribed so tests can read what was published. Settings,
    cached clients and the model registry are reset on the way in and out, and the routing
    throughput learned from earlier files is forgotten, so tests do not depend on their order.
    """
    monkeypatch.setattr(routing, "_bytes_per_second", {})
    monkeypatch.setattr(routing, "_bytes_per_record", {})
    with mock_aws():
        _reset()
        import boto3

        s3 = boto3.client("s3", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(**jobs_table_args(TABLE))
        topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
        queue_url = sqs.create_queue(QueueName="sinfer-notifications-test")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        monkeypatch.setenv("DATA_BUCKET", BUCKET)
        monkeypatch.setenv("JOBS_TABLE", TABLE)
        monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic_arn)
        monkeypatch.setenv("MODEL_STORE", str(model_store))
        _reset()
        try:
            yield AwsStack(s3, dynamodb, sqs, BUCKET, TABLE, topic_arn, queue_url)
        finally:
            _reset()


Configure = Callable[..., Settings]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Set environment variables (``configure(BATCH_MAX_ATTEMPTS=2)``) and re-read the settings."""

    def apply(**env: str | int) -> Settings:
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        reset_settings()
        return settings()

    return apply


@dataclass
class BedrockStubs:
    """Stubbers on the ``bedrock`` (batch jobs) and ``bedrock-runtime`` (InvokeModel) clients."""

    control: Stubber
    runtime: Stubber

    def assert_all_called(self) -> None:
        self.control.assert_no_pending_responses()
        self.runtime.assert_no_pending_responses()


@pytest.fixture
def bedrock(aws: AwsStack) -> Iterator[BedrockStubs]:
    """Real Bedrock clients behind Stubbers, injected where sinfer's client factory finds them."""
    import boto3

    control = boto3.client("bedrock", region_name=REGION)
    runtime = boto3.client("bedrock-runtime", region_name=REGION)
    stubs = BedrockStubs(Stubber(control), Stubber(runtime))
    set_client("bedrock", control)
    set_client("bedrock-runtime", runtime)
    with stubs.control, stubs.runtime:
        yield stubs


def routed_job(aws: AwsStack, key: str, body: bytes, model: str) -> str:
    """Upload ``body`` and record it as a ROUTED batch file, as s3_ingest leaves a large upload."""
    from sinfer.jobs.store import JobStore
    from sinfer.jobs.types import Job, object_job_id

    head = aws.put(key, body)
    version = str(head.get("VersionId") or head["ETag"]).strip('"')
    job = Job(
        job_id=object_job_id(aws.bucket, key, version),
        model=model,
        status="ROUTED",
        input=f"s3://{aws.bucket}/{key}",
        input_version=version,
        extra={"lane": "files", "route_reason": "test"},
    )
    assert JobStore(aws.table).create(job)
    return job.job_id


def batch_event(name: str, job_name: str, job_arn: str = "") -> dict[str, Any]:
    """A committed sample from events/batch/ (``bedrock_completed``…), retargeted at one shard's job."""
    from tests.conftest import load_event

    event = load_event(f"batch/{name}.json")
    detail = event["detail"]
    if event["source"] == "aws.bedrock":
        arn = job_arn or detail["batchJobArn"]
        detail.update(batchJobName=job_name, batchJobArn=arn)
    else:
        arn = detail["TransformJobArn"].rsplit("/", 1)[0] + "/" + job_name
        detail.update(TransformJobName=job_name, TransformJobArn=arn)
    event["resources"] = [arn]
    event["id"] = f"{event['id']}-{job_name}"
    return event
