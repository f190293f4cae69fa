"""Shared pieces of the reliability suite: the moto stack, delivery helpers, faults, bombs, accounting.

The suite proves the guarantees docs/reliability.md states, so its helpers count from what a
test *built* (the records it wrote into a file), never from what the code under test reports:
``assert_accounted`` checks an output file against the ids the input held, one line each, in
order, each a prediction or an error.

Faults are injected where botocore itself would raise them: a ``before-call`` hook on sinfer's
own (cached) client answers in place of the service, so the code under test sees exactly the
``ClientError`` the real service's throttling or 5xx produces once botocore's retries give up,
with moto answering every other call.

Bombs are built cheaply: ``zeros_gzip`` writes one compressed block of zeros and repeats its
bytes (a full flush makes every block identical and byte-aligned), so 10 GB of zeros costs a
few milliseconds and about 10 MB; ``png_claiming`` is a valid PNG header that claims any size.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from functions.s3_ingest.app import lambda_handler as s3_ingest
from sinfer.local.s3events import s3_notification, s3_record, sqs_event
from tests.conftest import FakeLambdaContext
from tests.functional import conftest as functional
from tests.functional.conftest import BUCKET, AwsStack

# The fixtures of tests/functional (the moto stack, settings) are reused, not copied.
aws = functional.aws
configure = functional.configure

MiB = 1024 * 1024
GiB = 1024 * MiB

# Reproducible in CI (derandomize), never timing-flaky (deadline=None), no example database
# written into the tree. ``call_api`` is function-scoped but stateless between calls.
# SINFER_FUZZ_EXAMPLES raises the count for a longer run (e.g. nightly): 50 keeps `make test` fast.
FUZZ_EXAMPLES = int(os.environ.get("SINFER_FUZZ_EXAMPLES", "50"))
fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Each file example is an upload and a delivery through moto (~0.15 s): fewer, larger examples.
fuzz_files = settings(fuzz, max_examples=max(1, FUZZ_EXAMPLES * 3 // 5))


@pytest.fixture(scope="module", autouse=True)
def _template_parsed_once() -> Iterator[None]:
    """The ``aws`` fixture reads the jobs table's keys from template.yaml, 0.8 s of YAML per test.

    The answer cannot change during a run, so this suite parses it once (each caller still
    gets its own copy); the ``aws`` fixture itself is used unchanged.
    """
    parsed = functools.cache(functional.jobs_table_args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(functional, "jobs_table_args", lambda name: copy.deepcopy(parsed(name)))
        yield


# --- strict JSON -------------------------------------------------------------------------------


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def strict_json(data: bytes | str) -> Any:
    """Parse as RFC 8259 JSON: Python's NaN/Infinity extensions are refused."""
    return json.loads(data, parse_constant=_no_constants)


# --- S3 delivery ---------------------------------------------------------------------------------


def outputs(key: str) -> tuple[str, str]:
    """Where s3_ingest writes the predictions and the summary of ``inputs/...`` ``key``."""
    base = "outputs/" + key.removeprefix("inputs/")
    return f"{base}.predictions.jsonl", f"{base}.summary.json"


def sqs_for(aws: AwsStack, key: str, version_id: str = "") -> dict[str, Any]:
    """The SQS-delivered S3 notification for an object in the bucket (real size and ETag)."""
    head = aws.s3.head_object(Bucket=BUCKET, Key=key, **({"VersionId": version_id} if version_id else {}))
    record = s3_record(BUCKET, key, head["ContentLength"], head["ETag"].strip('"'), version_id)
    return sqs_event(s3_notification(record))


def deliver(aws: AwsStack, key: str, context: FakeLambdaContext | None = None) -> dict[str, Any]:
    response: dict[str, Any] = s3_ingest(sqs_for(aws, key), context or FakeLambdaContext())
    return response


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@dataclass
class Ingested:
    """What one delivery left behind: the SQS response, the output lines, summary and job."""

    response: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    job: dict[str, Any] | None = None
    keys: list[str] = field(default_factory=list)


def ingest(
    aws: AwsStack,
    key: str,
    body: bytes,
    content_type: str | None = None,
    context: FakeLambdaContext | None = None,
) -> Ingested:
    """Upload ``body`` under ``key``, deliver its notification, and read back what was written."""
    aws.put(key, body, content_type)
    response = deliver(aws, key, context)
    predictions_key, summary_key = outputs(key)
    keys = aws.keys("outputs/")
    result = Ingested(response, keys=keys)
    if predictions_key in keys:
        result.lines = [strict_json(line) for line in aws.get(predictions_key).splitlines()]
    if summary_key in keys:
        result.summary = aws.json(summary_key)
    jobs = aws.dynamodb.scan(TableName=aws.table)["Items"]
    match = [item for item in jobs if item.get("input", {}).get("S") == f"s3://{BUCKET}/{key}"]
    if match:
        result.job = aws.job(match[0]["job_id"]["S"])
    return result


