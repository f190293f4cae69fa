"""How S3 events reach s3_ingest: SQS batches (partial failures) or EventBridge events.

SQS: each message is one unit for Powertools' batch processor. A message whose processing
raises (only transient faults do, see :mod:`sinfer.jobs.ingest`) is reported in
``batchItemFailures`` and redelivered after the visibility timeout; the rest are deleted.
Test events, unparseable bodies and keys outside ``inputs/`` are logged and acknowledged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sinfer.config import Settings, settings
from sinfer.errors import FileBusyError as Busy
from sinfer.jobs.events import (
    ObjectRef,
    is_eventbridge_object_created,
    refs_from_eventbridge,
    refs_from_message_body,
)
from sinfer.jobs.ingest import IngestResult, process_object
from sinfer.observability import count, count_file, logger

_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_sqs_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def handle(record: SQSRecord) -> list[IngestResult]:
        refs: list[ObjectRef] = []
        try:
            # Read inside the try: an S3 event of the wrong shape ({"Records": "x"}) raises
            # here, and must be logged and counted as any other failure on its way to the DLQ.
            found = refs_from_message_body(record.body)
            if found is None:
                logger.info(
                    "ignored message: S3 test event or not an S3 event",
                    extra={"message_id": record.message_id},
                )
                return []
            refs = found
            return [_process(ref, context) for ref in refs]
        except Busy as exc:
            # Another invocation holds the file's lease: expected under redelivery, not an error.
            logger.info(
                "message deferred: SQS will deliver it again",
                extra={
                    "message_id": record.message_id,
                    "keys": [ref.key for ref in refs],
                    "reason": str(exc),
                },
            )
            count("MessagesDeferred")  # (not a failure: not in MessagesRetried)
            raise
        except Exception:
            # The batch processor reports a failed record only at debug level, on its own
            # logger, and the redelivered message is a bare S3 notification: without this
            # line, what sent a message to the DLQ would be recorded nowhere.
            logger.exception(
                "message failed: SQS will deliver it again (after 5 receives, to the DLQ)",
                extra={
                    "message_id": record.message_id,
                    "keys": [ref.key for ref in refs],
                    **({} if refs else {"body": record.body[:500]}),
                },
            )
            count("MessagesRetried")
            raise

    response = process_partial_response(
        event=event, record_handler=handle, processor=_processor, context=context
    )
    return dict(response)


def handle_eventbridge(event: dict[str, Any], context: LambdaContext) -> list[dict[str, Any]]:
    return [vars_of(_process(ref, context)) for ref in refs_from_eventbridge(event)]


def handle_event(event: dict[str, Any], context: LambdaContext) -> Any:
    """Entry point for s3_ingest: SQS batch or a direct EventBridge event."""
    if is_eventbridge_object_created(event):
        return handle_eventbridge(event, context)
    return handle_sqs_batch(event, context)


def _process(ref: Any, context: LambdaContext) -> IngestResult:
    result = process_object(ref, context.get_remaining_time_in_millis, config=_settings_of(context))
    count_file(result.status, result.counts)
    return result


def _settings_of(context: LambdaContext) -> Settings:
    """The settings, with the function's memory as its context gives it (the cost estimate's
    basis). The environment's AWS_LAMBDA_FUNCTION_MEMORY_SIZE says the same in Lambda, but
    where several functions share a process (``sinfer local``), it is whichever's was set last."""
    config = settings()
    try:
        memory_mb = int(context.memory_limit_in_mb)
    except (AttributeError, TypeError, ValueError):
        return config
    if memory_mb == config.lambda_memory_mb:
        return config
    return dataclasses.replace(config, lambda_memory_mb=memory_mb)


def vars_of(result: IngestResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "job_id": result.job_id,
        "reason": result.reason,
        "counts": result.counts,
        "output": result.output,
    }
