"""Batch orchestration: submit a file as shards, respect quotas, collect, join, retry, merge.

The life of a batch file (a "parent" job in the jobs table)::

    ROUTED ─ submit() ─▶ SUBMITTED ─ (every shard terminal) ─▶ MERGING ─▶ COMPLETED / FAILED

and of each of its shards (one backend job each, id ``<parent>-s0003``; retries
``<parent>-s0003-r1``)::

    QUEUED ─ dispatch() ─▶ SUBMITTING ─▶ SUBMITTED ─ (state change) ─▶ COLLECTING ─▶ COMPLETED / FAILED

Every status change is a conditional write, so duplicate and out-of-order events are harmless:
only the first terminal event for a SUBMITTED shard collects it, and only one collector merges.
Shards wait as QUEUED while their lane (a Bedrock model, or SageMaker) has as many jobs in
flight as ``BATCH_MAX_CONCURRENT_JOBS``; throttling and quota errors put them back to wait.
EventBridge delivery is best effort, so :func:`sweep` (on a schedule) asks the backends about
every in-flight shard, re-drives submissions, real-time runs and collections whose Lambda
died midway, and finishes merges that were missed.

Failed records (Bedrock error lines, records a Failed/Stopped/Expired/PartiallyCompleted job
never reached, or lines a SageMaker job never wrote) are retried as a new shard, up to
``BATCH_MAX_ATTEMPTS`` in all; what still fails is reported as error lines, with the job's
reason. "Completed" is not taken on trust: the output lines decide, record by record.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sinfer.aws import s3
from sinfer.aws.bedrock import TERMINAL_STATUSES as BEDROCK_TERMINAL
from sinfer.aws.bedrock import QuotaError
from sinfer.aws.sagemaker import TERMINAL_STATUSES as SAGEMAKER_TERMINAL
from sinfer.batch.backends import (
    Backend,
    BedrockBackend,
    EventSink,
    LocalBackend,
    SageMakerBackend,
    Target,
    realtime_bedrock,
    s3_uri,
)
from sinfer.batch.shards import Limits, Plan, ShardFiles, json_ready, read_index, write_shards
from sinfer.codecs.outputs import DEEP_OUTPUT_MESSAGE, MAX_OUTPUT_DEPTH, nested_deeper_than
from sinfer.config import Settings, settings
from sinfer.errors import SinferError
from sinfer.inference.registry import ModelRegistry, default_registry
from sinfer.jobs.store import JobStore, now_iso
from sinfer.jobs.types import Job, superseded_by
from sinfer.observability import count, count_file, logger
from sinfer.records import S3JsonlWriter, error_line, prediction_line, read_records, records_match
from sinfer.records.types import Record

TERMINAL_SHARD = frozenset({"COMPLETED", "FAILED"})
# Untouched for longer than a Lambda may run: whoever was submitting, running or collecting it died.
STUCK_SECONDS = 900
# batch_submit's timeout: a submission holds its ROUTED file this long, so sweeps that run
# meanwhile leave it alone; a file no attempt can shard within it fails after a few.
SUBMIT_LEASE_SECONDS = 900
MAX_SUBMIT_ATTEMPTS = 3
# A real-time remainder's run (InvokeModel per record) holds its shard as long as a Lambda may run.
REALTIME_LEASE_SECONDS = 900
MAX_REALTIME_RUNS = 3


@dataclass(slots=True)
class Context:
    """Everything the orchestrator touches, injectable for tests."""

    config: Settings
    jobs: JobStore
    registry: ModelRegistry
    backend: Backend
    draining: bool = False

    @classmethod
    def default(cls, sink: EventSink | None = None) -> Context:
        config = settings()
        backend: Backend
        if config.default_batch_backend == "local":
            backend = LocalBackend(config, sink or _local_sink)
        elif config.default_batch_backend == "bedrock":
            backend = BedrockBackend(config)
        else:
            backend = SageMakerBackend(config)
        return cls(config, JobStore.of(config), default_registry(), backend)

    def backend_for(self, target: Target) -> Backend:
        """The emulator stands in for both services; otherwise each kind has its own service."""
        if isinstance(self.backend, LocalBackend):
            return self.backend
        if target.kind == "bedrock":
            return BedrockBackend(self.config)
        return SageMakerBackend(self.config)


_local_sink: EventSink | None = None


def set_local_sink(sink: EventSink | None) -> None:
    """Where the local emulator sends its state-change events (the embedded stack's batch_collect)."""
    global _local_sink
    _local_sink = sink


def _drain(ctx: Context) -> None:
    """Without a sink, the emulator's events wait in its backend: collect them here, in order."""
    backend = ctx.backend
    if not isinstance(backend, LocalBackend) or backend.sink is not None or ctx.draining:
        return
    ctx.draining = True
    try:
        while backend.pending:
            handle_state_change(backend.pending.pop(0), ctx)
    finally:
        ctx.draining = False


# --- targets -----------------------------------------------------------------------------------


def target_for(job: Job, ctx: Context) -> Target:
    """Bedrock for a foundation-model entry; SageMaker (the ONNX container) for an ONNX model."""
    from sinfer.batch.bedrock.entry import BedrockEntry, is_bedrock_manifest

    version, raw = ctx.registry.manifest(job.model, job.model_version or None)
    if raw is not None and is_bedrock_manifest(raw):
        entry = BedrockEntry.from_manifest(raw)
        return Target("bedrock", job.model, version, f"bedrock:{entry.model_id}", entry)
    return Target("sagemaker", job.model, version, f"sagemaker:{ctx.config.sagemaker_instance_type}")


def _line_builder(target: Target) -> Callable[[Record], tuple[bytes, str | None]]:
    if target.kind == "bedrock":
        from sinfer.batch.bedrock.families import batch_input_line, build_model_input, record_id

        entry = target.entry
        assert entry is not None

        def bedrock_line(record: Record) -> tuple[bytes, str | None]:
            rid = record_id(record.index)
            return batch_input_line(rid, build_model_input(entry, record.value)), rid

        return bedrock_line

    def instance_line(record: Record) -> tuple[bytes, str | None]:
        # {"instance": ...} is unambiguous for the container, whatever the instance's keys.
        doc = {"instance": json_ready(record.value)}
        return json.dumps(doc, separators=(",", ":")).encode("utf-8") + b"\n", None

    return instance_line


def _limits(target: Target, config: Settings) -> Limits:
    if target.kind == "bedrock":
        return Limits(
            max_records=config.bedrock_max_records,
            max_bytes=min(config.bedrock_max_file_bytes, config.bedrock_max_job_bytes),
            min_records=config.bedrock_min_records,
        )
    return Limits(max_records=config.sagemaker_max_records, max_bytes=config.sagemaker_max_file_bytes)


# --- submit --------------------------------------------------------------------------------------


def submit(job_id: str, ctx: Context | None = None) -> dict[str, Any]:
    """Prepare a ROUTED file's shards and start as many as its lane allows."""
    ctx = ctx or Context.default()
    job = ctx.jobs.get(job_id)
    if job is None:
        return {"job_id": job_id, "status": "unknown job"}
    if job.status != "ROUTED":
        return {"job_id": job_id, "status": job.status, "note": "already submitted"}
    attempt = ctx.jobs.lease(job_id, "ROUTED", SUBMIT_LEASE_SECONDS, "submit_attempts")
    if attempt is None:
        return {"job_id": job_id, "status": "ROUTED", "note": "being submitted by another invocation"}
    if attempt > MAX_SUBMIT_ATTEMPTS:
        # (an error kept by an earlier attempt, not the last, says nothing of how the last ended)
        raised_last = job.extra.get("submit_error_attempt") == MAX_SUBMIT_ATTEMPTS
        last_error = job.extra.get("submit_error") if raised_last else None
        message = f"gave up after {MAX_SUBMIT_ATTEMPTS} attempts to prepare the file's batch shards; " + (
            f"the last failed with {last_error}"
            if last_error
            else f"none finished within {SUBMIT_LEASE_SECONDS} s (batch_submit's timeout): "
            "split the input into smaller files"
        )
        _fail_parent(job, f"submit_failed: {message}", ctx)
        return {"job_id": job_id, "status": "FAILED", "error": message}
    try:
        target = target_for(job, ctx)
    except SinferError as exc:
        _fail_parent(job, f"{exc.code}: {exc.message}", ctx)
        return {"job_id": job_id, "status": "FAILED", "error": exc.message}
    missing = _missing_configuration(target, ctx)
    if missing:
        _fail_parent(job, f"not_configured: {missing}", ctx)
        return {"job_id": job_id, "status": "FAILED", "error": missing}
    source = s3.S3Uri.parse(job.input)
    work = f"{ctx.config.batch_prefix}{job.job_id}/"
    try:
        head = s3.head(source.bucket, source.key)
        superseded = superseded_by(job, head)
        if superseded:
            _fail_parent(job, f"superseded: {superseded}", ctx)
            return {"job_id": job_id, "status": "FAILED", "error": superseded}
        # A decompression bomb must fail the file, not outlast batch_submit on every sweep.
        records = read_records(
            # Pinned to the version just checked: an overwrite while this reads cannot mix in.
            s3.open_stream(source.bucket, source.key, str(head.get("VersionId") or "") or None),
            source.key,
            head.get("ContentType"),
            max_decompressed_bytes=ctx.config.batch_max_decompressed_bytes,
        )
        plan = write_shards(
            records,
            _line_builder(target),
            bucket=ctx.config.data_bucket,
            work_prefix=work,
            limits=_limits(target, ctx.config),
        )
    except SinferError as exc:
        _fail_parent(job, f"{exc.code}: {exc.message}", ctx)
        return {"job_id": job_id, "status": "FAILED", "error": exc.message}
    except s3.S3NotFoundError as exc:  # deleted since it was routed: no retry can bring it back
        _fail_parent(job, f"input_not_found: {exc}", ctx)
        return {"job_id": job_id, "status": "FAILED", "error": str(exc)}
    except Exception as exc:
        # An AWS error or a bug, not the file's known fault: retried (the invocation fails), with
        # the lease released (as any transition releases it), and named if the attempts run out.
        ctx.jobs.transition(
            job.job_id,
            "ROUTED",
            allowed_from=("ROUTED",),
            fields={"submit_error": f"{type(exc).__name__}: {exc}"[:1000], "submit_error_attempt": attempt},
        )
        raise
    _create_shards(job, target, plan, ctx)
    moved = ctx.jobs.transition(
        job.job_id,
        "SUBMITTED",
        allowed_from=("ROUTED",),
        fields={
            "backend": target.kind,
            "lane": "files",
            "shards": len(plan.shards),
            "work": s3_uri(ctx.config.data_bucket, work),
            "records": plan.records,
            "model_version": target.version,
        },
    )
    if not moved:  # another submitter won; its shards are the same, created idempotently
        return {"job_id": job_id, "status": "SUBMITTED", "note": "submitted concurrently"}
    # Batch jobs first: they run for hours, and a remainder's InvokeModel calls take minutes
    # (if this invocation dies during them, the jobs are out already; the sweeper reruns it).
    dispatch(target, ctx)
    for shard in plan.shards:
        if shard.realtime and shard.sent:
            _run_realtime(f"{job.job_id}-{shard.name}", target, ctx)
    _drain(ctx)
    maybe_merge(job.job_id, ctx)
    return {"job_id": job_id, "status": "SUBMITTED", "shards": len(plan.shards), "records": plan.records}


def _missing_configuration(target: Target, ctx: Context) -> str:
    """Fail fast, before sharding, when the backend this file needs is not set up."""
    if isinstance(ctx.backend, LocalBackend):
        return ""
    if target.kind == "sagemaker" and not (ctx.config.sagemaker_image_uri and ctx.config.sagemaker_role_arn):
        return (
            "SageMaker Batch Transform needs the sinfer container image (template parameter "
            "SageMakerImageUri, built from containers/sagemaker/Dockerfile) and SAGEMAKER_ROLE_ARN"
        )
    if target.kind == "bedrock" and not ctx.config.bedrock_role_arn:
        return "Bedrock batch inference needs BEDROCK_ROLE_ARN (the template's BedrockBatchRole)"
    return ""


def _create_shards(parent: Job, target: Target, plan: Plan, ctx: Context) -> None:
    bucket = ctx.config.data_bucket
    for shard in plan.shards:
        child = Job(
            job_id=f"{parent.job_id}-{shard.name}",
            model=parent.model,
            status="QUEUED"
            if shard.sent and not shard.realtime
            else ("SUBMITTED" if shard.sent else "COMPLETED"),
            input=s3_uri(bucket, shard.files.input_key),
            output=s3_uri(bucket, shard.files.output_prefix),
            model_version=target.version,
            backend=target.kind,
            records=shard.sent,
            extra={
                "parent": parent.job_id,
                "lane": "realtime" if shard.realtime else target.lane,
                "shard": shard.index,
                "attempt": 1,
                "index_key": shard.files.index_key,
                "realtime": shard.realtime,
            },
        )
        ctx.jobs.create(child)


def _run_realtime(shard_id: str, target: Target, ctx: Context) -> bool:
    """A shard under Bedrock's minimum job size: InvokeModel per record (or the emulator).

    Each run holds the shard for as long as a Lambda may run, so a sweep does not start a second
    one beside it, and is counted: a remainder whose runs keep dying (records that take longer
    than the function's timeout to answer) ends FAILED after a few, its records reported, not
    retried (a retry would run them the same way). Returns whether this call ran it (or gave up
    on it).
    """
    shard = ctx.jobs.get(shard_id)
    if shard is None or target.entry is None:
        return False
    run = ctx.jobs.lease(shard_id, "SUBMITTED", REALTIME_LEASE_SECONDS, "realtime_runs")
    if run is None:
        return False  # being run by another invocation, or done
    if run > MAX_REALTIME_RUNS:
        message = (
            f"gave up after {MAX_REALTIME_RUNS} runs of its records through InvokeModel, none of "
            f"which finished within {REALTIME_LEASE_SECONDS} s (a Lambda function's longest run)"
        )
        # (not retried: a retry would run the same records the same way)
        _finish_shard(shard, "Failed", message, target, ctx, allowed_from=("SUBMITTED",), retry=False)
        return True
    emulate = isinstance(ctx.backend, LocalBackend)
    realtime_bedrock(shard, target.entry, ctx.config, emulate=emulate)
    _finish_shard(shard, "Completed", "", target, ctx, allowed_from=("SUBMITTED",))
    return True


# --- quota-aware dispatch ----------------------------------------------------------------------


def dispatch(target: Target, ctx: Context) -> int:
    """Submit QUEUED shards of this lane while it has free slots; returns how many started."""
    started = 0
    in_flight = len(ctx.jobs.by_status("SUBMITTED", target.lane)) + len(
        ctx.jobs.by_status("SUBMITTING", target.lane)
    )
    slots = ctx.config.batch_max_concurrent_jobs - in_flight
    if slots <= 0:
        return 0
    backend = ctx.backend_for(target)
    for shard in ctx.jobs.by_status("QUEUED", target.lane, limit=slots):
        if not ctx.jobs.transition(shard.job_id, "SUBMITTING", allowed_from=("QUEUED",)):
            continue  # another dispatcher took it
        try:
            backend_job = backend.submit(shard, target)
        except QuotaError as exc:
            ctx.jobs.transition(shard.job_id, "QUEUED", allowed_from=("SUBMITTING",))
            logger.info("quota: shard waits", extra={"shard": shard.job_id, "error": str(exc)})
            break
        except Exception as exc:
            if s3.is_transient(exc):
                ctx.jobs.transition(shard.job_id, "QUEUED", allowed_from=("SUBMITTING",))
                break
            logger.exception("shard submission refused", extra={"shard": shard.job_id})
            _finish_shard(
                shard, "Failed", f"submission refused: {exc}", target, ctx, allowed_from=("SUBMITTING",)
            )
            continue
        # The local emulator may already have collected the shard by now; only move it forward.
        ctx.jobs.transition(
            shard.job_id,
            "SUBMITTED",
            allowed_from=("SUBMITTING",),
            fields={"backend_job": backend_job, "submitted_at": now_iso()},
        )
        started += 1
    return started


# --- collect -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChange:
    service: str  # "bedrock" or "sagemaker"
    name: str  # our shard id (jobs are named after it)
    status: str
    message: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in (BEDROCK_TERMINAL if self.service == "bedrock" else SAGEMAKER_TERMINAL)


def parse_state_change(event: dict[str, Any]) -> StateChange | None:
    """Bedrock and SageMaker state-change events (their detail fields and times differ)."""
    detail = event.get("detail") or {}
    if event.get("source") == "aws.bedrock":
        name = detail.get("batchJobName") or detail.get("jobName")
        arn = detail.get("batchJobArn") or detail.get("jobArn") or ""
        status = detail.get("status") or detail.get("jobStatus")
        if not name and arn:
            name = str(arn).rsplit("/", 1)[-1]
        if name and status:
            return StateChange("bedrock", str(name), str(status), str(detail.get("failureMessage") or ""))
    if event.get("source") == "aws.sagemaker":
        name = detail.get("TransformJobName")
        status = detail.get("TransformJobStatus")
        if name and status:
            return StateChange("sagemaker", str(name), str(status), str(detail.get("FailureReason") or ""))
    return None


def handle_state_change(event: dict[str, Any], ctx: Context | None = None) -> dict[str, Any]:
    change = parse_state_change(event)
    if change is None:
        return {"ignored": "not a batch job state change"}
    if not change.terminal:
        return {"shard": change.name, "status": change.status, "note": "not terminal"}
    ctx = ctx or Context.default()
    shard = ctx.jobs.get(change.name)
    if shard is None or "parent" not in shard.extra:
        logger.info("state change for a job sinfer does not own", extra={"job_name": change.name})
        return {"ignored": f"unknown job {change.name}"}
    parent = ctx.jobs.get(str(shard.extra["parent"]))
    if parent is None:
        return {"ignored": f"orphan shard {change.name}"}
    target = target_for(parent, ctx)
    collected = _finish_shard(
        shard, change.status, change.message, target, ctx, allowed_from=("SUBMITTED", "SUBMITTING")
    )
    dispatch(target, ctx)
    _drain(ctx)
    merged = maybe_merge(parent.job_id, ctx)
    return {"shard": change.name, "status": change.status, "collected": collected, "merged": merged}


@dataclass(slots=True)
class ShardOutcomes:
    """What one shard attempt produced, keyed like its index file's ``rid``."""

    lines: dict[str, tuple[Any, dict[str, str] | None]] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    files: int = 0  # output files read
    answered: int = 0  # their lines that were not blank
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)  # of each record's kept line

    def keep(
        self, key: str, outcome: tuple[Any, dict[str, str] | None], tokens: tuple[int, int] = (0, 0)
    ) -> None:
        """Record a line's outcome. A success is final: a repeated line for the same record (a
        service may write one twice) replaces an error, and an error never replaces a success."""
        current = self.lines.get(key)
        if current is None or current[1] is not None:
            self.lines[key] = outcome
            self.tokens[key] = tokens

    def only(self, keys: Iterable[str]) -> None:
        """Keep the outcomes of these records alone (the ones a shard sent: a line for any other
        is not its own), and total their kept lines' tokens (a repeated line counts once)."""
        keys = list(keys)
        self.lines = {key: self.lines[key] for key in keys if key in self.lines}
        counted = [self.tokens.get(key, (0, 0)) for key in keys]
        self.input_tokens = sum(tokens[0] for tokens in counted)
        self.output_tokens = sum(tokens[1] for tokens in counted)


