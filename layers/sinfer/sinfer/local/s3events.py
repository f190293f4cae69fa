"""S3 notifications, SQS batches and EventBridge events in the shapes AWS delivers.

Used to write the sample events in ``events/s3/`` and by tests and the embedded stack, so they
all exercise the same shapes Lambda receives: S3 keys URL-encoded the way S3 encodes them
(``quote_plus``: spaces as ``+``), SQS messages carrying the notification JSON as their body.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote_plus

REGION = "us-east-1"
ACCOUNT = "123456789012"
EPOCH = "2026-01-01T00:00:00.000Z"


def s3_record(
    bucket: str, key: str, size: int, etag: str = "", version_id: str = "", sequencer: str = ""
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag or hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
        "sequencer": sequencer or "0062E99A88DC407460",
    }
    if version_id:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": EPOCH,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE123/abcdefgh"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "sinfer-inputs",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def s3_test_event(bucket: str) -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": EPOCH,
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }


def sqs_event(
    *bodies: dict[str, Any] | str, queue: str = "sinfer-ingest", receive_count: int = 1
) -> dict[str, Any]:
    """An SQS batch as Lambda's event source mapping delivers it."""
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
        records.append(
            {
                "messageId": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{index:012d}",
                "receiptHandle": f"handle-{index}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1767225600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1767225600001",
                },
                "messageAttributes": {},
                "md5OfBody": digest,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def eventbridge_object_created(
    bucket: str, key: str, size: int, etag: str = "", version_id: str = ""
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "key": key,  # EventBridge keys are not URL-encoded
        "size": size,
        "etag": etag or hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
        "sequencer": "0062E99A88DC407460",
    }
    if version_id:
        obj["version-id"] = version_id
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }
