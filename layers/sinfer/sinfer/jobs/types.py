"""Job and summary shapes shared by the API, s3_ingest, the batch functions and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

JobStatus = Literal[
    "PENDING",  # waiting for an upload (POST /jobs with "upload")
    "QUEUED",  # waiting to run: a file for s3_ingest, or a batch shard for a free quota slot
    "RUNNING",  # s3_ingest holds it
    "ROUTED",  # too large for Lambda: handed to batch_submit
    "SUBMITTING",  # a shard being submitted to its backend
    "SUBMITTED",  # a file whose shards are out / a shard its backend is running
    "COLLECTING",  # a finished shard whose outputs are being read
    "MERGING",  # all shards done: the merged results are being written
    "COMPLETED",
    "FAILED",
]
TERMINAL: frozenset[str] = frozenset({"COMPLETED", "FAILED"})
Backend = Literal["lambda", "sagemaker", "bedrock", "local"]
# What POST /jobs may ask for. "lambda": run in s3_ingest whatever the size; "batch": hand to a
# batch service, which the model decides (Bedrock for a foundation-model entry, SageMaker Batch
# Transform for an ONNX model); "sagemaker" and "bedrock" say the same as "batch" where they name
# that service; "local" too (the embedded stack's emulator, where BATCH_BACKEND=local).
RequestedBackend = Literal["lambda", "batch", "sagemaker", "bedrock", "local"]
BACKENDS: tuple[str, ...] = get_args(RequestedBackend)  # (what the API and the CLI accept)


@dataclass(slots=True)
class Job:
    job_id: str
    model: str
    status: JobStatus
    input: str = ""
    input_version: str = ""
    output: str = ""
    summary: str = ""
    model_version: str = ""
    backend: str = "lambda"
    requested_backend: str = ""
    records: int = 0
    predictions: int = 0
    errors: int = 0
    error: str = ""
    created_at: str = ""
    updated_at: str = ""
    lease_until: int = 0
    owner: str = ""
    attempts: int = 0
    expires_at: int = 0  # epoch seconds: the table's TTL attribute
    extra: dict[str, Any] = field(default_factory=dict)

    def to_item(self) -> dict[str, Any]:
        item = asdict(self)
        extra = item.pop("extra")
        item.update(extra)
        return {k: v for k, v in item.items() if v not in ("", None)}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        known = set(cls.__dataclass_fields__) - {"extra"}
        values = {k: _plain(v) for k, v in item.items() if k in known}
        extra = {k: _plain(v) for k, v in item.items() if k not in known}
        return cls(**values, extra=extra)

    def public(self) -> dict[str, Any]:
        """What GET /jobs/{id} and notifications show (no lease bookkeeping)."""
        doc = {
            "job_id": self.job_id,
            "status": self.status,
            "model": self.model,
            "model_version": self.model_version or None,
            "backend": self.backend,
            "input": self.input or None,
            "output": self.output or None,
            "summary": self.summary or None,
            "counts": {"records": self.records, "predictions": self.predictions, "errors": self.errors},
            "error": self.error or None,
            "route_reason": self.extra.get("route_reason"),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        return doc


def _plain(value: Any) -> Any:
    """DynamoDB returns Decimal for numbers; jobs only store integers."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def object_job_id(bucket: str, key: str, version: str) -> str:
    """The same object version always maps to the same job (S3 delivers at least once)."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()
    return f"s3-{digest[:32]}"


def superseded_by(job: Job, head: dict[str, Any]) -> str:
    """Why the job's object version is no longer its key's latest (a HeadObject answer), or "".

    Every version of a key writes the same output key, so only the latest may publish results:
    an older version yields to the newer one, whose own event brings its own job (with
    versioning, as the template configures; without it the ETag tells an overwrite).
    """
    wanted = job.input_version
    version = str(head.get("VersionId") or "")
    etag = str(head.get("ETag") or "").strip('"')
    if not wanted or wanted in (version, etag):
        return ""
    latest = version if version and version != "null" else etag  # "null": written before versioning
    return f"version {wanted} of {job.input} is superseded by {latest}, whose own job writes the results"