def _read_outcomes(shard: Job, target: Target) -> ShardOutcomes:
    out = s3.S3Uri.parse(shard.output)
    found = ShardOutcomes()
    keys = sorted(
        k
        for k in s3.list_keys(out.bucket, out.key)
        if k.endswith(".out") and not k.endswith("manifest.json.out")
    )
    if target.kind == "bedrock":
        from sinfer.batch.bedrock.families import (
            ModelOutputError,
            parse_batch_output_line,
            parse_model_output,
        )

        assert target.entry is not None
        for key in keys:
            found.files += 1
            for raw in s3.iter_lines(out.bucket, key):
                if not raw.strip():
                    continue
                found.answered += 1
                try:
                    record = parse_batch_output_line(raw)
                except ModelOutputError:
                    continue  # an unreadable line: its record counts as missing
                if record.model_output is None:
                    error = {"code": f"bedrock_{record.error_code}", "message": record.error_message or ""}
                    found.keep(record.record_id, (None, error))
                    continue
                try:
                    parsed = parse_model_output(target.entry, record.model_output)
                except (SinferError, ModelOutputError) as exc:
                    found.keep(record.record_id, (None, {"code": exc.code, "message": exc.message}))
                    continue
                found.keep(
                    record.record_id, (parsed.prediction, None), (parsed.input_tokens, parsed.output_tokens)
                )
        return found
    # SageMaker: <input key>.out, one line per input line, in order. A blank line answers
    # nothing: the container writes none, but AssembleWith=Line may end each response with a
    # newline of its own. (_finish_shard checks the count of the others.)
    positions = _position_keys(shard)
    for key in keys:
        found.files += 1
        for raw in s3.iter_lines(out.bucket, key):
            if not raw.strip():
                continue
            found.answered += 1
            number = next(positions, None)
            outcome = _container_outcome(raw)
            if number is not None and outcome is not None:
                found.keep(number, outcome)
    return found


