"""Hand a ROUTED file to batch_submit: an asynchronous Lambda invoke in AWS, a queue locally.

s3_ingest must not wait for sharding (a multi-GB file takes minutes), so it only asks for the
submission and returns. Without ``BATCH_SUBMIT_FUNCTION`` (and outside the embedded stack)
the job simply stays ROUTED; batch_collect's scheduled sweeper submits ROUTED files too, so
nothing is lost either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sinfer.aws.clients import client
from sinfer.config import settings
from sinfer.observability import logger

_local_submitter: Callable[[str], None] | None = None


def set_local_submitter(submitter: Callable[[str], None] | None) -> None:
    global _local_submitter
    _local_submitter = submitter


def request_submit(job_id: str) -> str:
    """How the submission was requested: "local", "lambda", or "sweeper" (left for it)."""
    if _local_submitter is not None:
        _local_submitter(job_id)
        return "local"
    function = settings().batch_submit_function
    if function:
        try:
            client("lambda").invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps({"job_id": job_id}).encode()
            )
        except Exception:  # the job is ROUTED already: the sweeper submits it if this invoke is lost
            logger.exception(
                "could not invoke batch_submit; the sweeper will submit", extra={"job_id": job_id}
            )
            return "sweeper"
        return "lambda"
    logger.info("no batch submitter configured: the sweeper will submit", extra={"job_id": job_id})
    return "sweeper"
