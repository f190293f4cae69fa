"""Fixtures for functional tests that need AWS: the data bucket, jobs table and topic in moto.

Only opt-in fixtures live here: tests that do not ask for ``aws`` (test_api.py, test_events.py,
test_invoke_cli.py) see exactly the environment they saw before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from sinfer.aws.clients import reset_clients
from sinfer.config import reset_settings
from sinfer.inference.registry import reset_default_registry
from sinfer.jobs import routing

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
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
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