def _container_outcome(raw: bytes) -> tuple[Any, dict[str, str] | None] | None:
    """One line of the SageMaker container's answer (None: not a line it writes)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    if "error" in doc:
        error = doc["error"] if isinstance(doc["error"], dict) else {"message": doc["error"]}
        code, message = error.get("code"), error.get("message")
        return None, {
            "code": str(code) if code else "error",
            "message": str(message) if message else "the container gave no reason",
        }
    if "prediction" not in doc:
        return None
    if nested_deeper_than(doc["prediction"], MAX_OUTPUT_DEPTH):
        return None, {"code": "invalid_model_output", "message": DEEP_OUTPUT_MESSAGE}
    return doc["prediction"], None


def _save_outcomes(shard: Job, outcomes: ShardOutcomes) -> str:
    """Keep what collection read, so the merge need not read and parse the backend's output again.

    One ``[key, prediction, error]`` line per outcome, beside the shard's input: a Bedrock
    output line repeats the whole request (``modelInput``), so this is a fraction of its size
    and needs no model-output parsing. Returns the key, stored on the shard as ``outcomes_key``.
    """
    source = s3.S3Uri.parse(shard.input)
    key = ShardFiles.of_input(source.key).outcomes_key
    with S3JsonlWriter(source.bucket, key) as writer:  # published whole, or aborted
        for rid, (prediction, error) in outcomes.lines.items():
            writer.write(json.dumps([rid, prediction, error], separators=(",", ":")).encode() + b"\n")
    return key


def _collected_outcomes(shard: Job, target: Target) -> ShardOutcomes:
    """A collected shard's outcomes: as saved by collection, or (for a shard collected before
    outcomes were saved) read from the backend's output again."""
    key = shard.extra.get("outcomes_key")
    if not key:
        outcomes = _read_outcomes(shard, target)
        outcomes.only(key for key, _ in _sent_keys(shard))
        return outcomes
    found = ShardOutcomes(
        input_tokens=int(shard.extra.get("input_tokens") or 0),
        output_tokens=int(shard.extra.get("output_tokens") or 0),
    )
    for raw in s3.iter_lines(s3.S3Uri.parse(shard.input).bucket, str(key)):
        if raw.strip():
            rid, prediction, error = json.loads(raw)
            found.lines[rid] = (prediction, error)
    return found


