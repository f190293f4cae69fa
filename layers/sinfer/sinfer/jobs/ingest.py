"""One uploaded object → a predictions file, a summary, a job record and a notification.

This is the logic behind s3_ingest. Failures are sorted into two kinds, because SQS retries
whatever the handler reports as failed:

* permanent (unknown model, unreadable file, bad records): reported in the summary, the job and
  the notification, and the message is acknowledged — retrying would fail the same way;
* transient (throttling, 5xx, connection faults, another worker holding the job): the claim is
  released and :class:`TransientError` propagates, so SQS redelivers after the visibility
  timeout and, past ``maxReceiveCount``, moves the message to the DLQ.

Bad records never fail a file: each becomes an error line and the file goes on.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sinfer.aws import s3
from sinfer.aws.sns import publish_job
from sinfer.config import Settings, settings
from sinfer.errors import FileBusyError, InputTooLargeError, SinferError, TransientError
from sinfer.inference.batch import BLOCK_UNIT_ROWS, process_records
from sinfer.inference.registry import ModelRegistry, default_registry
from sinfer.jobs import routing
from sinfer.jobs.events import ObjectRef
from sinfer.jobs.store import JobStore, now_iso
from sinfer.jobs.types import TERMINAL, Job, JobStatus, object_job_id, superseded_by
from sinfer.observability import logger
from sinfer.records import S3JsonlWriter, records_match

IngestStatus = Literal["completed", "failed", "superseded", "routed", "duplicate", "ignored"]

# Lambda x86_64 on-demand prices (us-east-1): per GB-second and per request.
LAMBDA_USD_PER_GB_SECOND = 0.0000166667
LAMBDA_USD_PER_REQUEST = 0.0000002
# The most records between two checks of the remaining time: process_records reports after
# every run of lines it writes, a micro-batch or a few (at most BLOCK_UNIT_ROWS records).
TIME_CHECK_EVERY = BLOCK_UNIT_ROWS


@dataclass(slots=True)
class IngestResult:
    status: IngestStatus
    job_id: str = ""
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    output: str = ""


@dataclass(frozen=True, slots=True)
class ObjectLayout:
    """Where an input's results go: deterministic, so a redelivery rewrites, never duplicates."""

    model: str
    output_key: str
    summary_key: str
    api_job_id: str | None

    @classmethod
    def of(cls, key: str, config: Settings) -> ObjectLayout | None:
        if not key.startswith(config.input_prefix) or key.endswith("/"):
            return None
        rest = key[len(config.input_prefix) :]
        model, _, tail = rest.partition("/")
        if not model or not tail:
            return None
        parts = tail.split("/")
        api_job_id = parts[1] if len(parts) >= 3 and parts[0] == "jobs" and parts[1] else None
        base = f"{config.output_prefix}{model}/{tail}"
        return cls(model, f"{base}.predictions.jsonl", f"{base}.summary.json", api_job_id)


class RanOutOfTimeError(Exception):
    """The invocation's time is nearly up: stop and hand the file to a batch backend."""


