"""Batch backends behind one small interface: Bedrock, SageMaker, and the local emulator.

A backend submits one shard (one input file) as one job named after the shard's job id, so
resubmitting is idempotent (Bedrock's ``clientRequestToken``; SageMaker's unique job names)
and a state-change event names the shard it belongs to. It can also tell a shard's status,
for the sweeper that reconciles jobs whose events never arrived.

The local backend (``BATCH_BACKEND=local``) is an emulator, and says so: Bedrock-format shards
are answered by the deterministic per-family stand-in of :mod:`sinfer.batch.bedrock.emulator`;
SageMaker-format shards are run by driving the real ``sinfer serve --sagemaker`` app over HTTP
on loopback, in mini-batches of lines, as Batch Transform does. Both write the real output
layout and then emit the same EventBridge events the services would.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sinfer.aws import bedrock as bedrock_api
from sinfer.aws import s3
from sinfer.aws import sagemaker as sagemaker_api
from sinfer.batch.bedrock.entry import BedrockEntry
from sinfer.config import Settings
from sinfer.jobs.types import Job
from sinfer.observability import logger

if TYPE_CHECKING:
    from pathlib import Path

    from sinfer.inference.model import LoadedModel

EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Target:
    """What a file's shards run on."""

    kind: str  # "bedrock" or "sagemaker"
    model: str
    version: str
    lane: str  # the quota this shard counts against
    entry: BedrockEntry | None = None


class Backend(Protocol):
    name: str

    def submit(self, shard: Job, target: Target) -> str:
        """Start the shard's job; returns the backend's job id (ARN or name)."""

    def status(self, shard: Job) -> tuple[str, str]:
        """The backend's status for the shard's job, and its message."""


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class BedrockBackend:
    name = "bedrock"

    def __init__(self, config: Settings) -> None:
        self.config = config

    def submit(self, shard: Job, target: Target) -> str:
        assert target.entry is not None
        return bedrock_api.create_job(
            name=shard.job_id,
            token=shard.job_id,
            model_id=target.entry.model_id,
            role_arn=self.config.bedrock_role_arn,
            input_uri=shard.input,
            output_uri=shard.output,
            timeout_hours=self.config.bedrock_timeout_hours,
            kms_key_id=self.config.bedrock_kms_key_id,
        )

    def status(self, shard: Job) -> tuple[str, str]:
        job = bedrock_api.get_job(str(shard.extra.get("backend_job") or shard.job_id))
        return job.status, job.message


@dataclass(frozen=True, slots=True)
class ModelPackage:
    """A model version as SageMaker takes it: ``model.tar.gz`` (model.onnx + the store's model.json)."""

    uri: str
    model_name: str  # the SageMaker model serving it


def model_package_key(config: Settings, model: str, version: str, digest: str) -> str:
    return f"{config.batch_prefix}models/{model}/{version}/{digest}/model.tar.gz"


def sagemaker_model_name(model: str, version: str, digest: str) -> str:
    """``sinfer-<model>-<version>-<digest>`` within SageMaker's 63 characters (the digest kept)."""
    safe = "".join(c if c.isalnum() else "-" for c in f"sinfer-{model}-{version}")
    return f"{safe[: 62 - len(digest)].strip('-')}-{digest}"


