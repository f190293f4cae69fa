"""What several scenarios share: the environment, input data, a moto stack, the ingest loop.

Data comes from scikit-learn's bundled data sets (the ones the demo models were trained on),
resampled with a fixed seed, so every run sees the same bytes and the models see realistic
values.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH_ENV

BUCKET = "sinfer-bench"
TABLE = "sinfer-bench-jobs"
TOPIC = "sinfer-bench-notifications"
REGION = "us-east-1"
DIGITS_FEATURES = 64
SEED = 20240611


def lambda_context() -> Any:
    """The handlers' context: Lambda's 15-minute maximum remaining, so routing is never the limit."""
    from sinfer.local.lambda_runtime import FixedLambdaContext

    return FixedLambdaContext(function_name="sinfer-bench", remaining_ms=900_000)


def reset_sinfer() -> None:
    """Forget cached settings, clients, models and learned throughput (between scenarios)."""
    from sinfer.aws.clients import reset_clients
    from sinfer.config import reset_settings
    from sinfer.inference.registry import reset_default_registry
    from sinfer.jobs import routing
    from sinfer.observability import lambda_stdout, metrics_disabled

    lambda_stdout.cache_clear()
    metrics_disabled.cache_clear()
    reset_settings()
    reset_clients()
    reset_default_registry()
    routing._bytes_per_second.clear()
    routing._bytes_per_record.clear()


@contextlib.contextmanager
def bench_env(extra: dict[str, str] | None = None) -> Iterator[None]:
    """The Makefile's TEST_ENV (plus ``extra``) in os.environ, restored afterwards."""
    with patched_environ({**BENCH_ENV, **(extra or {})}):
        reset_sinfer()
        try:
            yield
        finally:
            reset_sinfer()


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ; on exit each key is back as it was (or gone, if it was unset)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- data --------------------------------------------------------------------------------


def digits_rows(count: int) -> Any:
    """``count`` rows of 64 pixel values (integers 0..16), resampled from sklearn's digits."""
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.int64)
    return data[np.random.default_rng(SEED).integers(0, len(data), count)]


def digits_images(count: int) -> Any:
    """``count`` 8x8 uint8 images (0..255), resampled from sklearn's digits."""
    import numpy as np
    from sklearn.datasets import load_digits

    images = load_digits().images
    picked = images[np.random.default_rng(SEED).integers(0, len(images), count)]
    return np.clip(np.rint(picked * (255 / 16)), 0, 255).astype(np.uint8)


def breast_cancer_rows(count: int) -> list[list[float]]:
    """Rows of the 30 measurements, as a client would send them (the data set's own values)."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    picked = data[np.random.default_rng(SEED).integers(0, len(data), count)]
    return [[float(v) for v in row] for row in picked]


def csv_bytes(rows: Any) -> bytes:
    """A CSV with a header row (p0..p63) and integer cells, as numpy.savetxt writes them."""
    import numpy as np

    out = io.BytesIO()
    header = ",".join(f"p{i}" for i in range(rows.shape[1]))
    np.savetxt(out, rows, fmt="%d", delimiter=",", header=header, comments="")
    return out.getvalue()


def jsonl_bytes(rows: Any) -> bytes:
    """One JSON list of pixel values per line."""
    import json

    return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows.tolist()).encode()


def png_bytes(image: Any) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image, mode="L").save(out, format="PNG")
    return out.getvalue()


def b64_jsonl_bytes(pngs: Iterable[bytes]) -> bytes:
    """One ``{"b64": ...}`` image instance per line: many images in one file."""
    lines = [b'{"b64":"' + base64.b64encode(png) + b'"}\n' for png in pngs]
    return b"".join(lines)


def repeat_to_size(block: bytes, size: int, header: bytes = b"") -> Iterator[bytes]:
    """``header`` then whole copies of ``block`` until at least ``size`` bytes (for big files)."""
    yield header
    written = len(header)
    while written < size:
        yield block
        written += len(block)


# --- the async path ------------------------------------------------------------------------


class CountingSink:
    """A result writer that keeps only counts: the core pipeline without any storage."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0

    def write(self, line: bytes) -> None:
        self.lines += 1
        self.bytes += len(line)

    def write_lines(self, data: bytes, lines: int) -> None:
        self.lines += lines
        self.bytes += len(data)

    def close(self) -> None:
        pass