def process_object(
    ref: ObjectRef,
    remaining_ms: Callable[[], int],
    *,
    registry: ModelRegistry | None = None,
    config: Settings | None = None,
    jobs: JobStore | None = None,
) -> IngestResult:
    config = config or settings()
    layout = ObjectLayout.of(ref.key, config)
    if layout is None:
        # Recursion guard: outputs (and anything outside inputs/<model>/) never trigger work.
        logger.info("ignored: key outside the input prefix", extra={"bucket": ref.bucket, "key": ref.key})
        return IngestResult("ignored", reason=f"key is not under {config.input_prefix}<model>/")
    try:
        # The key's latest version, not the event's: S3 may deliver notifications out of order,
        # and every version of a key writes the same output key, so an older version processed
        # after a newer one would replace current results with stale ones.
        head = s3.head(ref.bucket, ref.key)
    except s3.S3NotFoundError as exc:
        logger.warning(
            "ignored: object no longer exists or is not readable", extra={"key": ref.key, "error": str(exc)}
        )
        return IngestResult("ignored", reason=str(exc))
    except Exception as exc:
        raise _transient_or(exc) from exc
    latest = str(head.get("VersionId") or "")
    if ref.version_id and latest and latest != ref.version_id:
        reason = f"version {ref.version_id} is superseded by {latest}, whose own event writes the results"
        logger.info("ignored: superseded version", extra={"key": ref.key, "reason": reason})
        return IngestResult("ignored", reason=reason)
    version = (
        ref.version_id or str(head.get("VersionId") or "") or str(head.get("ETag") or ref.etag).strip('"')
    )
    metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    model_name = metadata.get("model", layout.model)
    size = int(head.get("ContentLength", ref.size))
    jobs = jobs or JobStore.of(config)
    job_id = layout.api_job_id or object_job_id(ref.bucket, ref.key, version)
    # Only jobs started through POST /jobs exist before their object arrives (one read saved per file).
    existing = jobs.get(job_id) if layout.api_job_id else None
    job = Job(
        job_id=job_id,
        model=model_name,
        status="RUNNING",
        input=f"s3://{ref.bucket}/{ref.key}",
        input_version=version,
        output=f"s3://{ref.bucket}/{layout.output_key}",
        summary=f"s3://{ref.bucket}/{layout.summary_key}",
        model_version=metadata.get("model-version") or (existing.model_version if existing else ""),
        requested_backend=existing.requested_backend if existing else "",
    )
    owner = str(uuid.uuid4())
    claim = jobs.claim(job, owner, config.lease_seconds)
    if claim.outcome == "duplicate":
        if claim.job.status in TERMINAL and not claim.job.extra.get("notified"):
            notify(jobs, claim.job, config)  # the first delivery finished but failed to notify
        logger.info(
            "duplicate delivery: job already handled", extra={"job_id": job_id, "status": claim.job.status}
        )
        return IngestResult("duplicate", job_id, reason=f"job is {claim.job.status}")
    if claim.outcome == "busy":
        raise FileBusyError(f"job {job_id} is being processed by another invocation")
    return _run(
        ref, layout, job, owner, size, head, remaining_ms, registry or default_registry(), config, jobs
    )


def _transient_or(exc: BaseException) -> BaseException:
    return TransientError(str(exc)) if s3.is_transient(exc) else exc


