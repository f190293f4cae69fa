"""Entry points of batch_submit and batch_collect (their app.py files call these)."""

from __future__ import annotations

from typing import Any

from sinfer.aws import s3
from sinfer.batch import orchestrator
from sinfer.config import settings
from sinfer.inference.registry import default_registry
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job, object_job_id
from sinfer.observability import logger, metrics


def handle_submit(event: dict[str, Any]) -> dict[str, Any]:
    """``{"job_id"}`` from s3_ingest / POST /jobs, or a scheduled run ``{"action": "scheduled-run", ...}``."""
    if event.get("action") == "scheduled-run":
        return scheduled_run(str(event.get("prefix", "")), str(event.get("model", "")))
    job_id = event.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        return {"error": 'expected {"job_id": ...} or {"action": "scheduled-run", "prefix", "model"}'}
    return orchestrator.submit(job_id)


def handle_collect(event: dict[str, Any]) -> dict[str, Any]:
    """Bedrock/SageMaker state changes, or the sweeper's schedule."""
    if event.get("source") in ("aws.bedrock", "aws.sagemaker"):
        return orchestrator.handle_state_change(event)
    if event.get("action") == "sweep" or event.get("detail-type") == "Scheduled Event":
        found = orchestrator.sweep()
        if found.get("failed"):  # (each logged at ERROR; the metric lets an alarm see a repeat)
            from aws_lambda_powertools.metrics import MetricUnit

            metrics.add_metric(name="SweepFailures", unit=MetricUnit.Count, value=found["failed"])
        return found
    logger.info(
        "ignored event", extra={"source": event.get("source"), "detail_type": event.get("detail-type")}
    )
    return {"ignored": True}


def scheduled_run(prefix: str, model: str) -> dict[str, Any]:
    """Every object under ``prefix`` becomes a batch job for ``model`` (each object version once)."""
    config = settings()
    if not prefix or not model:
        return {"error": "a scheduled run needs 'prefix' and 'model'"}
    if prefix.startswith(config.output_prefix):
        return {"error": f"refusing to read {config.output_prefix}: outputs never trigger work"}
    first = prefix.split("/", 1)[0]
    models = set(default_registry().store.list_models())
    if first in models:
        # (results go to outputs/<key>, where those of uploads to inputs/<first>/ go too)
        return {"error": f"a schedule prefix must not start with a model's name ({first!r}): its results "
                f"would overwrite those of uploads to {config.input_prefix}{first}/"}  # fmt: skip
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