def run_pipeline(model: Any, stream: Any, name: str, writer: Any, *, overlap: bool = True) -> dict[str, int]:
    """An input file → result lines with :func:`sinfer.inference.batch.process_records`, the loop
    :func:`sinfer.jobs.ingest._run` and ``sinfer predict`` run (``overlap=False``: on one thread)."""
    from sinfer.inference.batch import process_records

    counts = process_records(model, stream, name, writer, overlap=overlap)
    writer.close()
    return counts


class MotoStack:
    """The data bucket, jobs table and topic (as the functional tests set them up) in moto.

    In-process (``mock_aws``) by default. Given ``endpoint`` (a moto server in another process,
    see :class:`MotoServer`), it points boto3 and sinfer's clients there instead, so that what
    moto stores is not counted in this process's memory.
    """

    def __init__(self, env: dict[str, str] | None = None, endpoint: str | None = None) -> None:
        self._mock: Any = None
        self._extra = (env or {}) | ({"AWS_ENDPOINT_URL": endpoint} if endpoint else {})
        self._endpoint = endpoint
        self.s3: Any = None

    def __enter__(self) -> MotoStack:
        self._env = bench_env(
            {"DATA_BUCKET": BUCKET, "JOBS_TABLE": TABLE, "NOTIFY_TOPIC_ARN": "", "BATCH_BACKEND": "local"}
            | self._extra
        )
        self._env.__enter__()
        if self._endpoint is None:
            from moto import mock_aws

            self._mock = mock_aws()
            self._mock.start()
        reset_sinfer()
        import boto3

        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        topic = boto3.client("sns", region_name=REGION).create_topic(Name=TOPIC)["TopicArn"]
        os.environ["NOTIFY_TOPIC_ARN"] = topic
        reset_sinfer()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mock is not None:
            self._mock.stop()
        self._env.__exit__(None, None, None)

    def environment(self) -> dict[str, str]:
        """What a child process needs to run s3_ingest against this stack."""
        names = (
            "DATA_BUCKET",
            "JOBS_TABLE",
            "NOTIFY_TOPIC_ARN",
            "BATCH_BACKEND",
            "AWS_ENDPOINT_URL",
            "MODEL_STORE",
        )
        return {name: os.environ[name] for name in names if name in os.environ}

    def put(self, key: str, body: bytes) -> int:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return len(body)

    def upload(self, key: str, path: Path) -> int:
        """Upload a file in parts (s3transfer), without reading it whole."""
        self.s3.upload_file(str(path), BUCKET, key)
        return path.stat().st_size

    def ingest(self, keys_and_sizes: list[tuple[str, int]], per_invoke: int = 10) -> list[Any]:
        return ingest(keys_and_sizes, per_invoke)

    def output_lines(self, key: str) -> int:
        return output_lines(self.s3, key)


def ingest(keys_and_sizes: list[tuple[str, int]], per_invoke: int = 10) -> list[Any]:
    """Invoke s3_ingest's handler with SQS batches (up to 10 messages, as configured)."""
    from functions.s3_ingest.app import lambda_handler
    from sinfer.local.s3events import s3_notification, s3_record, sqs_event

    responses = []
    for start in range(0, len(keys_and_sizes), per_invoke):
        batch = keys_and_sizes[start : start + per_invoke]
        event = sqs_event(*[s3_notification(s3_record(BUCKET, key, size)) for key, size in batch])
        responses.append(lambda_handler(event, lambda_context()))
    return responses


def output_lines(s3: Any, key: str) -> int:
    """How many lines the predictions file of input ``key`` holds (a correctness check)."""
    out_key = "outputs/" + key.removeprefix("inputs/") + ".predictions.jsonl"
    body = s3.get_object(Bucket=BUCKET, Key=out_key)["Body"].read()
    return int(body.count(b"\n"))


class MotoServer:
    """``python -m moto.server`` on a free loopback port, in its own process."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: Any = None

    def __enter__(self) -> MotoServer:
        import subprocess
        import sys
        import urllib.request

        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value