def _run(
    ref: ObjectRef,
    layout: ObjectLayout,
    job: Job,
    owner: str,
    size: int,
    head: dict[str, Any],
    remaining_ms: Callable[[], int],
    registry: ModelRegistry,
    config: Settings,
    jobs: JobStore,
) -> IngestResult:
    started = time.perf_counter()
    started_at = now_iso()
    try:
        version, manifest = registry.manifest(job.model, job.model_version or None)
        if manifest is not None and _is_foundation_model(manifest):
            # A foundation-model entry never runs in Lambda: Bedrock batch (or InvokeModel for a
            # remainder under Bedrock's minimum job size) takes the whole file.
            job.model_version = version
            return _route(job, owner, "bedrock", "a foundation model: Bedrock batch inference", jobs)
        model = registry.get(job.model, version)
    except SinferError as exc:
        return _fail(job, owner, exc, config, jobs, started, started_at, ref, layout)
    job.model_version = model.version
    route = routing.decide(
        model.name,
        size,
        remaining_ms(),
        config,
        requested_backend=job.requested_backend,
        batch_backend=model.manifest.batch_backend,
    )
    if route.backend != "lambda":
        return _route(job, owner, route.backend, route.reason, jobs)
    # (parts upload on a thread of their own while parsing goes on)
    writer = S3JsonlWriter(ref.bucket, layout.output_key, background=True)
    counts = {"records": 0, "predictions": 0, "errors": 0}
    inference_started = time.perf_counter()
    try:
        stream = s3.open_stream(
            ref.bucket, ref.key, ref.version_id or str(head.get("VersionId") or "") or None
        )

        def check_time(_records: int) -> None:
            if remaining_ms() < config.time_safety_ms:
                raise RanOutOfTimeError

        # Routing saw the compressed size: a .gz is a large file when its content is, and a
        # bomb (10 GB of zeros in 10 MB) must stop at that size, not run into the timeout.
        process_records(
            model,
            stream,
            ref.key,
            writer,
            content_type=head.get("ContentType"),
            counts=counts,
            max_decompressed_bytes=config.max_inline_bytes,
            progress=check_time,
        )
        superseded = superseded_now(job, ref.bucket, ref.key)
        if superseded:
            writer.abort()
            return _yield_to_newer(job, owner, superseded, config, jobs, counts)
        writer.close()
    except RanOutOfTimeError:
        writer.abort()
        return _route(job, owner, model.manifest.batch_backend or config.default_batch_backend,
                      "ran out of time in Lambda", jobs)  # fmt: skip
    except InputTooLargeError:  # a large file after all: the batch path streams it
        writer.abort()
        reason = f"decompresses to over MAX_INLINE_BYTES ({config.max_inline_bytes:,} bytes)"
        return _route(job, owner, model.manifest.batch_backend or config.default_batch_backend,
                      reason, jobs)  # fmt: skip
    except SinferError as exc:  # the file as a whole is unreadable
        writer.abort()
        return _fail(job, owner, exc, config, jobs, started, started_at, ref, layout, counts)
    except BaseException as exc:
        writer.abort()
        jobs.transition(job.job_id, "QUEUED", owner=owner, allowed_from=("RUNNING",))
        raise _transient_or(exc) from exc
    seconds = time.perf_counter() - started
    routing.observe(model.name, size, counts["records"], time.perf_counter() - inference_started)
    summary = _summary(job, "COMPLETED", counts, started_at, seconds, config)
    try:
        put_summary(ref.bucket, layout.summary_key, summary)
        finished = jobs.transition_to(
            job.job_id,
            "COMPLETED",
            owner=owner,
            allowed_from=("RUNNING",),
            fields={**counts, "model_version": model.version, "backend": "lambda"},
        )
    except BaseException as exc:  # release the claim, so a redelivery is not refused as busy
        jobs.transition(job.job_id, "QUEUED", owner=owner, allowed_from=("RUNNING",))
        raise _transient_or(exc) from exc
    if finished is None:
        # The lease ran out mid-run and another invocation took the file over: its run owns the
        # job, and the outputs (same keys, same lines). Counted once, by that run.
        logger.warning(
            "lost the file's lease: another invocation finishes it",
            extra={"job_id": job.job_id, "bucket": ref.bucket, "key": ref.key, "seconds": round(seconds, 3)},
        )
        return IngestResult("duplicate", job.job_id, reason="lease lost to another invocation")
    notify(jobs, finished, config)
    logger.info(
        "completed",
        extra={
            "job_id": job.job_id,
            "bucket": ref.bucket,
            "key": ref.key,
            **counts,
            "seconds": round(seconds, 3),
        },
    )
    return IngestResult("completed", job.job_id, counts=counts, output=job.output)


def _is_foundation_model(manifest: dict[str, Any]) -> bool:
    from sinfer.batch.bedrock.entry import is_bedrock_manifest

    return is_bedrock_manifest(manifest)


def notify(jobs: JobStore, stored: Job, config: Settings) -> None:
    """Publish a terminal job's stored record, then mark it notified.

    ``stored`` is the job as the table holds it: the answer of the update that made it terminal
    (``JobStore.transition_to``), or of the read that found it so; never read back here.
    Notifications are at least once: a failed publish raises (the message is redelivered and
    the duplicate path publishes again); a crash between publish and mark may repeat one.
    """
    job_id = stored.job_id
    try:
        publish_job(config.notify_topic_arn, stored.public())
    except BaseException as exc:
        raise _transient_or(exc) from exc
    jobs.transition(job_id, stored.status, allowed_from=(stored.status,), fields={"notified": True})