def _sent_keys(shard: Job) -> Iterator[tuple[str, bytes]]:
    """(join key, input line) of every record the shard sent."""
    source = s3.S3Uri.parse(shard.input)
    positions = _position_keys(shard)
    for raw in s3.iter_lines(source.bucket, source.key):
        if not raw.strip():
            continue
        if shard.backend == "bedrock":
            yield str(json.loads(raw)["recordId"]), raw
        else:
            yield next(positions), raw


def _position_keys(shard: Job) -> Iterator[str]:
    """The join key of each line of a shard joined by position (SageMaker), in line order.

    A first attempt's line n is its index's ``rid`` n. A retry holds only some of those
    records, so its lines are numbered afresh: its ``keys.jsonl`` (written with it) says whose
    line each one is, or a retry's answer would be joined to another record.
    """
    keys_key = shard.extra.get("keys_key")
    if not keys_key:
        yield from (str(number) for number in itertools.count())
        return
    bucket = s3.S3Uri.parse(shard.input).bucket
    for raw in s3.iter_lines(bucket, str(keys_key)):
        if raw.strip():
            yield str(json.loads(raw))


def _finish_shard(
    shard: Job,
    status: str,
    message: str,
    target: Target,
    ctx: Context,
    *,
    allowed_from: tuple[str, ...],
    retry: bool = True,
) -> bool:
    """Collect a shard once: count its outcomes, queue a retry of what failed (unless ``retry``
    is false: what failed would fail the same way), mark it terminal."""
    if not ctx.jobs.transition(shard.job_id, "COLLECTING", allowed_from=allowed_from):
        return False  # a duplicate or late event: someone collected it already
    if status == "Stopped" and not message:  # a job sinfer stopped says why
        message = str(shard.extra.get("stop_reason") or "")
    outcomes = _read_outcomes(shard, target)
    sent = int(shard.records or 0)
    if target.kind == "sagemaker" and outcomes.files and outcomes.answered != sent:
        # AWS writes a .out only for a file transformed whole, one line per line sent. Any other
        # count means lines were lost or added on the way, and pairing by position from there
        # on would give records each other's results: no line is trusted, every record is
        # missing (retried, then reported with this reason).
        problem = (
            f"its output held {outcomes.answered:,} lines for the {sent:,} records sent, so no "
            "line could be paired with its record"
        )
        logger.warning("shard output out of step with its input", extra={"shard": shard.job_id})
        message = f"{message}; {problem}" if message else problem
        outcomes.lines.clear()
    # "Completed" is not trusted: a record failed when its line is an error, or is missing.
    # Only the records the shard sent count: a line for any other is not this shard's.
    sent_keys: list[str] = []
    failed: list[tuple[str, bytes]] = []
    for key, raw in _sent_keys(shard):
        sent_keys.append(key)
        outcome = outcomes.lines.get(key)
        if outcome is None or outcome[1] is not None:
            failed.append((key, raw))
    outcomes.only(sent_keys)
    # Only what may succeed next time is retried: records the job never reached, and Bedrock's
    # throttling and service faults (429, 5xx). Another 4xx, or the model's own verdict on a
    # record (SageMaker error lines), would fail the same way again.
    retryable = [(key, raw) for key, raw in failed if _retryable(outcomes.lines.get(key))]
    attempt = int(shard.extra.get("attempt", 1))
    retry_id, run_now = "", False
    if retry and retryable and attempt < ctx.config.batch_max_attempts:
        retry_id, run_now = _queue_retry(shard, retryable, attempt + 1, target, ctx)
    ok = status in ("Completed", "PartiallyCompleted")
    outcomes_key = _save_outcomes(shard, outcomes)
    ctx.jobs.transition(
        shard.job_id,
        "COMPLETED" if ok else "FAILED",
        allowed_from=("COLLECTING",),
        fields={
            "outcomes_key": outcomes_key,
            "backend_status": status,
            "error": message,
            "predictions": sum(1 for _, error in outcomes.lines.values() if error is None),
            "errors": len(failed),
            "retry": retry_id,
            "input_tokens": outcomes.input_tokens,
            "output_tokens": outcomes.output_tokens,
            "collected_at": now_iso(),
        },
    )
    details = {"shard": shard.job_id, "backend_status": status, "failed": len(failed), "retry": retry_id}
    if ok:
        logger.info("shard collected", extra=details)
    else:
        # The backend's job failed, stopped or expired (or a real-time remainder was given up):
        # what failed is retried or reported, but an operator should see why it happened.
        logger.warning(
            "shard failed", extra={**details, "parent": shard.extra.get("parent"), "error": message}
        )
        count("ShardsFailed")
    if run_now:  # a retry under Bedrock's job minimum, run once this shard is done
        _run_realtime(retry_id, target, ctx)
    return True