def model_package(config: Settings, model: str, version: str) -> ModelPackage:
    """The package of a store's model version, uploaded under ``batch/`` once per content.

    The package holds the model.json the store holds (not one found beside the cached
    model.onnx: an S3 store's cache has none), so the container verifies the same sha256 pin
    and applies the same preprocessing and labels as the functions. Its key and SageMaker model
    name carry a digest of both files: a version republished with other content gets a new
    package and model, where one named after the version alone would be reused for good.

    Each shard's submission asks for it. A pinned model (what ``sinfer models publish``
    writes) is named by its pin, so only a missing package costs a fetch; an unpinned one must
    be fetched and hashed to be named, once per process for the same model.json.
    """
    import hashlib

    from sinfer.errors import ModelNotReadyError
    from sinfer.inference.registry import default_registry

    store = default_registry().store
    raw = store.read_manifest(model, version)
    manifest = None if raw is None else (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()
    pin = raw.get("sha256") if isinstance(raw, dict) and isinstance(raw.get("sha256"), str) else None
    files = None
    if pin is not None:
        onnx_sha256 = pin.lower()
    else:
        onnx_sha256, files = _unpinned_sha256(store, model, version, manifest)
    digest = hashlib.sha256(onnx_sha256.encode() + b"\n" + (manifest or b"")).hexdigest()[:16]
    key = model_package_key(config, model, version, digest)
    if not s3.exists(config.data_bucket, key):
        files = files or store.fetch(model, version)  # (a pin is verified here)
        if pin is not None and (files.manifest.sha256 or "").lower() != onnx_sha256:
            raise ModelNotReadyError(
                f"model {model!r} version {version!r} was republished while it was being packaged "
                "(the shard fails, and its records are retried in a new one)"
            )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(files.onnx_path, arcname="model.onnx", filter=_readable_by_all)
            if manifest is not None:
                info = _readable_by_all(tarfile.TarInfo("model.json"))
                info.size = len(manifest)
                tar.addfile(info, io.BytesIO(manifest))
        s3.put_bytes(config.data_bucket, key, buffer.getvalue(), "application/gzip")
    return ModelPackage(s3_uri(config.data_bucket, key), sagemaker_model_name(model, version, digest))


def _readable_by_all(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A package member as SageMaker should unpack it: root's, readable by every user.

    The cached model.onnx is a temporary file's (mode 0600, the function's user): kept as it
    is, the container's own user (uid 10001, containers/sagemaker/Dockerfile) could not read
    it once unpacked into /opt/ml/model.
    """
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


_unpinned: dict[tuple[str, str, str, bytes | None], tuple[str, Any]] = {}


def _unpinned_sha256(store: Any, model: str, version: str, manifest: bytes | None) -> tuple[str, Any]:
    """An unpinned model.onnx's sha256 (and its fetched files), once per process and model.json."""
    from sinfer.model.store import sha256_file

    key = (str(store.uri), model, version, manifest)
    found = _unpinned.get(key)
    if found is None:
        files = store.fetch(model, version)
        found = _unpinned[key] = (sha256_file(files.onnx_path), files)
    return found


class SageMakerBackend:
    name = "sagemaker"

    def __init__(self, config: Settings) -> None:
        self.config = config

    def submit(self, shard: Job, target: Target) -> str:
        package = model_package(self.config, target.model, target.version)
        sagemaker_api.ensure_model(
            package.model_name, self.config.sagemaker_image_uri, package.uri, self.config.sagemaker_role_arn
        )
        return sagemaker_api.create_transform_job(
            name=shard.job_id,
            model_name=package.model_name,
            input_uri=shard.input,
            output_uri=shard.output,
            instance_type=self.config.sagemaker_instance_type,
            max_payload_mb=self.config.sagemaker_max_payload_mb,
        )

    def status(self, shard: Job) -> tuple[str, str]:
        job = sagemaker_api.describe_transform_job(shard.job_id)
        return job.status, job.message

    def stop(self, shard: Job) -> None:
        sagemaker_api.stop_transform_job(shard.job_id)


def bedrock_event(name: str, arn: str, status: str, message: str = "") -> dict[str, Any]:
    """A "Batch Inference Job State Change" event as EventBridge delivers it."""
    return {
        "version": "0",
        "id": f"local-{name}-{status}",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "version": "0.0",
            "accountId": "123456789012",
            "batchJobName": name,
            "batchJobArn": arn,
            "status": status,
            "failureMessage": message,
        },
    }


