"""S3 object references from whatever delivered them.

S3 notifications reach s3_ingest inside SQS messages (the body is the S3 event JSON, or an
``s3:TestEvent`` when the notification is first configured), or as EventBridge "Object Created"
events (directly, or inside SQS). Keys in S3 notifications are URL-encoded (spaces as ``+``);
EventBridge keys are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version to process."""

    bucket: str
    key: str
    version_id: str = ""  # set when the bucket is versioned
    etag: str = ""
    size: int = -1
    event_name: str = ""


def is_test_event(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("Event") == "s3:TestEvent"


def refs_from_s3_notification(doc: dict[str, Any]) -> list[ObjectRef]:
    refs = []
    for record in doc.get("Records", []) or []:
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = obj.get("key")
        if not bucket or key is None:
            continue
        refs.append(
            ObjectRef(
                bucket=bucket,
                key=unquote_plus(key),
                version_id=str(obj.get("versionId") or ""),
                etag=str(obj.get("eTag") or ""),
                size=int(obj.get("size", -1)),
                event_name=str(record.get("eventName", "")),
            )
        )
    return refs


def refs_from_eventbridge(doc: dict[str, Any]) -> list[ObjectRef]:
    detail = doc.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    obj = detail.get("object") or {}
    if not bucket or "key" not in obj:
        return []
    return [
        ObjectRef(
            bucket=bucket,
            key=str(obj["key"]),
            version_id=str(obj.get("version-id") or ""),
            etag=str(obj.get("etag") or ""),
            size=int(obj.get("size", -1)),
            event_name=str(doc.get("detail-type", "")),
        )
    ]


def is_eventbridge_object_created(doc: Any) -> bool:
    return (
        isinstance(doc, dict) and doc.get("source") == "aws.s3" and doc.get("detail-type") == "Object Created"
    )


def refs_from_message_body(body: str) -> list[ObjectRef] | None:
    """Object refs in one SQS message body; None for a test event or a body that is neither."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not an S3 event, however it fails to parse
        return None
    if is_test_event(doc):
        return None
    if is_eventbridge_object_created(doc):
        return refs_from_eventbridge(doc)
    if isinstance(doc, dict) and "Records" in doc:
        return refs_from_s3_notification(doc)
    return None