def _retryable(outcome: tuple[Any, dict[str, str] | None] | None) -> bool:
    if outcome is None:
        return True  # never processed
    error = outcome[1]
    if error is None:
        return False
    code = str(error.get("code", ""))
    if not code.startswith("bedrock_"):
        return False
    status = code.removeprefix("bedrock_")
    # A 4xx is the request's fault, except throttling (429) and a timeout (408).
    return not (status.isdigit() and 400 <= int(status) < 500 and int(status) not in (408, 429))


def _queue_retry(
    shard: Job, failed: list[tuple[str, bytes]], attempt: int, target: Target, ctx: Context
) -> tuple[str, bool]:
    """A new shard holding only the failed records (same keys, so the merge can join them):
    its id, and whether it is a real-time one this call created, for the caller to run."""
    parent, index = str(shard.extra["parent"]), int(shard.extra["shard"])
    name = f"s{index:04d}-r{attempt - 1}"
    retry_id = f"{parent}-{name}"
    source = s3.S3Uri.parse(shard.input)
    files = ShardFiles(f"{ctx.config.batch_prefix}{parent}/{name}/")
    writer = S3JsonlWriter(source.bucket, files.input_key)
    for _, raw in failed:
        writer.write(raw if raw.endswith(b"\n") else raw + b"\n")
    writer.close()
    extra: dict[str, Any] = {}
    if shard.backend != "bedrock":  # joined by position: say whose line each one is
        keys = S3JsonlWriter(source.bucket, files.keys_key)
        for key, _ in failed:
            keys.write(json.dumps(key).encode() + b"\n")
        keys.close()
        extra["keys_key"] = files.keys_key
    realtime = target.kind == "bedrock" and len(failed) < ctx.config.bedrock_min_records
    retry = Job(
        job_id=retry_id,
        model=shard.model,
        status="SUBMITTED" if realtime else "QUEUED",
        input=s3_uri(source.bucket, files.input_key),
        output=s3_uri(source.bucket, files.output_prefix),
        model_version=shard.model_version,
        backend=shard.backend,
        records=len(failed),
        extra={
            **{k: shard.extra[k] for k in ("parent", "shard", "index_key")},
            "lane": "realtime" if realtime else target.lane,
            "attempt": attempt,
            "realtime": realtime,
            **extra,
        },
    )
    created = ctx.jobs.create(retry)
    return retry_id, created and realtime


