"""The SageMaker Batch Transform path against moto (CreateModel, CreateTransformJob, DescribeTransformJob).

moto records the transform jobs sinfer creates but runs nothing, so :func:`run_transform` plays
the part of the job: it unpacks the job's model package as SageMaker does, loads it as the
container does, feeds each shard's input to the container's own request handling
(:func:`sinfer.sagemaker.codec.transform`, what ``/invocations`` runs) and writes
``<output>/input.jsonl.out``, one line per input line, as ``AssembleWith=Line`` does. The
merged results are then compared with the ONNX model's direct predictions on the same file.
moto marks every transform job Completed at once; where a test needs another status for the
sweeper to find, it sets it on moto's record of the job.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber
from sklearn.datasets import load_digits

import sinfer.aws.s3
from sinfer.aws.clients import set_client
from sinfer.aws.s3 import S3Uri
from sinfer.batch import orchestrator
from sinfer.batch.backends import model_package, unpacked_model
from sinfer.batch.handlers import handle_collect
from sinfer.config import Settings
from sinfer.inference.batch import predict_records
from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import default_registry, reset_default_registry
from sinfer.jobs.store import JobStore
from sinfer.jobs.types import Job
from sinfer.records import error_line, prediction_line, read_records
from sinfer.sagemaker.codec import transform
from tests.conftest import MODELS
from tests.functional.conftest import REGION, AwsStack, Configure, batch_event, routed_job

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sinfer-sagemaker:1"
ROLE = "arn:aws:iam::123456789012:role/sinfer-sagemaker"
KEY = "inputs/digits/scans.jsonl"
OUTPUT = "outputs/digits/scans.jsonl.predictions.jsonl"
SUMMARY = "outputs/digits/scans.jsonl.summary.json"
PACKAGES = "batch/models/digits/1/"


def scans(count: int, *, bad: bool = False) -> bytes:
    """``count`` digit images as JSON Lines; with ``bad``, a broken line and a 63-pixel image too."""
    rows = load_digits().data[:count]
    lines = [
        json.dumps({"id": f"scan-{i:03d}", "instance": [float(v) for v in row]}) for i, row in enumerate(rows)
    ]
    if bad:
        lines.insert(3, '{"id": "torn", "instance": [0.0, 1.0')
        lines.insert(7, json.dumps({"id": "short", "instance": [0.0] * 63}))
    return "".join(line + "\n" for line in lines).encode()


def direct(body: bytes) -> list[dict[str, Any]]:
    """What the ONNX model says about the same file, record by record, without any batch job."""
    model = default_registry().get("digits")
    lines = []
    for outcome in predict_records(model, read_records(io.BytesIO(body), KEY, None)):
        if outcome.error is None:
            lines.append(json.loads(prediction_line(outcome.record.id, outcome.prediction)))
        else:
            lines.append(json.loads(error_line(outcome.record.id, outcome.error.code, outcome.error.message)))
    return lines


def shard(aws: AwsStack, shard_id: str) -> Job:
    found = JobStore(aws.table).get(shard_id)
    assert found is not None, f"no shard {shard_id}"
    return found


def run_transform(
    aws: AwsStack,
    shard_id: str,
    *,
    lines: int | None = None,
    garbled: tuple[int, ...] = (),
    blank_every: int = 0,
) -> None:
    """What Batch Transform writes for a shard: the container's answer to each input line, in order.

    The container serves the job's model package (``ModelDataUrl`` of its SageMaker model),
    unpacked into a folder as SageMaker unpacks it into /opt/ml/model. ``lines`` cuts the output
    short (a job stopped before it finished the file; AWS says it uploads no partial file, so
    this is a file gone wrong), ``garbled`` replaces those lines with bytes that are no answer,
    and ``blank_every`` adds a blank line after every so many (AssembleWith=Line may end each
    response, itself newline-terminated, with a newline of its own).
    """
    job = shard(aws, shard_id)
    client = sagemaker(aws)
    model_name = client.describe_transform_job(TransformJobName=shard_id)["ModelName"]
    package = client.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    body = aws.get(S3Uri.parse(job.input).key)
    answers = transform(container_model(aws, package), body, "jsonl", "jsonl").splitlines(keepends=True)
    assert len(answers) == body.count(b"\n")
    answers = [b"\x00garbled\n" if i in garbled else answer for i, answer in enumerate(answers)]
    if blank_every:
        answers = [a + (b"\n" if (i + 1) % blank_every == 0 else b"") for i, a in enumerate(answers)]
    aws.put(S3Uri.parse(job.output).key + "input.jsonl.out", b"".join(answers[:lines]))


def container_model(aws: AwsStack, package_uri: str) -> LoadedModel:
    """The model a container loads from a package (the container's own locate_model)."""
    folder = Path(tempfile.mkdtemp(prefix="sinfer-test-opt-ml-model-"))
    return unpacked_model(aws.get(S3Uri.parse(package_uri).key), folder)


def deliver(shard_id: str, status: str = "completed", reason: str = "") -> dict[str, Any]:
    event = batch_event(f"sagemaker_{status}", shard_id)
    if reason:
        event["detail"]["FailureReason"] = reason
    return handle_collect(event)


def set_moto_status(shard_id: str, status: str, reason: str = "") -> None:
    """moto completes transform jobs at once; a test that needs another status sets it here."""
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends["123456789012"][REGION].transform_jobs[shard_id]
    job.transform_job_status = status
    job.failure_reason = reason


def sagemaker(aws: AwsStack) -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def env(aws: AwsStack, configure: Configure) -> Settings:
    return configure(
        BATCH_BACKEND="sagemaker",
        SAGEMAKER_IMAGE_URI=IMAGE,
        SAGEMAKER_ROLE_ARN=ROLE,
        SAGEMAKER_MAX_RECORDS=25,
        SAGEMAKER_MAX_PAYLOAD_MB=4,
        SAGEMAKER_INSTANCE_TYPE="ml.c5.xlarge",
    )


@pytest.fixture(params=["folder", "s3"])
def store(
    request: pytest.FixtureRequest, aws: AwsStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """The model store batch_submit packages from: the demo models' folder, or an S3 store as
    deployed (whose local cache holds model.onnx alone)."""
    if request.param == "s3":
        for name in ("model.onnx", "model.json"):
            aws.put(f"models/digits/1/{name}", (MODELS / "digits/1" / name).read_bytes())
        monkeypatch.setenv("MODEL_STORE", f"s3://{aws.bucket}/models/")
        monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
        reset_default_registry()
    return str(request.param)


def package_of(aws: AwsStack, model_name: str) -> str:
    """The key of a SageMaker model's package, checked to sit under the version's digest."""
    digest = model_name.removeprefix("sinfer-digits-1-")
    assert re.fullmatch(r"[0-9a-f]{16}", digest), model_name
    model = sagemaker(aws).describe_model(ModelName=model_name)
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{aws.bucket}/{PACKAGES}{digest}/model.tar.gz",
    }
    return f"{PACKAGES}{digest}/model.tar.gz"


def test_shards_become_transform_jobs_and_outputs_join_by_line(
    aws: AwsStack, env: Settings, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 60 digit scans (and two bad records) routed to batch, at most 25 records per job
    body = scans(60, bad=True)
    job_id = routed_job(aws, KEY, body, "digits")
    packaged: list[str] = []
    put_bytes = sinfer.aws.s3.put_bytes

    def spy(bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if key.endswith("model.tar.gz"):
            packaged.append(key)
        put_bytes(bucket, key, data, content_type)

    monkeypatch.setattr(sinfer.aws.s3, "put_bytes", spy)

    # WHEN batch_submit runs
    result = orchestrator.submit(job_id)

    # THEN 61 records were sent in 3 transform jobs (the torn line never was) ...
    assert result == {"job_id": job_id, "status": "SUBMITTED", "shards": 3, "records": 62}
    client = sagemaker(aws)
    for index, count in enumerate((25, 25, 11)):
        shard_id = f"{job_id}-s{index:04d}"
        assert shard(aws, shard_id).status == "SUBMITTED"
        assert shard(aws, shard_id).records == count
        described = client.describe_transform_job(TransformJobName=shard_id)
        work = f"s3://{aws.bucket}/batch/{job_id}/s{index:04d}/"
        assert described["ModelName"].startswith("sinfer-digits-1-")
        assert described["BatchStrategy"] == "MultiRecord"
        assert described["MaxPayloadInMB"] == 4
        assert described["TransformInput"] == {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": work + "input.jsonl"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        }
        assert described["TransformOutput"] == {
            "S3OutputPath": work + "output/",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        }
        assert described["TransformResources"] == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1}
    # ... all served by one SageMaker model whose package was made once, from the store's files:
    # model.onnx, and the store's model.json (an S3 store's cache has none beside model.onnx)
    names = {
        client.describe_transform_job(TransformJobName=f"{job_id}-s{index:04d}")["ModelName"]
        for index in range(3)
    }
    assert len(names) == 1
    model_name = names.pop()
    assert client.describe_model(ModelName=model_name)["ExecutionRoleArn"] == ROLE
    package = package_of(aws, model_name)
    assert packaged == [package]
    with tarfile.open(fileobj=io.BytesIO(aws.get(package)), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.onnx"]
        # readable by the container's own (non-root) user once unpacked: the S3 store's cached
        # model.onnx is a temporary file's, 0600, and was packaged so
        for member in tar.getmembers():
            assert (member.mode, member.uid, member.gid) == (0o644, 0, 0), member.name
        onnx, manifest = tar.extractfile("model.onnx"), tar.extractfile("model.json")
        assert onnx is not None
        assert manifest is not None
        digest = hashlib.sha256(onnx.read()).hexdigest()
        packaged_manifest = json.loads(manifest.read())
    assert digest == hashlib.sha256((MODELS / "digits/1/model.onnx").read_bytes()).hexdigest()
    assert packaged_manifest == json.loads((MODELS / "digits/1/model.json").read_text())

    # WHEN the three jobs finish, the last one first
    for index in (2, 0, 1):
        run_transform(aws, f"{job_id}-s{index:04d}")
        outcome = deliver(f"{job_id}-s{index:04d}")
        assert outcome["collected"] is True

    # THEN the merged file is exactly what the model says about the file directly
    assert outcome["merged"] is True
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))
    summary = aws.json(SUMMARY)
    assert summary["counts"] == {"records": 62, "predictions": 60, "errors": 2}
    assert summary["records_match"] is True
    assert summary["backend"] == "sagemaker"
    # the cost: instance time at most, from each job's submission to its collection
    cost = summary["cost_estimate"]
    shards = JobStore(aws.table).children(job_id)
    assert cost["usd"] is None
    assert 0 < cost["instance_hours_at_most"] * 3600 < 600
    assert (
        f"hours of one {env.sagemaker_instance_type} ({len(shards)} jobs, each from its submission"
        in cost["basis"]
    )
    assert [n["status"] for n in aws.notifications()] == ["COMPLETED"]
    # The container's verdict on the 63-pixel image is final: it is not retried
    assert not aws.keys(f"batch/{job_id}/s0000-r1/")


def assert_same_as_direct(merged: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [line["id"] for line in merged] == [line["id"] for line in expected]
    for got, want in zip(merged, expected, strict=True):
        # the same lines, error messages included: the merge names a record the container
        # named by its line in one request ("record 5") by the file's id, as s3_ingest does
        assert got == want


def test_a_republished_version_gets_a_new_package_and_model(
    aws: AwsStack, env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a store whose digits version 1 has been run on SageMaker once
    shutil.copytree(MODELS / "digits", tmp_path / "store" / "digits")
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    reset_default_registry()

    def model_of(key: str) -> str:
        job_id = routed_job(aws, key, scans(5), "digits")
        orchestrator.submit(job_id)
        name: str = sagemaker(aws).describe_transform_job(TransformJobName=f"{job_id}-s0000")["ModelName"]
        return name

    first = model_of("inputs/digits/a.jsonl")
    # WHEN the same content runs again, THEN the package and model are reused
    assert model_of("inputs/digits/b.jsonl") == first
    # WHEN the version is republished with another model.json (its labels renamed)
    manifest_path = tmp_path / "store" / "digits" / "1" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["labels"] = [f"digit {label}" for label in manifest["labels"]]
    manifest_path.write_text(json.dumps(manifest))
    reset_default_registry()
    second = model_of("inputs/digits/c.jsonl")
    # THEN the next job runs a new model from a new package that holds it
    assert second != first
    assert len(aws.keys(PACKAGES)) == 2
    model = container_model(aws, f"s3://{aws.bucket}/{package_of(aws, second)}")
    assert model.predict([load_digits().data[0].tolist()])[0]["label"] == "digit 0"


def test_a_missed_event_is_recovered_by_the_sweeper_from_describe_transform_job(
    aws: AwsStack, env: Settings
) -> None:
    # GIVEN a submitted file whose job is still running
    body = scans(20)
    job_id = routed_job(aws, KEY, body, "digits")
    orchestrator.submit(job_id)
    shard_id = f"{job_id}-s0000"
    set_moto_status(shard_id, "InProgress")

    # WHEN the sweeper runs, nothing is collected yet
    assert handle_collect({"action": "sweep"})["collected"] == 0
    assert shard(aws, shard_id).status == "SUBMITTED"

    # WHEN the job completes but its event never arrives, and the sweeper runs again
    run_transform(aws, shard_id)
    set_moto_status(shard_id, "Completed")
    found = handle_collect({"action": "sweep"})

    # THEN the sweeper collected and merged it, once
    assert found["collected"] == 1
    assert found["merged"] == 1
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))
    assert handle_collect({"action": "sweep"})["polled"] == 0
    assert len(aws.notifications()) == 1


def test_a_failed_transform_job_is_retried_as_a_new_job(aws: AwsStack, env: Settings) -> None:
    # GIVEN a submitted file of 20 scans
    body = scans(20)
    job_id = routed_job(aws, KEY, body, "digits")
    orchestrator.submit(job_id)
    first = f"{job_id}-s0000"

    # WHEN its job fails without writing anything
    deliver(first, "failed", "ClientError: See job logs for more information")

    # THEN the shard is FAILED and all 20 records went to a new job, -r1
    assert shard(aws, first).status == "FAILED"
    retry = f"{first}-r1"
    assert shard(aws, retry).status == "SUBMITTED"
    assert shard(aws, retry).extra["attempt"] == 2
    described = sagemaker(aws).describe_transform_job(TransformJobName=retry)
    retry_input = f"s3://{aws.bucket}/batch/{job_id}/s0000-r1/input.jsonl"
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == retry_input
    assert aws.get(f"batch/{job_id}/s0000-r1/input.jsonl") == aws.get(f"batch/{job_id}/s0000/input.jsonl")

    # WHEN the retry completes
    run_transform(aws, retry)
    assert deliver(retry)["merged"] is True

    # THEN nothing is lost: the results are the model's own
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))
    assert aws.json(SUMMARY)["retries"] == 1


