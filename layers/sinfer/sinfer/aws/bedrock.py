"""Bedrock: batch inference jobs (control plane) and InvokeModel (for small remainders).

moto does not implement these APIs; tests wrap these clients in botocore's Stubber, which
checks every call's parameters against the real API model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sinfer.aws.clients import client

TERMINAL_STATUSES = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})


class QuotaError(Exception):
    """Bedrock refused for now (throttling, the concurrent-job quota): queue and retry later."""


@dataclass(frozen=True, slots=True)
class BedrockJob:
    arn: str
    name: str
    status: str
    message: str = ""

    @property
    def job_id(self) -> str:
        """The id Bedrock uses in the output prefix: the last segment of the ARN."""
        return self.arn.rsplit("/", 1)[-1]


def _code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def create_job(
    *,
    name: str,
    token: str,
    model_id: str,
    role_arn: str,
    input_uri: str,
    output_uri: str,
    timeout_hours: int,
    kms_key_id: str = "",
) -> str:
    """Submit a job; the same ``token`` returns the same job instead of a second one."""
    output: dict[str, Any] = {"s3Uri": output_uri}
    if kms_key_id:
        output["s3EncryptionKeyId"] = kms_key_id
    try:
        response = client("bedrock").create_model_invocation_job(
            jobName=name,
            clientRequestToken=token,
            roleArn=role_arn,
            modelId=model_id,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
            outputDataConfig={"s3OutputDataConfig": output},
            timeoutDurationInHours=timeout_hours,
        )
    except Exception as exc:
        if _code(exc) in {"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"}:
            raise QuotaError(f"{_code(exc)}: {exc}") from exc
        raise
    arn: str = response["jobArn"]
    return arn


def get_job(arn: str) -> BedrockJob:
    response = client("bedrock").get_model_invocation_job(jobIdentifier=arn)
    return BedrockJob(
        arn=response["jobArn"],
        name=response["jobName"],
        status=response["status"],
        message=response.get("message", ""),
    )


def invoke_model(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client("bedrock-runtime").invoke_model(
        modelId=model_id,
        body=json.dumps(body).encode(),
        contentType="application/json",
        accept="application/json",
    )
    result: dict[str, Any] = json.loads(response["body"].read())
    return result