def finish(
    jobs: JobStore,
    job_id: str,
    status: JobStatus,
    config: Settings,
    *,
    allowed_from: tuple[str, ...],
    owner: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Job | None:
    """Move a job to a terminal ``status`` and, if this update moved it, publish it (``notify``).

    Returns the job as it now stands, or None when it was not in ``allowed_from`` (someone
    else finished it, and notified).
    """
    done = jobs.transition_to(job_id, status, owner=owner, allowed_from=allowed_from, fields=fields)
    if done is not None:
        notify(jobs, done, config)
    return done


def _route(job: Job, owner: str, backend: str, reason: str, jobs: JobStore) -> IngestResult:
    jobs.transition(
        job.job_id,
        "ROUTED",
        owner=owner,
        allowed_from=("RUNNING",),
        fields={
            "backend": backend,
            "error": "",
            "route_reason": reason,
            "lane": "files",
            "model_version": job.model_version,
        },
    )
    from sinfer.batch.trigger import request_submit

    how = request_submit(job.job_id)
    logger.info(
        "routed to batch", extra={"job_id": job.job_id, "backend": backend, "reason": reason, "via": how}
    )
    return IngestResult("routed", job.job_id, reason=reason)


def superseded_now(job: Job, bucket: str, key: str) -> str:
    """Whether a newer version of the key arrived while this job ran (see superseded_by).

    Checked again just before results are published (here and by the batch merge): the check
    when the file started cannot see an upload made since, and the older run would otherwise
    finish last and replace the newer version's results. A deleted key supersedes nothing.
    """
    try:
        head = s3.head(bucket, key)
    except s3.S3NotFoundError:
        return ""
    return superseded_by(job, head)


def _yield_to_newer(
    job: Job, owner: str, reason: str, config: Settings, jobs: JobStore, counts: dict[str, int]
) -> IngestResult:
    """End a run whose version was replaced: FAILED ``superseded``, with no output or summary
    written (both keys belong to the newer version's job)."""
    message = f"superseded: {reason}"
    finish(
        jobs, job.job_id, "FAILED", config, owner=owner, allowed_from=("RUNNING",), fields={"error": message}
    )
    logger.info("superseded while running: results not published", extra={"job_id": job.job_id})
    return IngestResult("superseded", job.job_id, reason=message, counts=counts)


def _fail(
    job: Job,
    owner: str,
    exc: SinferError,
    config: Settings,
    jobs: JobStore,
    started: float,
    started_at: str,
    ref: ObjectRef,
    layout: ObjectLayout,
    counts: dict[str, int] | None = None,
) -> IngestResult:
    counts = counts or {"records": 0, "predictions": 0, "errors": 0}
    message = f"{exc.code}: {exc.message}"
    summary = _summary(
        job, "FAILED", counts, started_at, time.perf_counter() - started, config, error=message
    )
    put_summary(ref.bucket, layout.summary_key, summary)
    finish(
        jobs, job.job_id, "FAILED", config, owner=owner, allowed_from=("RUNNING",), fields={"error": message}
    )
    logger.warning(
        "failed", extra={"job_id": job.job_id, "bucket": ref.bucket, "key": ref.key, "error": message}
    )
    return IngestResult("failed", job.job_id, reason=message, counts=counts)


def put_summary(bucket: str, key: str, summary: dict[str, Any]) -> None:
    """A file's summary object, as s3_ingest and the batch merge write it."""
    s3.put_bytes(bucket, key, json.dumps(summary, indent=2).encode(), "application/json")


def _summary(
    job: Job,
    status: str,
    counts: dict[str, int],
    started_at: str,
    seconds: float,
    config: Settings,
    error: str | None = None,
) -> dict[str, Any]:
    gb_seconds = config.lambda_gb * seconds
    return {
        "job_id": job.job_id,
        "status": status,
        "model": job.model,
        "model_version": job.model_version or None,
        "input": job.input,
        "input_version": job.input_version or None,
        "output": job.output if status == "COMPLETED" else None,
        "counts": counts,
        "records_match": records_match(counts),
        "timings": {"started_at": started_at, "finished_at": now_iso(), "seconds": round(seconds, 4)},
        "backend": "lambda",
        "cost_estimate": {
            "usd": round(gb_seconds * LAMBDA_USD_PER_GB_SECOND + LAMBDA_USD_PER_REQUEST, 8),
            "basis": (
                f"{gb_seconds:.3f} GB-s of Lambda at {config.lambda_memory_mb} MB "
                "(x86_64 on-demand, us-east-1)"
            ),
        },
        "error": error,
    }