def test_unreadable_answers_are_retried_alone_and_joined_right(aws: AwsStack, env: Settings) -> None:
    # GIVEN a submitted file of 10 scans (SageMaker joins by line position, not by id)
    body = scans(10)
    job_id = routed_job(aws, KEY, body, "digits")
    orchestrator.submit(job_id)
    first = f"{job_id}-s0000"

    # WHEN the job completes with lines 2 and 7 of its output unreadable
    run_transform(aws, first, garbled=(2, 7))
    deliver(first)

    # THEN only those 2 records are retried
    retry = f"{first}-r1"
    assert shard(aws, retry).records == 2
    sent = aws.lines(f"batch/{job_id}/s0000-r1/input.jsonl")
    original = aws.lines(f"batch/{job_id}/s0000/input.jsonl")
    assert sent == [original[2], original[7]]

    # WHEN the retry completes (its lines are numbered from 0 again), THEN each answer is
    # joined to its own record: the file matches the direct predictions
    assert_retry_completes_the_file(aws, retry, body)


def assert_retry_completes_the_file(aws: AwsStack, retry: str, body: bytes) -> None:
    run_transform(aws, retry)
    assert deliver(retry)["merged"] is True
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))


def test_a_stopped_job_with_part_of_its_output_is_retried_whole(aws: AwsStack, env: Settings) -> None:
    # GIVEN a submitted file of 10 scans
    body = scans(10)
    job_id = routed_job(aws, KEY, body, "digits")
    orchestrator.submit(job_id)
    first = f"{job_id}-s0000"

    # WHEN the job is stopped, and an output file of its first 6 answers is there all the same
    # (AWS uploads none for a file not transformed whole: this one cannot be trusted)
    run_transform(aws, first, lines=6)
    deliver(first, "stopped")

    # THEN the shard is retried whole, saying why
    retry = f"{first}-r1"
    assert shard(aws, retry).records == 10
    assert aws.lines(f"batch/{job_id}/s0000-r1/input.jsonl") == aws.lines(f"batch/{job_id}/s0000/input.jsonl")
    assert "its output held 6 lines for the 10 records sent" in shard(aws, first).error

    # WHEN the retry completes, THEN the file matches the direct predictions
    assert_retry_completes_the_file(aws, retry, body)