# --- merge -----------------------------------------------------------------------------------------


def maybe_merge(parent_id: str, ctx: Context) -> bool:
    """Write the merged results once every shard (and retry) is terminal."""
    parent = ctx.jobs.get(parent_id)
    if parent is None or parent.status != "SUBMITTED":
        return False
    shards = _with_retries(ctx.jobs.children(parent_id), ctx)
    if shards is None:
        return False
    expected = int(parent.extra.get("shards", 0))
    bases = {int(s.extra.get("shard", -1)) for s in shards}
    if len(bases) < expected or any(s.status not in TERMINAL_SHARD for s in shards):
        return False
    if not ctx.jobs.transition(
        parent_id, "MERGING", allowed_from=("SUBMITTED",), fields={"lease_until": int(time.time()) + 900}
    ):
        return False
    merge(parent, shards, ctx)
    return True


def _with_retries(shards: list[Job], ctx: Context) -> list[Job] | None:
    """``shards`` and every retry they name. The parent index is eventually consistent, so a
    retry queued moments ago (by this very invocation, even) may not be in it yet; a collected
    shard names its retry, which was written before, and is read here by its id. Merging
    without it would report its records as never processed, and leave it to run for nothing."""
    found = {shard.job_id: shard for shard in shards}
    named = [str(shard.extra.get("retry") or "") for shard in shards]
    while named:
        retry_id = named.pop()
        if not retry_id or retry_id in found:
            continue
        retry = ctx.jobs.get(retry_id)
        if retry is None:  # cannot be, as a retry is written before it is named: not yet, then
            return None
        found[retry_id] = retry
        named.append(str(retry.extra.get("retry") or ""))
    return sorted(found.values(), key=lambda shard: shard.job_id)


# The SageMaker container names a bad record by its line in the request it came in ("record 5
# (input 'pixels'): ..."), which means nothing to the file's owner: the merge names it as
# s3_ingest does, by the record's id.
_in_request = re.compile(r"^record \d+(?= )")


def _named_by_id(message: str, record_id: Any) -> str:
    found = _in_request.match(message)
    return message if found is None else f"record {record_id!r}{message[found.end() :]}"


def output_keys(input_key: str, config: Settings) -> tuple[str, str]:
    from sinfer.jobs.ingest import ObjectLayout

    layout = ObjectLayout.of(input_key, config)
    if layout is None:
        # A scheduled run over another prefix: beside the models' folders, at the object's key.
        # Under outputs/<model>/ it would take the key of the results of an upload to
        # inputs/<model>/<that key>, and the two files would overwrite each other's results.
        base = f"{config.output_prefix}{input_key}"
        return f"{base}.predictions.jsonl", f"{base}.summary.json"
    return layout.output_key, layout.summary_key


def merge(parent: Job, shards: list[Job], ctx: Context) -> dict[str, int]:
    """Walk every shard's index in input order; one output line per input record."""
    from sinfer.jobs.ingest import finish, put_summary, superseded_now

    target = target_for(parent, ctx)
    source = s3.S3Uri.parse(parent.input)
    output_key, summary_key = output_keys(source.key, ctx.config)
    writer = S3JsonlWriter(ctx.config.data_bucket, output_key)
    counts = {"records": 0, "predictions": 0, "errors": 0}
    tokens = [0, 0]
    realtime_tokens = [0, 0]  # (of which InvokeModel's, billed at on-demand prices)
    started = time.perf_counter()
    by_index: dict[int, list[Job]] = {}
    for shard in shards:
        by_index.setdefault(int(shard.extra.get("shard", 0)), []).append(shard)
    try:
        for index in sorted(by_index):
            attempts = sorted(by_index[index], key=lambda s: int(s.extra.get("attempt", 1)))
            merged: dict[str, tuple[Any, dict[str, str] | None]] = {}
            for attempt in attempts:
                got = _collected_outcomes(attempt, target)
                tokens[0] += got.input_tokens
                tokens[1] += got.output_tokens
                if attempt.extra.get("realtime"):
                    realtime_tokens[0] += got.input_tokens
                    realtime_tokens[1] += got.output_tokens
                for key, value in got.lines.items():
                    if value[1] is None or key not in merged or merged[key][1] is not None:
                        merged[key] = value  # a later success (or a later error) replaces an error
            last = attempts[-1]
            ended = str(last.extra.get("backend_status") or last.status)
            if last.error:  # the service's reason, so the owner learns what to fix
                ended += f" ({last.error})"
            index_key = str(attempts[0].extra["index_key"])
            for entry in read_index(s3.iter_lines(ctx.config.data_bucket, index_key)):
                counts["records"] += 1
                record_id = entry.get("id")
                if "error" in entry:
                    writer.write(error_line(record_id, entry["error"]["code"], entry["error"]["message"]))
                    counts["errors"] += 1
                    continue
                prediction, error = merged.get(str(entry["rid"]), (None, None))
                if error is None and prediction is None and str(entry["rid"]) not in merged:
                    error = {
                        "code": "not_processed",
                        "message": f"the batch job ended {ended} without this record",
                    }
                if error is not None:
                    message = error["message"]
                    if target.kind == "sagemaker":  # the container numbers a request's lines
                        message = _named_by_id(message, record_id)
                    writer.write(error_line(record_id, error["code"], message))
                    counts["errors"] += 1
                else:
                    writer.write(prediction_line(record_id, prediction))
                    counts["predictions"] += 1
        superseded = superseded_now(parent, source.bucket, source.key)
        if superseded:  # uploaded again while the batch ran: the newer job publishes
            writer.abort()
            _fail_parent(parent, f"superseded: {superseded}", ctx, allowed_from=("MERGING",))
            return counts
        writer.close()
    except BaseException:
        writer.abort()
        ctx.jobs.transition(parent.job_id, "SUBMITTED", allowed_from=("MERGING",))
        raise
    summary = _file_summary(
        parent,
        "COMPLETED",
        counts,
        ctx,
        backend=target.kind,
        model_version=target.version,
        output=s3_uri(ctx.config.data_bucket, output_key),
        cost=_cost(target, tokens, realtime_tokens, shards, ctx.config),
        extra={
            "shards": len(by_index),
            "retries": sum(1 for s in shards if int(s.extra.get("attempt", 1)) > 1),
            "tokens": {"input": tokens[0], "output": tokens[1]},
        },
        merge_seconds=round(time.perf_counter() - started, 3),
    )
    put_summary(ctx.config.data_bucket, summary_key, summary)
    finish(
        ctx.jobs,
        parent.job_id,
        "COMPLETED",
        ctx.config,
        allowed_from=("MERGING",),
        fields={
            **counts,
            "output": summary["output"],
            "summary": s3_uri(ctx.config.data_bucket, summary_key),
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
        },
    )
    logger.info("batch file merged", extra={"job_id": parent.job_id, **counts})
    count_file("completed", counts)
    return counts


