"""Settings read from the environment once per process (template.yaml sets them in Lambda).

Every knob has a default that works on a laptop; the README's configuration table lists them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class Settings:
    data_bucket: str
    jobs_table: str
    notify_topic_arn: str
    input_prefix: str
    output_prefix: str
    staging_prefix: str
    job_ttl_days: int
    # Routing: files over either threshold, or estimated to outlast the invocation, go to batch.
    max_inline_bytes: int
    max_inline_records: int
    assumed_bytes_per_second: float
    time_safety_ms: int
    default_batch_backend: str
    lambda_memory_mb: int
    lease_seconds: int
    presign_seconds: int
    # Batch (issue 4): quotas are configurable because they differ by account and model.
    batch_prefix: str
    batch_submit_function: str
    batch_max_concurrent_jobs: int
    batch_max_attempts: int
    batch_max_decompressed_bytes: int
    bedrock_role_arn: str
    bedrock_kms_key_id: str
    bedrock_timeout_hours: int
    bedrock_min_records: int
    bedrock_max_records: int
    bedrock_max_file_bytes: int
    bedrock_max_job_bytes: int
    sagemaker_role_arn: str
    sagemaker_image_uri: str
    sagemaker_instance_type: str
    sagemaker_max_records: int
    sagemaker_max_file_bytes: int
    sagemaker_timeout_hours: int
    sagemaker_max_payload_mb: int

    @property
    def lambda_gb(self) -> float:
        return self.lambda_memory_mb / 1024


@functools.cache
def settings() -> Settings:
    return Settings(
        data_bucket=os.environ.get("DATA_BUCKET", ""),
        jobs_table=os.environ.get("JOBS_TABLE", ""),
        notify_topic_arn=os.environ.get("NOTIFY_TOPIC_ARN", ""),
        input_prefix=os.environ.get("INPUT_PREFIX", "inputs/"),
        output_prefix=os.environ.get("OUTPUT_PREFIX", "outputs/"),
        staging_prefix=os.environ.get("STAGING_PREFIX", "staging/"),
        job_ttl_days=_int("JOB_TTL_DAYS", 90),
        max_inline_bytes=_int("MAX_INLINE_BYTES", 1024**3),
        max_inline_records=_int("MAX_INLINE_RECORDS", 5_000_000),
        assumed_bytes_per_second=_float("ASSUMED_BYTES_PER_SECOND", 4_000_000.0),
        time_safety_ms=_int("TIME_SAFETY_MS", 20_000),
        default_batch_backend=os.environ.get("BATCH_BACKEND", "sagemaker"),
        lambda_memory_mb=_int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1769),
        lease_seconds=_int("JOB_LEASE_SECONDS", 900),
        presign_seconds=_int("PRESIGN_SECONDS", 3600),
        batch_prefix=os.environ.get("BATCH_PREFIX", "batch/"),
        batch_submit_function=os.environ.get("BATCH_SUBMIT_FUNCTION", ""),
        batch_max_concurrent_jobs=_int("BATCH_MAX_CONCURRENT_JOBS", 20),
        batch_max_attempts=_int("BATCH_MAX_ATTEMPTS", 3),
        batch_max_decompressed_bytes=_int("BATCH_MAX_DECOMPRESSED_BYTES", 100 * 1024**3),
        bedrock_role_arn=os.environ.get("BEDROCK_ROLE_ARN", ""),
        bedrock_kms_key_id=os.environ.get("BEDROCK_KMS_KEY_ID", ""),
        bedrock_timeout_hours=_int("BEDROCK_TIMEOUT_HOURS", 72),
        bedrock_min_records=_int("BEDROCK_MIN_RECORDS", 100),
        bedrock_max_records=_int("BEDROCK_MAX_RECORDS", 50_000),
        bedrock_max_file_bytes=_int("BEDROCK_MAX_FILE_BYTES", 1_000_000_000),
        bedrock_max_job_bytes=_int("BEDROCK_MAX_JOB_BYTES", 5_000_000_000),
        sagemaker_role_arn=os.environ.get("SAGEMAKER_ROLE_ARN", ""),
        sagemaker_image_uri=os.environ.get("SAGEMAKER_IMAGE_URI", ""),
        sagemaker_instance_type=os.environ.get("SAGEMAKER_INSTANCE_TYPE", "ml.m5.large"),
        sagemaker_max_records=_int("SAGEMAKER_MAX_RECORDS", 500_000),
        sagemaker_max_file_bytes=_int("SAGEMAKER_MAX_FILE_BYTES", 1_000_000_000),
        sagemaker_max_payload_mb=_int("SAGEMAKER_MAX_PAYLOAD_MB", 6),
        sagemaker_timeout_hours=_int("SAGEMAKER_TIMEOUT_HOURS", 72),
    )


def reset_settings() -> None:
    settings.cache_clear()