def test_blank_lines_between_the_containers_answers_are_not_answers(aws: AwsStack, env: Settings) -> None:
    # GIVEN a submitted file of 10 scans
    body = scans(10)
    job_id = routed_job(aws, KEY, body, "digits")
    orchestrator.submit(job_id)

    # WHEN its output has a blank line after every third answer
    run_transform(aws, f"{job_id}-s0000", blank_every=3)

    # THEN it is merged at once, each answer joined to its own record
    assert deliver(f"{job_id}-s0000")["merged"] is True
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))
    assert aws.json(SUMMARY)["retries"] == 0


def test_records_a_job_never_reached_are_reported_once_attempts_run_out(
    aws: AwsStack, env: Settings, configure: Configure
) -> None:
    # GIVEN one attempt per record, and a job that fails
    configure(BATCH_MAX_ATTEMPTS=1)
    job_id = routed_job(aws, KEY, scans(5), "digits")
    orchestrator.submit(job_id)
    set_moto_status(f"{job_id}-s0000", "Failed", "ClientError: the container exited")

    # WHEN the sweeper finds it (its event was missed)
    assert handle_collect({"action": "sweep"})["merged"] == 1

    # THEN every record is an error line saying it was never processed, and why
    lines = aws.lines(OUTPUT)
    assert [line["id"] for line in lines] == [f"scan-{i:03d}" for i in range(5)]
    assert {line["error"]["code"] for line in lines} == {"not_processed"}
    assert "Failed" in lines[0]["error"]["message"]
    assert "the container exited" in lines[0]["error"]["message"]
    assert aws.json(SUMMARY)["counts"] == {"records": 5, "predictions": 0, "errors": 5}
    assert not aws.keys(f"batch/{job_id}/s0000-r1/")