def _cost(
    target: Target, tokens: list[int], realtime: list[int], shards: list[Job], config: Settings
) -> dict[str, Any]:
    """The estimate: Bedrock's tokens at its batch prices (half of on-demand), except those of
    the records run one by one with InvokeModel (``realtime``, part of ``tokens``), which are
    billed at on-demand prices. SageMaker bills instance time, at a price sinfer does not keep:
    the estimate is the instance time, at most (each job from its submission to its collection,
    so instance start-up and the event's delivery included)."""
    if target.kind == "bedrock" and target.entry is not None:
        from sinfer.batch.bedrock.families import PRICES_AS_OF, estimate_cost

        model_id = target.entry.model_id
        batch = estimate_cost(model_id, tokens[0] - realtime[0], tokens[1] - realtime[1], batch=True)
        on_demand = estimate_cost(model_id, realtime[0], realtime[1], batch=False)
        usd = None if batch is None or on_demand is None else round(batch + on_demand, 8)
        basis = f"Bedrock token prices as of {PRICES_AS_OF}: batch jobs' at 50% of on-demand"
        if any(realtime):
            basis += (
                f", InvokeModel's ({realtime[0]:,} input and {realtime[1]:,} output tokens, for "
                "records under the batch minimum) at on-demand"
            )
        return {"usd": usd, "basis": basis}
    spans = [
        _seconds_between(
            str(shard.extra.get("submitted_at") or ""), str(shard.extra.get("collected_at") or "")
        )
        for shard in shards
    ]
    ran = [span for span in spans if span is not None and span > 0]  # (jobs that were submitted)
    hours, jobs = round(sum(ran) / 3600, 4), len(ran)
    instance = config.sagemaker_instance_type
    return {
        "usd": None,
        "instance_hours_at_most": hours,
        "basis": f"SageMaker Batch Transform bills instance time: at most {hours:g} hours of one "
        f"{instance} ({jobs} jobs, each from its submission to its collection); multiply by that "
        "instance's price in your region",
    }