def assert_accounted(lines: list[dict[str, Any]], ids: list[Any]) -> None:
    """One line per input record, in input order, each exactly a prediction or an error."""
    assert [line["id"] for line in lines] == ids
    for line in lines:
        assert ("prediction" in line) != ("error" in line), line
        if "error" in line:
            assert set(line["error"]) == {"code", "message"}
            assert line["error"]["code"], line
            assert line["error"]["message"], line


def assert_counts_consistent(result: Ingested, records: int) -> None:
    """Summary, job record and output file agree, and records in = predictions + errors."""
    assert result.summary is not None
    counts = result.summary["counts"]
    assert counts["records"] == records == counts["predictions"] + counts["errors"]
    assert result.summary["records_match"] is True
    assert sum("prediction" in line for line in result.lines) == counts["predictions"]
    assert sum("error" in line for line in result.lines) == counts["errors"]
    assert result.job is not None
    assert result.job["status"] == "COMPLETED"
    assert result.job["counts"] == counts


# --- faults -------------------------------------------------------------------------------------


class Killed(BaseException):
    """The execution environment is gone (timeout, OOM): nothing runs after this, no cleanup."""


@dataclass
class Fault:
    """Answer ``times`` calls of one operation with the service's error, after letting ``skip`` pass."""

    code: str
    status: int
    times: int = 1
    skip: int = 0
    calls: int = 0
    raised: int = 0

    def __call__(self, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        self.calls += 1
        if self.calls <= self.skip or self.raised >= self.times:
            return None
        self.raised += 1
        parsed = {
            "Error": {"Code": self.code, "Message": f"injected {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }
        return AWSResponse("https://injected.invalid/", self.status, HTTPHeaders(), None), parsed


def inject(service: str, operation: str, code: str, status: int, *, times: int = 1, skip: int = 0) -> Fault:
    """Make sinfer's ``service`` client fail ``operation`` as the service would (see module doc)."""
    from sinfer.aws.clients import client

    boto = client(service)
    fault = Fault(code, status, times, skip)
    service_id = boto.meta.service_model.service_id.hyphenize()
    boto.meta.events.register(f"before-call.{service_id}.{operation}", fault)
    return fault


class BrokenBody:
    """A GetObject body that fails once ``after`` bytes have been read, with ``error()``."""

    def __init__(self, body: Any, after: int, error: Any) -> None:
        self._body = body
        self._after = after
        self._error = error
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.read_bytes >= self._after:
            raise self._error()
        data: bytes = self._body.read(size)
        self.read_bytes += len(data)
        return data


def break_reads(after: int, error: Any, times: int = 1) -> list[BrokenBody]:
    """The next ``times`` GetObject bodies sinfer opens fail after ``after`` bytes."""
    from sinfer.aws.clients import client

    broken: list[BrokenBody] = []

    def wrap(parsed: dict[str, Any], **_: Any) -> None:
        if len(broken) < times and "Body" in parsed:
            parsed["Body"] = BrokenBody(parsed["Body"], after, error)
            broken.append(parsed["Body"])

    client("s3").meta.events.register("after-call.s3.GetObject", wrap)
    return broken


@dataclass
class KillSwitch:
    """Once tripped, every AWS call of sinfer's clients raises :class:`Killed`: a hard kill."""

    tripped: bool = False

    def __call__(self, **_: Any) -> None:
        if self.tripped:
            raise Killed("the execution environment was shut down")


def kill_switch(*services: str) -> KillSwitch:
    from sinfer.aws.clients import client

    switch = KillSwitch()
    for service in services:
        client(service).meta.events.register("before-call", switch)
    return switch


# --- bombs ---------------------------------------------------------------------------------------


def zeros_gzip(size: int, fill: bytes = b"\0", block: int = MiB) -> bytes:
    """One gzip member inflating to ``size`` bytes of ``fill`` repeated (rounded up to ``block``).

    Each block is compressed once and followed by a full flush, which empties the compressor's
    window and byte-aligns its output, so every further block compresses to the same bytes:
    they are repeated instead of recomputed. The trailer's CRC is the real one up to 64 MiB;
    beyond, computing it would mean hashing every byte, and any reader that gets that far has
    failed the test anyway.
    """
    data = (fill * (block // len(fill) + 1))[:block]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == again  # the premise of the trick
    count = -(-size // block)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    crc = 0
    if count * block <= 64 * MiB:
        for _ in range(count):
            crc = zlib.crc32(data, crc)
    trailer = struct.pack("<II", crc, (count * block) & 0xFFFFFFFF)
    return header + first * count + compressor.flush() + trailer


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` 8-bit grey pixels.

    Its one IDAT holds a single row, so it costs bytes, not gigabytes: only a decoder that
    believed the header and allocated for it would use the memory.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" + b"\0" * min(width, 1024))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")