def sagemaker_event(name: str, status: str, message: str = "") -> dict[str, Any]:
    """A "SageMaker Transform Job State Change" event (its times are epoch milliseconds)."""
    detail: dict[str, Any] = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}",
        "TransformJobStatus": status,
        "CreationTime": 1767225600000,
        "TransformEndTime": 1767225660000,
    }
    if message:
        detail["FailureReason"] = message
    return {
        "version": "0",
        "id": f"local-{name}-{status}",
        "detail-type": "SageMaker Transform Job State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-01-01T00:01:00Z",
        "region": "us-east-1",
        "resources": [detail["TransformJobArn"]],
        "detail": detail,
    }


class _LocalTransformServer:
    """The real SageMaker container app (``sinfer serve --sagemaker``), on a loopback port,
    serving what a transform job's container would: the model package, unpacked as SageMaker
    unpacks it into ``/opt/ml/model`` and loaded as the container loads it."""

    _lock = threading.Lock()
    _servers: dict[tuple[str, int], str] = {}  # (package URI, payload limit) → base URL

    @classmethod
    def url_for(cls, config: Settings, target: Target) -> str:
        package = model_package(config, target.model, target.version)
        # The job's MaxPayloadInMB reaches a real container as SAGEMAKER_MAX_PAYLOAD_IN_MB.
        key = (package.uri, payload_limit(config))
        with cls._lock:
            if key not in cls._servers:
                cls._servers[key] = cls._serve(package, key[1])
            return cls._servers[key]

    @staticmethod
    def _serve(package: ModelPackage, payload_limit: int) -> str:
        import atexit
        import shutil
        import tempfile
        from pathlib import Path

        from sinfer.sagemaker.server import start_in_thread

        folder = Path(tempfile.mkdtemp(prefix="sinfer-transform-model-"))
        atexit.register(shutil.rmtree, folder, True)
        source = s3.S3Uri.parse(package.uri)
        model = unpacked_model(s3.get_bytes(source.bucket, source.key), folder)
        return start_in_thread(model, payload_limit=payload_limit)


def payload_limit(config: Settings) -> int:
    """The most bytes one /invocations body may hold: ``SAGEMAKER_MAX_PAYLOAD_MB``, in MiB."""
    return config.sagemaker_max_payload_mb * 1024 * 1024


def unpacked_model(package: bytes, folder: Path) -> LoadedModel:
    """A ``model.tar.gz`` unpacked into ``folder`` as SageMaker unpacks it into /opt/ml/model,
    and loaded as the container loads it."""
    from sinfer.sagemaker.server import locate_model

    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
    return locate_model(folder).load()


