"""SageMaker Batch Transform over the ONNX model, served by sinfer's own container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sinfer.aws.bedrock import QuotaError
from sinfer.aws.clients import client

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


@dataclass(frozen=True, slots=True)
class TransformJob:
    name: str
    status: str
    message: str = ""


def _code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def ensure_model(name: str, image_uri: str, model_data_uri: str, role_arn: str) -> None:
    """Create the SageMaker model once (a name per model version); existing ones are reused."""
    sagemaker = client("sagemaker")
    try:
        sagemaker.describe_model(ModelName=name)
        return
    except Exception as exc:
        if _code(exc) not in {"ValidationException", "ResourceNotFound"}:
            raise
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": image_uri, "ModelDataUrl": model_data_uri},
        ExecutionRoleArn=role_arn,
    )


def create_transform_job(
    *, name: str, model_name: str, input_uri: str, output_uri: str, instance_type: str, max_payload_mb: int
) -> str:
    """Line-split JSON lines in, one output line per input line (``<key>.out``)."""
    params: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
    }
    try:
        client("sagemaker").create_transform_job(**params)
    except Exception as exc:
        code, text = _code(exc), str(exc)
        if code == "ResourceInUse" or "already exists" in text:
            return name  # an idempotent resubmission: the job is already there
        if code in {"ThrottlingException", "ResourceLimitExceeded"}:
            raise QuotaError(f"{code}: {exc}") from exc
        raise
    return name


def stop_transform_job(name: str) -> None:
    """Ask SageMaker to stop a transform job (it ends Stopped). One already ended is left as it is."""
    try:
        client("sagemaker").stop_transform_job(TransformJobName=name)
    except Exception as exc:
        if _code(exc) != "ValidationException":  # (what SageMaker answers for a job that ended)
            raise


def describe_transform_job(name: str) -> TransformJob:
    response = client("sagemaker").describe_transform_job(TransformJobName=name)
    return TransformJob(
        response["TransformJobName"], response["TransformJobStatus"], response.get("FailureReason", "")
    )
