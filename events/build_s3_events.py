"""Build the sample S3 events under events/s3/ and the objects they point at (run from the repo root):

    python -m events.build_s3_events            # writes events/s3/*.json and events/s3/objects/
    python -m events.build_s3_events --check    # exits 1 if the committed files differ

``events/s3/objects/`` mirrors the data bucket: ``objects/<key>`` is the object an event names
as ``<key>``, and each event carries that object's real size and ETag (the MD5 of its bytes, as
S3 computes it for a single-part upload). So ``aws s3 sync events/s3/objects/ s3://<bucket>/``
followed by ``sam local invoke S3IngestFunction -e events/s3/<event>.json`` processes real data,
and tests/functional/test_s3_ingest.py uploads the same bytes and delivers the same events.

Inputs are held-out rows of the demo models' data sets (``models/build_models.py``), so every
prediction can be checked against scikit-learn's. Nothing depends on the time or on randomness
(gzip ``mtime`` is 0, message ids derive from the body), so regenerating gives identical files.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from events._generate import run
from events._generate import stale as stale  # the tests check the committed files with it
from models.build_models import train_breast_cancer, train_digits
from sinfer.local.s3events import (
    eventbridge_object_created,
    s3_notification,
    s3_record,
    s3_test_event,
    sqs_event,
)

ROOT = Path(__file__).resolve().parent / "s3"
OBJECTS = ROOT / "objects"
BUCKET = "sinfer-data"
SUPERSEDED_VERSION_ID = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


@dataclass(frozen=True)
class SampleObject:
    """One object in the data bucket, and what its predictions file must say."""

    key: str
    model: str
    rows: tuple[int, ...]  # indices into the model's held-out rows, in file order
    ids: tuple[Any, ...]  # the ids its output lines carry, in the same order
    data: bytes
    content_type: str

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def format(self) -> str:
        name = self.key.rsplit("/", 1)[-1]
        return name.split(".", 1)[1]


@dataclass(frozen=True)
class SampleEvent:
    """One event file: what it is for, for events/s3/README.md and the tests."""

    name: str
    event: dict[str, Any]
    about: str
    keys: tuple[str, ...] = field(default=())  # the objects it names, by key


@dataclass(frozen=True)
class HeldOut:
    """The demo models' held-out rows and scikit-learn's predictions for them."""

    digits: np.ndarray[Any, Any]
    digits_predicted: np.ndarray[Any, Any]
    cancer: np.ndarray[Any, Any]
    cancer_predicted: np.ndarray[Any, Any]
    cancer_columns: tuple[str, ...]
    cancer_classes: tuple[str, ...]


@functools.cache
def held_out() -> HeldOut:
    """Trained once per process (training the digits model takes seconds)."""
    _, digits, digits_predicted = train_digits()
    _, cancer, cancer_predicted, columns, classes = train_breast_cancer()
    return HeldOut(
        digits,
        digits_predicted,
        cancer,
        cancer_predicted,
        tuple(str(c) for c in columns),
        tuple(str(c) for c in classes),
    )


def _float32_list(row: np.ndarray[Any, Any]) -> list[float]:
    """Shortest decimals that give back the same float32 values (13.08, not 13.079999923706055)."""
    return [float(str(value)) for value in row.astype(np.float32)]


def _cell(value: float) -> str:
    return str(np.float32(value))


def _jsonl(docs: list[Any]) -> bytes:
    return "".join(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n" for doc in docs).encode()


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    lines = [",".join(header)] + [",".join(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _npy(rows: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(rows.astype(np.float32)), allow_pickle=False)
    return buffer.getvalue()


def _image(row: np.ndarray[Any, Any], fmt: str, size: int) -> bytes:
    """A grey image of a digits row (0..16 scaled to 0..255, as the manifest scales back)."""
    pixels = np.round(row.reshape(8, 8) * 255 / 16).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L")
    if size != 8:
        image = image.resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def objects() -> list[SampleObject]:
    """Every object the events name (the events' keys are these, URL-encoded in S3 events)."""
    data = held_out()
    digits, cancer, columns = data.digits, data.cancer, list(data.cancer_columns)
    pixels = [f"p{i}" for i in range(64)]

    def cancer_csv(rows: tuple[int, ...], ids: tuple[str, ...]) -> bytes:
        body = [[id_, *(_cell(v) for v in cancer[r])] for id_, r in zip(ids, rows, strict=True)]
        return _csv(["id", *columns], body)

    d_jsonl = (0, 1, 2, 3, 4, 5)
    d_json = (6, 7, 8, 9)
    d_csv = (10, 11, 12, 13, 14)
    d_npy = (15, 16, 17, 18, 19, 20, 21, 22)
    d_gz = (23, 24, 25, 26, 27)
    c_csv = (0, 1, 2, 3, 4, 5)
    c_gz = (6, 7, 8, 9, 10)
    c_spaces = (11, 12, 13)
    c_jsonl = (14, 15, 16, 17)
    d_ids = tuple(f"digit-{r:03d}" for r in d_jsonl)
    gz_ids = tuple(f"g{r}" for r in d_gz)
    c_ids = tuple(f"P-{r + 1:04d}" for r in c_csv)
    c_gz_ids = tuple(f"P-{r + 1:04d}" for r in c_gz)
    spaces_ids = tuple(f"patient été {r}" for r in c_spaces)
    c_jsonl_ids = tuple(f"EB-{r}" for r in c_jsonl)
    return [
        SampleObject(
            "inputs/digits/samples/digits.jsonl",
            "digits",
            d_jsonl,
            d_ids,
            _jsonl(
                [{"id": i, "instance": _float32_list(digits[r])} for i, r in zip(d_ids, d_jsonl, strict=True)]
            ),
            "application/x-ndjson",
        ),
        SampleObject(
            "inputs/digits/samples/digits.json",
            "digits",
            d_json,
            tuple(range(len(d_json))),
            json.dumps({"instances": [_float32_list(digits[r]) for r in d_json]}).encode(),
            "application/json",
        ),
        SampleObject(
            "inputs/digits/samples/digits.csv",
            "digits",
            d_csv,
            tuple(range(len(d_csv))),
            _csv(pixels, [[_cell(v) for v in digits[r]] for r in d_csv]),
            "text/csv",
        ),
        SampleObject(
            "inputs/digits/samples/digits.npy",
            "digits",
            d_npy,
            tuple(range(len(d_npy))),
            _npy(digits[list(d_npy)]),
            "application/x-npy",
        ),
        SampleObject(
            "inputs/digits/samples/digit-028.png",
            "digits",
            (28,),
            ("digit-028.png",),
            _image(digits[28], "PNG", 8),
            "image/png",
        ),
        SampleObject(
            "inputs/digits/samples/digit-029.jpg",
            "digits",
            (29,),
            ("digit-029.jpg",),
            _image(digits[29], "JPEG", 64),
            "image/jpeg",
        ),
        SampleObject(
            "inputs/digits/samples/digits.jsonl.gz",
            "digits",
            d_gz,
            gz_ids,
            _gzip(
                _jsonl(
                    [
                        {"id": i, "instance": _float32_list(digits[r])}
                        for i, r in zip(gz_ids, d_gz, strict=True)
                    ]
                )
            ),
            "application/gzip",
        ),
        SampleObject(
            "inputs/breast_cancer/samples/patients.csv",
            "breast_cancer",
            c_csv,
            c_ids,
            cancer_csv(c_csv, c_ids),
            "text/csv",
        ),
        SampleObject(
            "inputs/breast_cancer/samples/patients.csv.gz",
            "breast_cancer",
            c_gz,
            c_gz_ids,
            _gzip(cancer_csv(c_gz, c_gz_ids)),
            "application/gzip",
        ),
        SampleObject(
            "inputs/breast_cancer/my data/été 2026.csv",
            "breast_cancer",
            c_spaces,
            spaces_ids,
            cancer_csv(c_spaces, spaces_ids),
            "text/csv",
        ),
        SampleObject(
            "inputs/breast_cancer/samples/patients.jsonl",
            "breast_cancer",
            c_jsonl,
            c_jsonl_ids,
            _jsonl(
                [
                    {"id": i, **dict(zip(columns, _float32_list(cancer[r]), strict=True))}
                    for i, r in zip(c_jsonl_ids, c_jsonl, strict=True)
                ]
            ),
            "application/x-ndjson",
        ),
    ]


def _record(obj: SampleObject) -> dict[str, Any]:
    return s3_record(BUCKET, obj.key, len(obj.data), obj.etag)


def events() -> list[SampleEvent]:
    by_key = {obj.key: obj for obj in objects()}

    def sqs_one(name: str, key: str, about: str) -> SampleEvent:
        return SampleEvent(name, sqs_event(s3_notification(_record(by_key[key]))), about, (key,))

    per_format = [
        (
            "sqs_digits_jsonl",
            "inputs/digits/samples/digits.jsonl",
            'JSON Lines, `{"id", "instance"}` per line',
        ),
        ("sqs_digits_json", "inputs/digits/samples/digits.json", 'one JSON document `{"instances": [...]}`'),
        ("sqs_digits_csv", "inputs/digits/samples/digits.csv", "CSV without an id column (64 pixel columns)"),
        ("sqs_digits_npy", "inputs/digits/samples/digits.npy", "`.npy` float32 array, one row per record"),
        ("sqs_digits_png", "inputs/digits/samples/digit-028.png", "one PNG image (8x8 grey)"),
        ("sqs_digits_jpg", "inputs/digits/samples/digit-029.jpg", "one JPEG image (64x64 grey)"),
        ("sqs_digits_jsonl_gz", "inputs/digits/samples/digits.jsonl.gz", "gzipped JSON Lines"),
        (
            "sqs_breast_cancer_csv",
            "inputs/breast_cancer/samples/patients.csv",
            "CSV with an `id` column and the 30 named feature columns",
        ),
        ("sqs_breast_cancer_csv_gz", "inputs/breast_cancer/samples/patients.csv.gz", "gzipped CSV with ids"),
        (
            "sqs_key_with_spaces",
            "inputs/breast_cancer/my data/été 2026.csv",
            "a key with spaces and non-ASCII characters, URL-encoded as S3 sends it "
            "(`my+data/%C3%A9t%C3%A9+2026.csv`)",
        ),
    ]
    found = [sqs_one(name, key, about) for name, key, about in per_format]
    batch = (
        "inputs/digits/samples/digits.npy",
        "inputs/digits/samples/digits.json",
        "inputs/breast_cancer/samples/patients.csv",
    )
    eventbridge_key = "inputs/breast_cancer/samples/patients.jsonl"
    eventbridge = by_key[eventbridge_key]
    output_key = "outputs/digits/samples/digits.jsonl.predictions.jsonl"
    # AWS's documented example version id: in a versioned bucket the object's current version
    # has another id, so whatever uploaded the object, this event names a version since replaced.
    superseded_key = "inputs/digits/samples/digits.jsonl"
    obj = by_key[superseded_key]
    superseded = s3_record(BUCKET, superseded_key, len(obj.data), obj.etag, version_id=SUPERSEDED_VERSION_ID)
    found += [
        SampleEvent(
            "sqs_batch_3",
            sqs_event(*(s3_notification(_record(by_key[key])) for key in batch)),
            "an SQS batch of 3 messages, one object each (each message succeeds or fails on its own)",
            batch,
        ),
        SampleEvent(
            "sqs_test_event",
            sqs_event(s3_test_event(BUCKET)),
            "the `s3:TestEvent` S3 sends when a notification is configured: ignored, acknowledged",
        ),
        SampleEvent(
            "sqs_superseded_version",
            sqs_event(s3_notification(superseded)),
            "an event whose `versionId` is not the object's current version (a versioned bucket, "
            "the key overwritten since): ignored, acknowledged; the newer version's own event "
            "writes the results",
            (superseded_key,),
        ),
        SampleEvent(
            "sqs_outputs_key",
            sqs_event(s3_notification(s3_record(BUCKET, output_key, 1234))),
            "an object under `outputs/` (the recursion guard): ignored, acknowledged, nothing written",
        ),
        SampleEvent(
            "eventbridge_object_created",
            eventbridge_object_created(BUCKET, eventbridge_key, len(eventbridge.data), eventbridge.etag),
            'an EventBridge "Object Created" event delivered directly (not in SQS); its key is not '
            'URL-encoded; JSON Lines of `{"id", <30 named columns>}`',
            (eventbridge_key,),
        ),
    ]
    return found


def build() -> dict[Path, bytes]:
    """Every file under events/s3/ (events and objects), by path, with its exact bytes."""
    files: dict[Path, bytes] = {}
    for sample in events():
        files[ROOT / f"{sample.name}.json"] = (json.dumps(sample.event, indent=2) + "\n").encode("utf-8")
    for obj in objects():
        files[OBJECTS / obj.key] = obj.data
    return files


def main(argv: list[str] | None = None) -> int:
    return run(__doc__, ROOT, build, argv)


if __name__ == "__main__":
    sys.exit(main())
