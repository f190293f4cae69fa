"""Entry points of batch_submit and batch_collect (their app.py files call these)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sinfer.aws import s3
from sinfer.batch import orchestrator
from sinfer.config import settings
from sinfer.inference.registry import default_registry
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job, object_job_id
from sinfer.observability import count, logger

_Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _logs_failure(handler: _Handler) -> _Handler:
    """An invocation that fails is logged at ERROR with what it was asked, as JSON: the Lambda
    runtime itself prints only a plain-text traceback, naming no job. Lambda then retries the
    event twice and keeps it in the batch DLQ (BatchDLQDepthAlarm)."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(event)
        except Exception:
            logger.exception("invocation failed", extra={"event": _about(event)})
            raise

    return wrapper


def _about(event: dict[str, Any]) -> dict[str, Any]:
    """What an event asked for, in a few fields (never its whole body)."""
    about: dict[str, Any] = {
        k: event[k] for k in ("job_id", "action", "prefix", "model", "source", "detail-type") if k in event
    }
    detail = event.get("detail")
    if isinstance(detail, dict):
        for key in ("jobArn", "jobName", "status", "TransformJobName", "TransformJobStatus"):
            if key in detail:
                about[key] = detail[key]
    return about


@_logs_failure
def handle_submit(event: dict[str, Any]) -> dict[str, Any]:
    """``{"job_id"}`` from s3_ingest / POST /jobs, or a scheduled run ``{"action": "scheduled-run", ...}``."""
    if event.get("action") == "scheduled-run":
        return scheduled_run(str(event.get("prefix", "")), str(event.get("model", "")))
    job_id = event.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        logger.warning("ignored event: not a batch submission", extra={"event": _about(event)})
        return {"error": 'expected {"job_id": ...} or {"action": "scheduled-run", "prefix", "model"}'}
    return orchestrator.submit(job_id)


@_logs_failure
def handle_collect(event: dict[str, Any]) -> dict[str, Any]:
    """Bedrock/SageMaker state changes, or the sweeper's schedule."""
    if event.get("source") in ("aws.bedrock", "aws.sagemaker"):
        return orchestrator.handle_state_change(event)
    if event.get("action") == "sweep" or event.get("detail-type") == "Scheduled Event":
        found = orchestrator.sweep()
        if found.get("failed"):  # (each logged at ERROR; the metric lets an alarm see a repeat)
            count("SweepFailures", found["failed"])
        return found
    logger.info(
        "ignored event", extra={"source": event.get("source"), "detail_type": event.get("detail-type")}
    )
    return {"ignored": True}


class ScheduleRefusedError(ValueError):
    """A scheduled run whose prefix or model cannot be run as configured."""


def scheduled_run(prefix: str, model: str) -> dict[str, Any]:
    """Every object under ``prefix`` becomes a batch job for ``model`` (each object version once)."""
    config = settings()
    # A refused schedule is the deployment's mistake, and fires again at every run: the
    # invocation fails (logged at ERROR, BatchSubmitErrorsAlarm, then the batch DLQ).
    if not prefix or not model:
        raise ScheduleRefusedError("a scheduled run needs 'prefix' and 'model'")
    if prefix.startswith(config.output_prefix):
        raise ScheduleRefusedError(f"refusing to read {config.output_prefix}: outputs never trigger work")
    first = prefix.split("/", 1)[0]
    models = set(default_registry().store.list_models())
    if first in models:
        # (results go to outputs/<key>, where those of uploads to inputs/<first>/ go too)
        raise ScheduleRefusedError(
            f"a schedule prefix must not start with a model's name ({first!r}): its results "
            f"would overwrite those of uploads to {config.input_prefix}{first}/"
        )
    jobs = JobStore.of(config)
    created, skipped = [], []
    for key in s3.list_keys(config.data_bucket, prefix):
        if key.endswith("/"):
            continue
        if key.split("/", 1)[0] in models:  # ("breast" lists breast_cancer/...: same reason)
            skipped.append(key)
            continue
        head = s3.head(config.data_bucket, key)
        version = str(head.get("VersionId") or head.get("ETag", "")).strip('"')
        job = Job(
            job_id=object_job_id(config.data_bucket, key, version),
            model=model,
            status="ROUTED",
            input=f"s3://{config.data_bucket}/{key}",
            input_version=version,
            extra={"lane": "files", "route_reason": f"scheduled run over {prefix}"},
        )
        if jobs.create(job):
            orchestrator.submit(job.job_id)
            created.append(job.job_id)
    if skipped:
        logger.warning("scheduled run: objects under a model's name skipped", extra={"keys": skipped[:20]})
    return {"prefix": prefix, "model": model, "jobs": created, "skipped": skipped}