class LocalBackend:
    """Emulator of both services (named as one in every event id and log line)."""

    name = "local"

    def __init__(self, config: Settings, sink: EventSink | None = None) -> None:
        self.config = config
        self.sink = sink
        self.pending: list[dict[str, Any]] = []  # events waiting for a collector, without a sink
        self._status: dict[str, tuple[str, str]] = {}

    def _emit(self, event: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(event)
        else:
            self.pending.append(event)

    def submit(self, shard: Job, target: Target) -> str:
        logger.info("local batch emulator: running shard", extra={"shard": shard.job_id, "kind": target.kind})
        if target.kind == "bedrock":
            return self._bedrock(shard, target)
        return self._sagemaker(shard, target)

    def _bedrock(self, shard: Job, target: Target) -> str:
        from sinfer.batch.bedrock.emulator import EmulatedJobError, run_local_job

        assert target.entry is not None
        arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{shard.job_id}"
        try:
            run_local_job([shard.input], shard.output, shard.job_id, target.entry)
            status, message = "Completed", ""
        except EmulatedJobError as exc:
            status, message = "Failed", str(exc)
        self._status[shard.job_id] = (status, message)
        self._emit(bedrock_event(shard.job_id, arn, status, message))
        return arn

    def _sagemaker(self, shard: Job, target: Target) -> str:
        source = s3.S3Uri.parse(shard.input)
        out = s3.S3Uri.parse(shard.output.rstrip("/") + "/" + source.key.rsplit("/", 1)[-1] + ".out")
        from sinfer.records import S3JsonlWriter

        writer = S3JsonlWriter(out.bucket, out.key)
        limit = payload_limit(self.config)
        batch: list[bytes] = []
        size = 0
        try:
            # A package whose model does not load fails the job, as it fails a transform job.
            url = _LocalTransformServer.url_for(self.config, target)
            for raw in s3.iter_lines(source.bucket, source.key):
                line = raw if raw.endswith(b"\n") else raw + b"\n"  # (sized as it is sent)
                if batch and size + len(line) > limit:
                    _post_lines(url, batch, writer)
                    batch, size = [], 0
                batch.append(line)
                size += len(line)
            if batch:
                _post_lines(url, batch, writer)
            writer.close()
            status, message = "Completed", ""
        except Exception as exc:
            writer.abort()
            status, message = "Failed", f"local transform failed: {exc}"
        self._status[shard.job_id] = (status, message)
        self._emit(sagemaker_event(shard.job_id, status, message))
        return shard.job_id

    def status(self, shard: Job) -> tuple[str, str]:
        return self._status.get(shard.job_id, ("InProgress", ""))

    def stop(self, shard: Job) -> None:
        """As StopTransformJob: a job still running ends Stopped (one that ended stays as it is)."""
        if self.status(shard)[0] == "InProgress":
            self._status[shard.job_id] = ("Stopped", "")
            self._emit(sagemaker_event(shard.job_id, "Stopped"))


def _post_lines(url: str, lines: list[bytes], writer: Any) -> None:
    """One /invocations call with several lines, as BatchStrategy MultiRecord sends them."""
    request = urllib.request.Request(  # noqa: S310 - a loopback URL of our own server
        url + "/invocations",
        data=b"".join(lines),
        method="POST",
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
        body = response.read()
    answers = [line for line in body.split(b"\n") if line]
    if len(answers) != len(lines):
        raise RuntimeError(f"the container answered {len(answers)} lines for {len(lines)}")
    for answer in answers:
        writer.write(answer + b"\n")


def realtime_bedrock(shard: Job, entry: BedrockEntry, config: Settings, *, emulate: bool) -> tuple[int, int]:
    """Run a shard under Bedrock's job minimum record by record (InvokeModel, or the emulator).

    Writes ``<output>/realtime/input.jsonl.out`` in Bedrock's batch output format, so the
    collector reads it like any job's output. Returns (successes, errors).
    """
    from sinfer.batch.bedrock.families import batch_output_line
    from sinfer.records import S3JsonlWriter

    source = s3.S3Uri.parse(shard.input)
    out = s3.S3Uri.parse(shard.output.rstrip("/") + "/realtime/input.jsonl.out")
    writer = S3JsonlWriter(out.bucket, out.key)
    ok = errors = 0
    try:
        for raw in s3.iter_lines(source.bucket, source.key):
            if not raw.strip():
                continue
            line = json.loads(raw)
            rid, model_input = line["recordId"], line["modelInput"]
            try:
                if emulate:
                    from sinfer.batch.bedrock.emulator import emulate as run

                    output = run(entry, model_input)
                else:
                    output = bedrock_api.invoke_model(entry.model_id, model_input)
                writer.write(batch_output_line(rid, model_input, output))
                ok += 1
            except Exception as exc:  # a record the model refused: an error line, like a batch job's
                writer.write(batch_output_line(rid, model_input, error=(_error_code(exc), str(exc)[:1000])))
                errors += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return ok, errors


def _error_code(exc: Exception) -> int | str:
    """An InvokeModel failure as a batch output line's ``errorCode``: the HTTP status when known.

    Batch jobs report record errors by HTTP status, and the collector decides from that status
    whether a retry can help (a 400 cannot); a realtime error must read the same way. The
    service's error name stays in the message.
    """
    code = getattr(exc, "code", None)  # the emulator's EmulatedModelError carries the status
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int) and status:
        return status
    return str(response.get("Error", {}).get("Code") or "InvokeModelError")
