"""Load on the embedded stack, loopback only, bounded in count and time.

* the API under 32 concurrent keep-alive clients for 30 s: zero errors;
* a burst of 1,000 small uploads through S3 → SQS → s3_ingest: every output present exactly
  once, with exactly the records that went in.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sinfer.local.stack import LocalStack, StackConfig, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

CLIENTS = 32
DURATION_S = float(os.environ.get("SINFER_LOAD_SECONDS", "30"))
UPLOADS = 1000


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    config = StackConfig(
        api_port=free_port(),
        aws_port=free_port(),
        models=ROOT / "models",
        template=ROOT / "template.yaml",
        quiet=True,
        extra_env={"POWERTOOLS_LOG_LEVEL": "ERROR", "LOG_LEVEL": "ERROR"},
    )
    running = LocalStack(config).start()
    try:
        yield running
    finally:
        running.stop()


def test_api_under_32_concurrent_clients_for_30_seconds(stack: LocalStack) -> None:
    body = json.dumps({"instances": [[float(i % 16) for i in range(64)]] * 4}).encode()
    deadline = time.monotonic() + DURATION_S
    port = stack.config.api_port

    def client(_: int) -> tuple[int, list[str]]:
        done, failures = 0, []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            connection.request(
                "POST", "/v1/models/digits:predict", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200 or len(json.loads(payload)["predictions"]) != 4:
                failures.append(f"{response.status}: {payload[:200]!r}")
            done += 1
        connection.close()
        return done, failures

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    requests = sum(done for done, _ in results)
    failures = [f for _, fs in results for f in fs]
    assert failures == [], failures[:5]
    assert requests >= CLIENTS  # every client completed requests
    print(
        f"\n{requests} requests from {CLIENTS} clients in {DURATION_S:.0f}s: "
        f"{requests / DURATION_S:.0f} req/s"
    )


@pytest.mark.timeout(900)
def test_burst_of_1000_uploads_each_processed_exactly_once(stack: LocalStack) -> None:
    from sinfer.aws.clients import client

    s3 = client("s3")
    bucket = stack.config.bucket

    def upload(i: int) -> None:
        lines = [
            json.dumps({"id": f"u{i}-r{j}", "instance": [float((i + j) % 16)] * 64}) for j in range(i % 3 + 1)
        ]
        s3.put_object(Bucket=bucket, Key=f"inputs/digits/burst/{i:04d}.jsonl", Body="\n".join(lines).encode())

    deleted_before = stack.stats.messages_deleted
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(upload, range(UPLOADS)))

    # Wait on the stack's own count of the messages it processed and deleted, then for an empty
    # queue (a redelivered message counts twice). Listing the outputs or reading the queue's
    # depth makes moto scan the whole bucket or queue; done every second, that competed for the
    # one interpreter with the processing it waited for. The outputs are checked below,
    # whatever the count says.
    started = time.monotonic()
    deadline = started + 600
    while time.monotonic() < deadline:
        if stack.stats.messages_deleted - deleted_before >= UPLOADS and stack.queue_depth() == 0:
            break
        time.sleep(0.5)
    paginator = s3.get_paginator("list_objects_v2")
    summaries = {
        entry["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix="outputs/digits/burst/")
        for entry in page.get("Contents", [])
        if entry["Key"].endswith(".summary.json")
    }
    assert len(summaries) == UPLOADS, f"{len(summaries)} of {UPLOADS} files processed"
    print(f"\n{UPLOADS} uploads processed in {time.monotonic() - started:.0f}s")

    def check(i: int) -> int:
        key = f"outputs/digits/burst/{i:04d}.jsonl.predictions.jsonl"
        lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert ids == [f"u{i}-r{j}" for j in range(i % 3 + 1)], (key, ids)
        return len(lines)

    with ThreadPoolExecutor(max_workers=8) as pool:
        checked = list(pool.map(check, range(UPLOADS)))
    assert sum(checked) == sum(i % 3 + 1 for i in range(UPLOADS))
    # exactly once: one version of each output object (the bucket is versioned locally too);
    # one listing for all of them, since moto scans the whole bucket per call.
    versions: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix="outputs/digits/burst/"
    ):
        for version in page.get("Versions", []):
            versions[version["Key"]] = versions.get(version["Key"], 0) + 1
    assert len(versions) == 2 * UPLOADS  # predictions + summary per upload
    assert all(count == 1 for count in versions.values()), [k for k, c in versions.items() if c != 1][:5]
    dlq = client("sqs").get_queue_attributes(
        QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"