def test_a_transform_job_over_the_account_limit_waits_queued_for_the_sweeper(
    aws: AwsStack, env: Settings
) -> None:
    # GIVEN SageMaker refuses a new transform job: the account's instance limit is reached
    body = scans(12)
    job_id = routed_job(aws, KEY, body, "digits")
    refusing = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(refusing)
    model_name = model_package(env, "digits", "1").model_name
    model_arn = f"arn:aws:sagemaker:us-east-1:123456789012:model/{model_name}"
    stub.add_response(  # the model exists already
        "describe_model",
        {"ModelName": model_name, "ModelArn": model_arn, "CreationTime": "2026-01-01T00:00:00Z"},
        {"ModelName": model_name},
    )
    stub.add_client_error(
        "create_transform_job",
        "ResourceLimitExceeded",
        "The account-level service limit 'ml.c5.xlarge for transform job usage' is 4 Instances",
        http_status_code=400,
    )
    set_client("sagemaker", refusing)

    # WHEN the file is submitted
    with stub:
        orchestrator.submit(job_id)
    stub.assert_no_pending_responses()

    # THEN its shard waits as QUEUED
    assert shard(aws, f"{job_id}-s0000").status == "QUEUED"

    # WHEN an instance is free again and the sweeper runs
    set_client("sagemaker", sagemaker(aws))
    handle_collect({"action": "sweep"})

    # THEN the job is created; moto completes it at once, and the next sweep collects it
    assert shard(aws, f"{job_id}-s0000").status == "SUBMITTED"
    run_transform(aws, f"{job_id}-s0000")
    assert handle_collect({"action": "sweep"})["merged"] == 1
    assert_same_as_direct(aws.lines(OUTPUT), direct(body))


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.ones((3, 64), dtype=np.complex64), "got complex64 values shaped [64]"),
        (np.ones((3, 64), dtype="datetime64[D]"), "got datetime64[D] values"),
        (np.zeros(3, dtype=[(f"p{i}", "<f4") for i in range(64)]), "a structured row"),
    ],
    ids=["complex", "datetime", "structured"],
)
def test_npy_values_json_cannot_carry_are_error_records(
    aws: AwsStack, env: Settings, array: np.ndarray[Any, Any], expected: str
) -> None:
    # GIVEN an .npy of values no JSON line can carry to the container, routed to batch
    buffer = io.BytesIO()
    np.save(buffer, array)
    key = "inputs/digits/odd.npy"
    job_id = routed_job(aws, key, buffer.getvalue(), "digits")
    # WHEN batch_submit runs, THEN each record is an error line, as the model refuses it on
    # the other paths (it crashed with a TypeError, and the file's records were lost)
    orchestrator.submit(job_id)
    summary = aws.json("outputs/digits/odd.npy.summary.json")
    assert summary["counts"] == {"records": 3, "predictions": 0, "errors": 3}
    lines = aws.lines("outputs/digits/odd.npy.predictions.jsonl")
    assert [line["id"] for line in lines] == [0, 1, 2]
    assert {line["error"]["code"] for line in lines} == {"invalid_input"}
    assert expected in lines[0]["error"]["message"]