def _file_summary(
    parent: Job,
    status: str,
    counts: dict[str, int],
    ctx: Context,
    *,
    backend: str,
    model_version: str,
    output: str | None,
    cost: dict[str, Any],
    extra: dict[str, Any] | None = None,
    merge_seconds: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A batch file's summary: the keys of s3_ingest's (``jobs.ingest._summary``), so that one
    reader takes both, then what only batch has (shards, retries, tokens, the merge's time)."""
    finished = now_iso()
    timings: dict[str, Any] = {
        "created_at": parent.created_at,
        "started_at": parent.created_at,
        "finished_at": finished,
        "seconds": _seconds_between(parent.created_at, finished),
    }
    if merge_seconds is not None:
        timings["merge_seconds"] = merge_seconds
    return {
        "job_id": parent.job_id,
        "status": status,
        "model": parent.model,
        "model_version": model_version or None,
        "input": parent.input,
        "input_version": parent.input_version or None,
        "output": output,
        "counts": counts,
        "records_match": records_match(counts),
        "timings": timings,
        "backend": backend if not isinstance(ctx.backend, LocalBackend) else f"local ({backend} emulator)",
        **(extra or {}),
        "cost_estimate": cost,
        "error": error,
    }


def _seconds_between(start: str, end: str) -> float | None:
    from datetime import datetime

    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return None


def _fail_parent(
    job: Job, message: str, ctx: Context, allowed_from: tuple[str, ...] = ("ROUTED", "SUBMITTED")
) -> None:
    """FAILED, with a FAILED summary where the file's results would be, as s3_ingest writes one
    (the job record and notification point there). Not for a superseded file: its output keys
    belong to the newer version's job."""
    from sinfer.jobs.ingest import finish, put_summary

    fields: dict[str, Any] = {"error": message}
    if not message.startswith("superseded:"):
        summary_key = output_keys(s3.S3Uri.parse(job.input).key, ctx.config)[1]
        summary = _file_summary(
            job,
            "FAILED",
            {"records": 0, "predictions": 0, "errors": 0},
            ctx,
            backend=job.backend,
            model_version=job.model_version,
            output=None,
            cost={"usd": None, "basis": "no batch job ran: the file failed before one was submitted"},
            error=message,
        )
        put_summary(ctx.config.data_bucket, summary_key, summary)
        fields["summary"] = s3_uri(ctx.config.data_bucket, summary_key)
    finish(ctx.jobs, job.job_id, "FAILED", ctx.config, allowed_from=allowed_from, fields=fields)
    details = {"job_id": job.job_id, "input": job.input, "error": message}
    if message.startswith("superseded:"):
        logger.info("batch file superseded: the newer upload's job publishes", extra=details)
        count_file("superseded")
        return
    # A missing role or image, or submissions that never finish, are the deployment's fault;
    # an unreadable, missing or too large file, or an unknown model, the input's.
    if message.startswith(("not_configured:", "submit_failed:")):
        logger.error("batch file failed", extra=details)
        # (the alarm's metric: a bad input is its owner's to fix, and reported to them)
        count("FilesFailedByDeployment")
    else:
        logger.warning("batch file failed", extra=details)
    count_file("failed")


# --- sweeper ---------------------------------------------------------------------------------------


def sweep(ctx: Context | None = None) -> dict[str, int]:
    """Reconcile what events missed: poll in-flight shards, re-drive stuck ones, finish merges.

    One file's trouble (a backend error, its model gone from the store) is logged, counted in
    ``failed`` and skipped: it must not stop the sweep from reconciling every other file, now
    and at every later run.
    """
    ctx = ctx or Context.default()
    found = {"polled": 0, "collected": 0, "requeued": 0, "merged": 0, "submitted": 0, "failed": 0}
    targets: dict[str, Target] = {}

    def target_of(parent: Job) -> Target:
        if parent.job_id not in targets:
            targets[parent.job_id] = target_for(parent, ctx)
        return targets[parent.job_id]

    stale = time.time() - STUCK_SECONDS
    for shard in ctx.jobs.by_status("COLLECTING"):
        if _stuck(shard, stale) and ctx.jobs.transition(
            shard.job_id, "SUBMITTED", allowed_from=("COLLECTING",)
        ):
            found["requeued"] += 1  # its collector died midway: poll and collect it again, below
    for shard in ctx.jobs.by_status("SUBMITTED"):
        parent = ctx.jobs.get(str(shard.extra["parent"])) if "parent" in shard.extra else None
        if parent is None:
            continue
        found["polled"] += 1
        try:
            found["collected"] += _poll(shard, target_of(parent), stale, ctx)
        except Exception:
            logger.exception("sweeper: cannot reconcile a shard", extra={"shard": shard.job_id})
            found["failed"] += 1
    for shard in ctx.jobs.by_status("SUBMITTING"):
        if _stuck(shard, stale) and ctx.jobs.transition(shard.job_id, "QUEUED", allowed_from=("SUBMITTING",)):
            found["requeued"] += 1  # its submission died midway; resubmitting is idempotent
    for parent in ctx.jobs.by_status("ROUTED", "files"):
        found["submitted"] += 1
        try:
            submit(parent.job_id, ctx)
        except Exception:
            logger.exception("sweeper: cannot submit a file", extra={"job_id": parent.job_id})
            found["failed"] += 1
    lanes: dict[str, Target] = {}
    for parent in ctx.jobs.by_status("SUBMITTED", "files"):
        try:
            target = target_of(parent)
            lanes.setdefault(target.lane, target)
            found["merged"] += int(maybe_merge(parent.job_id, ctx))
        except Exception:
            logger.exception("sweeper: cannot merge a file", extra={"job_id": parent.job_id})
            found["failed"] += 1
    for parent in ctx.jobs.by_status("MERGING", "files"):
        if int(parent.lease_until or 0) < time.time() and ctx.jobs.transition(
            parent.job_id, "SUBMITTED", allowed_from=("MERGING",)
        ):
            try:
                found["merged"] += int(maybe_merge(parent.job_id, ctx))
            except Exception:
                logger.exception("sweeper: cannot merge a file", extra={"job_id": parent.job_id})
                found["failed"] += 1
    for target in lanes.values():
        try:
            dispatch(target, ctx)
        except Exception:
            logger.exception("sweeper: cannot start queued shards", extra={"lane": target.lane})
            found["failed"] += 1
    _drain(ctx)
    return found


def _poll(shard: Job, target: Target, stale: float, ctx: Context) -> int:
    """Ask the backend about one in-flight shard and collect it if it ended (1 if collected)."""
    if shard.extra.get("realtime"):
        # A remainder runs inside submit (or a collector) for minutes: only one untouched for
        # longer than that died midway. Run it again (its outputs are overwritten).
        if not _stuck(shard, stale):
            return 0
        return int(_run_realtime(shard.job_id, target, ctx))
    backend = ctx.backend_for(target)
    status, message = backend.status(shard)
    if not StateChange(target.kind, shard.job_id, status, message).terminal:
        if isinstance(backend, SageMakerBackend | LocalBackend) and target.kind == "sagemaker":
            _stop_if_overdue(shard, backend, ctx)
        return 0
    return int(_finish_shard(shard, status, message, target, ctx, allowed_from=("SUBMITTED",)))


def _stop_if_overdue(shard: Job, backend: SageMakerBackend | LocalBackend, ctx: Context) -> None:
    """Batch Transform has no job timeout: stop one running past SAGEMAKER_TIMEOUT_HOURS, once.
    It ends Stopped, and is collected as any stopped job (its records retried, then reported)."""
    hours = ctx.config.sagemaker_timeout_hours
    started = str(shard.extra.get("submitted_at") or "")
    if not started or shard.extra.get("stop_requested_at") or time.time() - _epoch(started) < hours * 3600:
        return
    reason = f"stopped by sinfer: still running after SAGEMAKER_TIMEOUT_HOURS ({hours} h)"
    logger.warning("transform job overdue: stopping it", extra={"shard": shard.job_id, "hours": hours})
    # (recorded first: the Stopped event may be collected before this returns)
    fields = {"stop_requested_at": now_iso(), "stop_reason": reason}
    if not ctx.jobs.transition(shard.job_id, "SUBMITTED", allowed_from=("SUBMITTED",), fields=fields):
        return  # collected meanwhile
    try:
        backend.stop(shard)
    except Exception:
        # asked again at the next sweep
        again = {"stop_requested_at": "", "stop_reason": ""}
        ctx.jobs.transition(shard.job_id, "SUBMITTED", allowed_from=("SUBMITTED",), fields=again)
        raise


def _stuck(job: Job, before: float) -> bool:
    updated = str(job.updated_at or "")
    return bool(updated) and _epoch(updated) < before


def _epoch(stamp: str) -> float:
    from datetime import UTC, datetime

    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
