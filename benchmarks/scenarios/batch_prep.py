"""Scenario 5: batch preparation — 1M text records into Bedrock batch JSONL shards.

* **sinfer**: the batch_submit path for a Bedrock entry (models/claude_summarize): the input
  JSONL is read with ``read_records``, each record becomes ``{"recordId", "modelInput"}`` through
  the family's request builder (``build_model_input`` + ``batch_input_line``, as the
  orchestrator's line builder does), and ``write_shards`` splits them within Bedrock's quotas
  (at most 50,000 records and 1 GB per file) and writes each shard's index for the join.
  ``write_shards`` writes through ``S3JsonlWriter``; here its S3 client is a small stand-in that
  stores objects as local files (moto would keep 1M records in memory and measure itself).
* **plain**: the same input lines, ``json.loads``, the same ``modelInput`` built inline,
  ``json.dumps``, written to files of 50,000 lines.

Each runs in a child process; reported: input MB/s, records/s, output size and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from benchmarks.common import MODELS, Check, Config, Row, ScenarioResult, peak_rss_mb, run_child

NAME = "batch_prep"
TITLE = "5. Batch preparation (Bedrock JSONL shards, claude_summarize)"
MAX_RECORDS = 50_000
WORDS = (
    *("model", "inference", "batch", "record", "latency", "shard", "quota", "serverless", "lambda"),
    *("bedrock", "summary", "customer", "order", "invoice", "shipment", "delayed", "refund"),
    *("product", "review", "quality", "support", "ticket", "urgent", "account"),
)


def make_input(path: Path, records: int) -> int:
    """JSONL of ``{"text": ...}`` records (~200 characters of text each); returns bytes."""
    import random

    rng = random.Random(7)
    block = [
        json.dumps(
            {"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))).capitalize() + "."}
        )
        for _ in range(min(records, 10_000))
    ]
    with path.open("w", encoding="utf-8") as out:
        for i in range(records):
            out.write(block[i % len(block)] + "\n")
    return path.stat().st_size


class LocalS3:
    """The five S3 calls S3JsonlWriter makes, storing objects under a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._uploads: dict[str, Path] = {}

    def _path(self, bucket: str, key: str) -> Path:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._path(Bucket, Key).write_bytes(Body)
        return {"ETag": '"local"'}

    def create_multipart_upload(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        upload_id = f"u{len(self._uploads)}"
        partial = self._path(Bucket, Key + ".partial")
        partial.write_bytes(b"")
        self._uploads[upload_id] = partial
        return {"UploadId": upload_id}

    def upload_part(self, *, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._uploads[UploadId].open("ab") as out:  # parts arrive in order
            out.write(Body)
        return {"ETag": f'"part{PartNumber}"'}

    def complete_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._uploads.pop(UploadId).replace(self._path(Bucket, Key))
        return {"ETag": '"local-multipart"'}

    def abort_multipart_upload(self, *, UploadId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._uploads.pop(UploadId).unlink(missing_ok=True)
        return {}


def run_sinfer(input_path: Path, out_dir: Path) -> dict[str, Any]:
    from sinfer.aws.clients import set_client
    from sinfer.batch.bedrock.entry import BedrockEntry
    from sinfer.batch.bedrock.families import batch_input_line, build_model_input, record_id
    from sinfer.batch.shards import Limits, write_shards
    from sinfer.records import Record, read_records

    entry = BedrockEntry.from_manifest(
        json.loads((MODELS / "claude_summarize" / "1" / "model.json").read_text())
    )

    def bedrock_line(record: Record) -> tuple[bytes, str | None]:
        rid = record_id(record.index)
        return batch_input_line(rid, build_model_input(entry, record.value)), rid

    set_client("s3", LocalS3(out_dir))
    start = time.perf_counter()
    with input_path.open("rb") as stream:
        plan = write_shards(
            read_records(stream, input_path.name),
            bedrock_line,
            bucket="bench",
            work_prefix="batch/bench/",
            limits=Limits(max_records=MAX_RECORDS, max_bytes=1_000_000_000, min_records=100),
        )
    seconds = time.perf_counter() - start
    inputs = sum(p.stat().st_size for p in out_dir.rglob("input.jsonl"))
    return {
        "seconds": seconds,
        "records": plan.records,
        "sent": plan.sent,
        "shards": len(plan.shards),
        "output_bytes": inputs,
        "index_bytes": sum(p.stat().st_size for p in out_dir.rglob("index.jsonl")),
    }


def run_plain(input_path: Path, out_dir: Path) -> dict[str, Any]:
    entry = json.loads((MODELS / "claude_summarize" / "1" / "model.json").read_text())
    request = entry["request"]
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    shard, written = 0, 0
    out: BinaryIO | None = None
    with input_path.open("rb") as stream:
        for index, line in enumerate(stream):
            if out is None or written % MAX_RECORDS == 0:
                if out is not None:
                    out.close()
                out = (out_dir / f"s{shard:04d}.jsonl").open("wb")
                shard += 1
            text = json.loads(line)["text"]
            body = {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": request["max_tokens"],
                "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
                "system": request["system"],
                "temperature": request["temperature"],
            }
            out.write(json.dumps({"recordId": f"{index:011d}", "modelInput": body}).encode() + b"\n")
            written += 1
    if out is not None:
        out.close()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "records": written,
        "shards": shard,
        "output_bytes": sum(p.stat().st_size for p in out_dir.glob("*.jsonl")),
    }


def child_main(argv: list[str]) -> int:
    which, input_path, out_dir = argv[0], Path(argv[1]), Path(argv[2])
    report = run_sinfer(input_path, out_dir) if which == "sinfer" else run_plain(input_path, out_dir)
    report["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + json.dumps(report) + "\n")
    return 0


def _spawn(which: str, input_path: Path, out_dir: Path) -> dict[str, Any]:
    child = run_child(
        [sys.executable, "-m", "benchmarks.scenarios.batch_prep", which, str(input_path), str(out_dir)]
    )
    report: dict[str, Any] = child.json()
    return report


def run(config: Config) -> ScenarioResult:
    import shutil

    result = ScenarioResult(NAME, TITLE)
    records = config.pick(1_000_000, 100_000, 500)
    input_path = config.workdir / "batch-prep-input.jsonl"
    size = make_input(input_path, records)
    reports: dict[str, dict[str, Any]] = {}
    for which in ("plain", "sinfer"):
        out_dir = config.workdir / f"batch-prep-{which}"
        if config.tiny:
            from benchmarks.scenarios._shared import bench_env

            with bench_env():
                reports[which] = (
                    run_sinfer(input_path, out_dir) if which == "sinfer" else run_plain(input_path, out_dir)
                )
            reports[which]["peak_rss_mb"] = float("nan")
        else:
            reports[which] = _spawn(which, input_path, out_dir)
        shutil.rmtree(out_dir, ignore_errors=True)
    input_path.unlink(missing_ok=True)
    sinfer, plain = reports["sinfer"], reports["plain"]
    assert sinfer["records"] == plain["records"] == records, (sinfer, plain)
    mb = size / 1e6
    rate, plain_rate = mb / sinfer["seconds"], mb / plain["seconds"]
    result.rows += [
        Row(
            f"{records:,} records ({mb:.0f} MB in)",
            "input MB/s",
            rate,
            "MB/s",
            "json.dumps loop",
            plain_rate,
            rate / plain_rate,
        ),
        Row(
            f"{records:,} records",
            "records/s",
            records / sinfer["seconds"],
            "/s",
            "json.dumps loop",
            records / plain["seconds"],
            plain["seconds"] / sinfer["seconds"],
        ),
        Row(
            f"{records:,} records",
            "peak RSS",
            sinfer["peak_rss_mb"],
            "MB",
            "json.dumps loop",
            plain["peak_rss_mb"],
            sinfer["peak_rss_mb"] / plain["peak_rss_mb"]
            if plain["peak_rss_mb"] == plain["peak_rss_mb"]
            else None,
        ),
        Row(f"{records:,} records", "shards", sinfer["shards"], "", "json.dumps loop", plain["shards"]),
    ]
    result.details = {"input_bytes": size, "sinfer": sinfer, "plain": plain}
    result.notes.append(
        "sinfer also validates each record, writes a per-shard index (for the exact join) and "
        f"streams through S3JsonlWriter parts: {sinfer.get('index_bytes', 0) / 1e6:.0f} MB of index"
    )
    if not config.tiny:
        result.checks.append(
            Check(
                "batch prep peak RSS (bounded: streams)",
                sinfer["peak_rss_mb"],
                "< 512 MB",
                sinfer["peak_rss_mb"] < 512,
                "MB",
            )
        )
    return result


if __name__ == "__main__":
    os.environ.setdefault("MODEL_STORE", str(MODELS))
    sys.exit(child_main(sys.argv[1:]))
