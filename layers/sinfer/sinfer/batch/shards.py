"""Split one input file into batch shards, streaming, within the backend's quotas.

Each shard is one backend job with one input file, under the job's work prefix::

    batch/<job_id>/s0000/input.jsonl     what the backend reads (Bedrock records, or instances)
    batch/<job_id>/s0000/index.jsonl     every input record of this shard's range, in order:
                                         {"i": index, "id": id, "rid": key} when sent, or
                                         {"i": index, "id": id, "error": {...}} when not
    batch/<job_id>/s0000/output/         where the backend writes
    batch/<job_id>/s0000/outcomes.jsonl  what collection read from it, for the merge
                                         ([key, prediction, error] per record; orchestrator)
    batch/<job_id>/s0000-r0/             a retry of a shard's failed records (orchestrator),
                                         with keys.jsonl: each line's key, for backends that
                                         join by position

:class:`ShardFiles` is that layout, the one place its names are written.

The index file is what makes the join exact: the merge walks it in order, so every input
record yields exactly one output line (a prediction, the backend's error, or the reason it was
never sent), whatever order the backend wrote its outputs in. Records are streamed through,
so memory stays bounded by one line, whatever the file's size.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sinfer.errors import InvalidInputError, SinferError
from sinfer.records import S3JsonlWriter
from sinfer.records.types import Record

# One record → (line for the backend's input file, join key), or raises SinferError. A key of
# None means "join by position": the record's line number within its shard (SageMaker).
LineBuilder = Callable[[Record], tuple[bytes, str | None]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_records: int
    max_bytes: int
    min_records: int = 0  # Bedrock: smaller jobs are refused; the remainder runs in real time


@dataclass(frozen=True, slots=True)
class ShardFiles:
    """A shard's (or a retry's) files under its prefix (see the module docstring)."""

    prefix: str  # batch/<job>/s0000/

    @classmethod
    def of_input(cls, input_key: str) -> ShardFiles:
        """The files beside a shard's input file."""
        return cls(input_key.rsplit("/", 1)[0] + "/")

    @property
    def input_key(self) -> str:
        return f"{self.prefix}input.jsonl"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}index.jsonl"

    @property
    def output_prefix(self) -> str:
        return f"{self.prefix}output/"

    @property
    def outcomes_key(self) -> str:
        return f"{self.prefix}outcomes.jsonl"

    @property
    def keys_key(self) -> str:
        return f"{self.prefix}keys.jsonl"


@dataclass(slots=True)
class Shard:
    index: int
    prefix: str  # batch/<job>/s0000/
    sent: int = 0
    records: int = 0  # every input record in the shard's range, sent or not
    bytes: int = 0
    realtime: bool = False  # under the backend's minimum: run record by record instead

    @property
    def name(self) -> str:
        return f"s{self.index:04d}"

    @property
    def files(self) -> ShardFiles:
        return ShardFiles(self.prefix)


@dataclass(slots=True)
class Plan:
    shards: list[Shard] = field(default_factory=list)
    records: int = 0
    sent: int = 0
    errors: int = 0


def json_ready(value: Any) -> Any:
    """A record's value as JSON: arrays become lists, image bytes become ``{"b64": ...}``.

    An array of a kind JSON cannot carry (an .npy of complex, datetime or structured values)
    raises InvalidInputError, the record's error line, as the model refuses it on the other
    paths; fixed-width byte strings are read as UTF-8 text.
    """
    if isinstance(value, bytes | bytearray):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray | np.generic):
        kind = value.dtype.kind
        if kind == "S":
            try:
                value = np.char.decode(np.asarray(value), "utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(
                    f"expected numbers or text, got {value.dtype} byte strings that are not UTF-8"
                ) from None
        elif kind not in "biufU":
            shape = list(np.shape(value))
            raise InvalidInputError(
                f"expected numbers, booleans or text, got {value.dtype} values shaped {shape}"
                + (" (a structured row: save a plain numeric array)" if kind == "V" else "")
            )
        return value.tolist()  # (a numpy scalar's too: a Python scalar)
    return value


def _index_line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8") + b"\n"


class _OpenShard:
    def __init__(self, shard: Shard, bucket: str) -> None:
        self.shard = shard
        self.input = S3JsonlWriter(bucket, shard.files.input_key)
        self.index = S3JsonlWriter(bucket, shard.files.index_key)

    def close(self) -> None:
        self.input.close()
        self.index.close()

    def abort(self) -> None:
        self.input.abort()
        self.index.abort()


def write_shards(
    records: Iterable[Record], build: LineBuilder, *, bucket: str, work_prefix: str, limits: Limits
) -> Plan:
    """Stream records into shards; each shard stays within ``limits`` (count and bytes)."""
    plan = Plan()
    current: _OpenShard | None = None
    opened: list[_OpenShard] = []

    def open_next() -> _OpenShard:
        shard = Shard(index=len(plan.shards), prefix=f"{work_prefix}s{len(plan.shards):04d}/")
        plan.shards.append(shard)
        handle = _OpenShard(shard, bucket)
        opened.append(handle)
        return handle

    try:
        current = open_next()
        for record in records:
            plan.records += 1
            entry: dict[str, Any] = {"i": record.index, "id": json_ready(record.id)}
            line: bytes | None = None
            key: str | None = None
            if record.error is not None:
                entry["error"] = {"code": record.error.code, "message": record.error.message}
            else:
                try:
                    line, key = build(record)
                except SinferError as exc:
                    entry["error"] = {"code": exc.code, "message": exc.message}
            if line is not None:
                shard = current.shard
                if shard.sent and (
                    shard.sent >= limits.max_records or shard.bytes + len(line) > limits.max_bytes
                ):
                    current.close()
                    current = open_next()
                entry["rid"] = key if key is not None else str(current.shard.sent)
                current.input.write(line)
                current.shard.sent += 1
                current.shard.bytes += len(line)
                plan.sent += 1
            else:
                plan.errors += 1
            current.index.write(_index_line(entry))
            current.shard.records += 1
        current.close()
    except BaseException:
        for handle in opened:
            handle.abort()
        raise
    last = plan.shards[-1]
    if limits.min_records and 0 < last.sent < limits.min_records:
        last.realtime = True
    return plan


def read_index(lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in lines:
        if line.strip():
            doc: dict[str, Any] = json.loads(line)
            yield doc