def test_shards_share_one_package_and_fetch_the_model_once(
    aws: AwsStack, env: Settings, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each shard's submission asks for the package; naming it fetched (from S3: downloaded)
    # and hashed the model every time. A pinned model is named by its pin: one fetch, to build
    # the package, for a file of 3 shards, and none for the next file.
    from sinfer.model.store import LocalModelStore, S3ModelStore

    fetched: list[str] = []
    for cls in (LocalModelStore, S3ModelStore):
        real = cls.fetch

        def spy(self: Any, name: str, version: str, real: Any = real) -> Any:
            fetched.append(f"{name}:{version}")
            return real(self, name, version)

        monkeypatch.setattr(cls, "fetch", spy)
    orchestrator.submit(routed_job(aws, KEY, scans(60), "digits"))
    assert fetched == ["digits:1"]
    orchestrator.submit(routed_job(aws, "inputs/digits/more.jsonl", scans(30), "digits"))
    assert fetched == ["digits:1"]


def test_stopping_a_transform_job_names_it_and_leaves_one_that_ended(env: Settings) -> None:
    # The call the sweeper makes for a job past SAGEMAKER_TIMEOUT_HOURS, as botocore validates it
    # (moto has no StopTransformJob)
    from sinfer.aws.sagemaker import stop_transform_job

    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("stop_transform_job", {}, {"TransformJobName": "s3-abc-s0001"})
    stub.add_client_error(  # what SageMaker answers for a job that has ended
        "stop_transform_job", "ValidationException", "Transform job is not in progress", http_status_code=400
    )
    stub.add_client_error("stop_transform_job", "ThrottlingException", "Rate exceeded", http_status_code=400)
    set_client("sagemaker", client)
    with stub:
        stop_transform_job("s3-abc-s0001")
        stop_transform_job("s3-abc-s0001")  # ended meanwhile: nothing to do
        with pytest.raises(Exception, match="ThrottlingException"):
            stop_transform_job("s3-abc-s0001")  # anything else: the sweep tries again
    stub.assert_no_pending_responses()
