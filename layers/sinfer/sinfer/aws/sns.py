"""Job notifications on SNS."""

from __future__ import annotations

import json
from typing import Any

from sinfer.aws.clients import client


def publish_job(topic_arn: str, doc: dict[str, Any]) -> str | None:
    """Publish a job's public view; returns the message id (None when no topic is configured)."""
    if not topic_arn:
        return None
    status = str(doc.get("status", ""))
    response = client("sns").publish(
        TopicArn=topic_arn,
        Subject=f"sinfer job {status.lower()}"[:100],
        Message=json.dumps(doc, default=str),
        MessageAttributes={
            "status": {"DataType": "String", "StringValue": status or "UNKNOWN"},
            "model": {"DataType": "String", "StringValue": str(doc.get("model") or "-")},
        },
    )
    message_id: str = response["MessageId"]
    return message_id
