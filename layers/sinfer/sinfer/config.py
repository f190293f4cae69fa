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
    )


def reset_settings() -> None:
    settings.cache_clear()
