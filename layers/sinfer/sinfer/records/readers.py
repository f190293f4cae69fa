"""Input files → a lazy stream of :class:`Record`, in input order, in bounded memory.

An uploaded file may be far larger than a Lambda's memory, so nothing here reads a stream
whole: every read asks the caller's stream for at most :data:`READ_CHUNK` bytes (an adapter
enforces it, whatever size the layers above ask for), gzip is decompressed as it is read, and
records are yielded one at a time. The exceptions are a ``.json`` document and one image,
which must be held whole to be parsed; both are read in chunks up to a cap.

Two kinds of failure, kept apart because the output contract needs it (records in =
predictions + errors):

* a record that cannot be parsed (a bad JSON line, a ragged CSV row, an empty cell, invalid
  UTF-8) becomes a :class:`Record` with ``error`` set, and reading continues;
* a file that cannot be read at all (unknown format, corrupt gzip, a pickled ``.npy``, over a
  size limit) raises :class:`UnreadableInputError`, whose message says what was expected.

CSV cells that look like numbers become ``float`` — all of them, integers included — because a
tabular model's input is a float tensor in practice and one rule is easier to predict than two;
other cells stay strings.

:func:`read_blocks` is the fast lane for models that take one numeric array: a CSV/TSV or JSONL
file is read in chunks of whole lines, and a chunk that is plainly a numeric table (nothing but
numbers, one record per line) becomes one :class:`RecordBlock` parsed at C speed by
``np.loadtxt`` or orjson, instead of a Python object per cell and per record. Every other chunk
goes through the per-record readers above, which keeps one meaning for every input: a block
is only made where the per-record reader would give the same records, and a block can always
be turned back into those records (``RecordBlock.records``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import posixpath
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from typing import Any, BinaryIO, Final, Literal, Protocol

import numpy as np
import orjson

from sinfer.codecs.arrays import EXACT_INT
from sinfer.codecs.images import looks_like_image, other_format
from sinfer.codecs.jsontext import MAX_JSON_CONTAINERS, has_long_digit_run, json_failure, too_many_containers
from sinfer.errors import InputTooLargeError, UnreadableInputError
from sinfer.records.types import (
    EMPTY_CELL,
    INVALID_CSV,
    INVALID_ENCODING,
    INVALID_JSON,
    RAGGED_ROW,
    RECORD_TOO_LARGE,
    Record,
    RecordError,
)

MiB: Final = 1024 * 1024
READ_CHUNK: Final = 1 * MiB  # the most one read asks of the caller's stream (or of gzip)
NPY_CHUNK: Final = 4 * MiB  # rows of an .npy are decoded this many bytes at a time
NPY_MAX_ROW_BYTES: Final = 64 * MiB  # one .npy row (one record), as a JSON line may be
DEFAULT_MAX_JSON_BYTES: Final = 64 * MiB
MAX_IMAGE_BYTES: Final = 50 * MiB
# Lines parsed as one block: large enough that per-block costs vanish (tens of thousands of
# tabular rows), small enough that a block, its array and its results stay a few MB.
BLOCK_BYTES: Final = MiB // 4
LIST_RECORDS: Final = 1024  # records per list where read_blocks yields records one by one

InputKind = Literal["jsonl", "json", "csv", "tsv", "npy", "image"]

ACCEPTED_FORMATS: Final = (
    ".jsonl/.ndjson, .json, .csv, .tsv, .npy, .png, .jpg/.jpeg, and .gz of the non-image formats"
)

_EXTENSIONS: Final[dict[str, InputKind]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".npy": "npy",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}
_CONTENT_TYPES: Final[dict[str, InputKind]] = {
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "application/json": "json",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/x-npy": "npy",
    "image/png": "image",
    "image/jpeg": "image",
}
_BOM: Final = b"\xef\xbb\xbf"
# Floats as CSV writers spell them (pandas, numpy.savetxt, spreadsheets), including nan/inf.
_NUMBER: Final = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE
)
# What surrogateescape turns undecodable bytes into: their presence means invalid UTF-8.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")


class ByteStream(Protocol):
    """What an input stream must offer: ``read(n)``, as files and botocore's StreamingBody do."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class InputFormat:
    kind: InputKind
    gzip: bool = False


def detect_format(name: str, content_type: str | None = None) -> InputFormat:
    """The format of ``name``: its extension (case-insensitive), else ``content_type``.

    A trailing ``.gz`` means gzip around the format the rest of the name (or the content
    type) gives, as in ``data.csv.gz``.
    """
    base = posixpath.basename(name).lower()
    gzipped = base.endswith(".gz")
    if gzipped:
        base = base[: -len(".gz")]
    kind = _EXTENSIONS.get(posixpath.splitext(base)[1])
    if kind is None and content_type:
        kind = _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
    if kind is None:
        shown = f" (content type {content_type!r})" if content_type else ""
        raise UnreadableInputError(f"cannot tell the format of {name!r}{shown}; accepted: {ACCEPTED_FORMATS}")
    if gzipped and kind == "image":
        raise UnreadableInputError(
            f"{name!r}: images are already compressed and are not accepted gzipped; upload the image itself"
        )
    return InputFormat(kind, gzipped)


def read_records(
    stream: ByteStream,
    name: str,
    content_type: str | None = None,
    *,
    id_column: str = "id",
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_decompressed_bytes: int | None = None,
) -> Iterator[Record]:
    """Records of one input file, lazily and in input order.

    ``stream`` is anything with ``.read(n)`` (a botocore ``StreamingBody``, an open file); it
    is never read without a size, and is not closed. ``name`` (an S3 key or a path) gives the
    format and, for images, the record id. ``max_json_bytes`` caps what is held to parse one
    record's text: a whole ``.json`` document, one JSONL line, or one CSV line (in characters;
    a longer line is a ``record_too_large`` error record). ``max_decompressed_bytes`` caps what a
    ``.gz`` may expand to. The format is checked at the call; reading starts at the first
    ``next()``, and file-level failures raise :class:`UnreadableInputError` from there.
    """
    fmt = detect_format(name, content_type)
    return _records(stream, name, fmt, id_column, max_json_bytes, max_decompressed_bytes)


def _records(
    stream: ByteStream,
    name: str,
    fmt: InputFormat,
    id_column: str,
    max_json_bytes: int,
    max_decompressed_bytes: int | None,
) -> Iterator[Record]:
    source = _open(stream, name, fmt.gzip, max_decompressed_bytes)
    if fmt.kind == "jsonl":
        yield from _jsonl_records(source, max_json_bytes)
    elif fmt.kind == "json":
        yield from _json_records(source, name, max_json_bytes)
    elif fmt.kind in ("csv", "tsv"):
        yield from _csv_records(source, name, "\t" if fmt.kind == "tsv" else ",", id_column, max_json_bytes)
    elif fmt.kind == "npy":
        yield from _npy_records(source, name)
    else:
        yield from _image_records(source, name)


# --- bounded byte sources ----------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """The caller's stream as a raw stream whose reads never ask for more than READ_CHUNK.

    ``io.BufferedReader`` passes large requests straight through to ``readinto``; capping here
    bounds every read the caller's stream sees. Closing this does not close that stream.
    """

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(min(len(view), READ_CHUNK))
        count = len(data)
        view[:count] = data
        return count


class _GunzipReader(io.RawIOBase):
    """Decompressed bytes, read incrementally, with corrupt gzip and bombs made file errors."""

    def __init__(self, compressed: BinaryIO, name: str, limit: int | None) -> None:
        self._gzip = gzip.GzipFile(fileobj=compressed, mode="rb")
        self._name = name
        self._limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._gzip.read(min(len(view), READ_CHUNK))
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            # BadGzipFile: bad magic/header or CRC/length mismatch; EOFError: truncated;
            # zlib.error: corrupt deflate data. Network errors are none of these and propagate.
            reason = str(exc) or type(exc).__name__
            raise UnreadableInputError(f"{self._name} is not valid gzip: {reason}") from None
        count = len(data)
        self.total += count
        if self._limit is not None and self.total > self._limit:
            raise InputTooLargeError(
                f"{self._name} decompresses to more than {self._limit:,} bytes, the limit for one "
                f"input file; split it into smaller files"
            )
        view[:count] = data
        return count


def _open(stream: ByteStream, name: str, gzipped: bool, limit: int | None) -> io.BufferedReader[Any]:
    source = io.BufferedReader(_CappedReader(stream), buffer_size=READ_CHUNK)
    if not gzipped:
        return source
    return io.BufferedReader(_GunzipReader(source, name, limit), buffer_size=READ_CHUNK)


def _read_at_most(source: io.BufferedReader[Any], limit: int) -> bytes | None:
    """The rest of ``source`` if it is at most ``limit`` bytes, else None (read no further)."""
    chunks: list[bytes] = []
    total = 0
    while chunk := source.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# --- JSON Lines and JSON -----------------------------------------------------------------


def _jsonl_records(
    source: io.BufferedReader[Any] | io.BytesIO, max_line_bytes: int, index: int = 0, line_no: int = 0
) -> Iterator[Record]:
    """Records of JSON Lines; ``index`` and ``line_no`` say how many came before (a block's lines)."""
    while line := source.readline(max_line_bytes + 1):
        line_no += 1
        if line_no == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            _skip_rest_of_line(source)
            message = f"line {line_no} is longer than {max_line_bytes:,} bytes, the most one record may take"
            yield Record(index, index, error=RecordError(RECORD_TOO_LARGE, message))
            index += 1
            continue
        if not line.strip():
            continue  # blank lines are not records
        containers = too_many_containers(line)
        if containers is not None:
            message = (
                f"line {line_no} holds up to {containers:,} JSON lists and objects, more than the "
                f"{MAX_JSON_CONTAINERS:,} one record may make in memory"
            )
            yield Record(index, index, error=RecordError(RECORD_TOO_LARGE, message))
        else:
            yield _json_line_record(index, line, line_no)
        index += 1


def _skip_rest_of_line(source: io.BufferedReader[Any] | io.BytesIO) -> None:
    while (part := source.readline(READ_CHUNK)) and not part.endswith(b"\n"):
        pass


def _json_line_record(index: int, line: bytes, line_no: int) -> Record:
    # orjson first (~3x faster), where it reads what json reads (codecs.jsontext); whatever it
    # refuses, json reads, or says why not in the messages below.
    if not has_long_digit_run(line):
        try:
            return _instance_record(index, orjson.loads(line))
        except orjson.JSONDecodeError:
            pass
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"line {line_no} is not valid UTF-8 (byte {exc.start + 1} of the line)"
        return Record(index, index, error=RecordError(INVALID_ENCODING, message))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"line {line_no} is not valid JSON: {exc.msg} at column {exc.colno}"
        return Record(index, index, error=RecordError(INVALID_JSON, message))
    except (ValueError, RecursionError) as exc:  # e.g. an integer over the digit limit; deep nesting
        message = f"line {line_no} is not valid JSON: {json_failure(exc)}"
        return Record(index, index, error=RecordError(INVALID_JSON, message))
    return _instance_record(index, value)


def _instance_record(index: int, value: Any) -> Record:
    """The JSONL/JSON record rules: ``{"id", "instance"}`` wrappers, ``id`` keys, or bare values.

    An object with only an ``"id"`` key is a bare value: there is nothing left to be the
    instance (and a single-input model whose input is named ``id`` reads it as such).
    """
    if isinstance(value, dict):
        if "instance" in value:
            return Record(index, value.get("id", index), value["instance"])
        if "id" in value and len(value) > 1:
            return Record(index, value["id"], {k: v for k, v in value.items() if k != "id"})
    return Record(index, index, value)


def _json_records(source: io.BufferedReader[Any], name: str, max_bytes: int) -> Iterator[Record]:
    data = _read_at_most(source, max_bytes)
    if data is None:
        raise UnreadableInputError(
            f"{name} is larger than {max_bytes:,} bytes, too large to parse as one JSON document; "
            f"upload it as JSON Lines (.jsonl), one instance per line"
        )
    containers = too_many_containers(data)
    if containers is not None:
        raise UnreadableInputError(
            f"{name} holds up to {containers:,} JSON lists and objects, more than the "
            f"{MAX_JSON_CONTAINERS:,} one document may make in memory; upload it as JSON Lines "
            f"(.jsonl), one instance per line"
        )
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UnreadableInputError(f"{name} is not valid UTF-8 (byte {exc.start + 1})") from None
    except (ValueError, RecursionError) as exc:
        raise UnreadableInputError(f"{name} is not valid JSON: {json_failure(exc)}") from None
    del data
    if isinstance(document, dict) and isinstance(document.get("instances"), list):
        instances = document["instances"]
    elif isinstance(document, list):
        instances = document
    else:
        raise UnreadableInputError(
            f'{name}: expected a JSON list of instances or {{"instances": [...]}}, '
            f"got {_json_kind(document)}; for one instance per line use .jsonl"
        )
    for index, value in enumerate(instances):
        yield _instance_record(index, value)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:5]}"
    return {str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


# --- CSV and TSV -------------------------------------------------------------------------


def _csv_records(
    source: io.BufferedReader[Any], name: str, delimiter: str, id_column: str, max_line_chars: int
) -> Iterator[Record]:
    # surrogateescape keeps undecodable bytes as markers, so one bad row is an error record
    # instead of an exception that would end the file.
    text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _BoundedLines(text, max_line_chars)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = _csv_header(reader, name)
    except LineTooLongError as exc:
        raise UnreadableInputError(f"{name}: the header row is {exc}") from None
    id_at = header.index(id_column) if id_column in header else None
    yield from _csv_rows(reader, name, header, id_at, lines=lines)


class LineTooLongError(Exception):
    """A text line over the reader's limit (skipped; the lines after it can still be read)."""


class _BoundedLines:
    """A text stream's lines for ``csv.reader``, none held longer than ``limit`` characters.

    Iterating a text stream reads each line whole before csv's field limit can apply, so one
    endless line (a megabyte of gzip inflates to a gigabyte of it) would be held, twice over,
    decoded. A longer line is read on in bounded pieces and dropped, and ``__next__`` raises
    :class:`LineTooLongError`; the next call goes on with the line after it (``csv.reader``
    starts each row afresh). ``count`` is the lines read, the long ones included.
    """

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.count = 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.count += 1
        if len(line) > self.limit and not line.endswith(("\n", "\r")):
            while (rest := self.text.readline(READ_CHUNK)) and not rest.endswith(("\n", "\r")):
                pass
            raise LineTooLongError(f"longer than {self.limit:,} characters, the most one row may take")
        return line


def _csv_rows(
    reader: Any,
    name: str,
    header: list[str],
    id_at: int | None,
    index: int = 0,
    lines_before: int = 0,
    lines: _BoundedLines | None = None,
) -> Iterator[Record]:
    """Records of the rows ``reader`` yields; ``index`` and ``lines_before`` say what came before,
    and ``lines`` is the bounded source under ``reader`` when there is one."""

    def lines_read() -> int:  # (the reader's count leaves out lines too long to be read)
        return lines.count if lines is not None else int(reader.line_num)

    failed_at = -1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except LineTooLongError as exc:
            line_no = lines_before + lines_read()
            yield Record(index, index, error=RecordError(RECORD_TOO_LARGE, f"line {line_no} is {exc}"))
            index += 1
            continue
        except csv.Error as exc:
            line_no = lines_before + lines_read()
            if line_no == failed_at:  # no progress: the reader is stuck
                raise UnreadableInputError(f"{name} is not valid CSV: line {line_no}: {exc}") from None
            failed_at = line_no
            message = f"line {line_no} is not valid CSV: {exc}"
            yield Record(index, index, error=RecordError(INVALID_CSV, message))
            index += 1
            continue
        if not row:
            continue  # blank lines are not records
        yield _csv_record(index, row, header, id_at, lines_before + lines_read())
        index += 1


def _csv_header(reader: Any, name: str) -> list[str]:
    try:
        header: list[str] = next((row for row in reader if row), [])
    except csv.Error as exc:
        raise UnreadableInputError(f"{name}: the header row is not valid CSV: {exc}") from None
    if not header:
        raise UnreadableInputError(f"{name} is empty; expected a header row naming the columns")
    if any(_UNDECODABLE.search(cell) for cell in header):
        raise UnreadableInputError(f"{name}: the header row is not valid UTF-8")
    header = [cell.strip() for cell in header]
    unnamed = [i + 1 for i, cell in enumerate(header) if not cell]
    if unnamed:
        raise UnreadableInputError(
            f"{name}: column {unnamed[0]} of the header row has no name; every column needs one "
            f"(pandas writes an unnamed index column unless given index=False)"
        )
    duplicates = sorted({cell for cell in header if header.count(cell) > 1})
    if duplicates:
        raise UnreadableInputError(f"{name}: the header row names columns more than once: {duplicates[:5]}")
    return header


def _csv_record(index: int, row: list[str], header: list[str], id_at: int | None, line_no: int) -> Record:
    if any(_UNDECODABLE.search(cell) for cell in row):
        return Record(index, index, error=RecordError(INVALID_ENCODING, f"line {line_no} is not valid UTF-8"))
    record_id: Any = index
    if id_at is not None and id_at < len(row) and row[id_at].strip():
        record_id = row[id_at].strip()
    if len(row) != len(header):
        message = f"line {line_no}: expected {len(header)} cells (one per header column), got {len(row)}"
        return Record(index, record_id, error=RecordError(RAGGED_ROW, message))
    empty = [
        column
        for i, (column, cell) in enumerate(zip(header, row, strict=True))
        if i != id_at and not cell.strip()
    ]
    if empty:
        names = ", ".join(repr(column) for column in empty[:5]) + (" ..." if len(empty) > 5 else "")
        subject = f"columns {names} are" if len(empty) > 1 else f"column {names} is"
        message = f"line {line_no}: {subject} empty"
        return Record(index, record_id, error=RecordError(EMPTY_CELL, message))
    value = {
        column: _cell_value(cell)
        for i, (column, cell) in enumerate(zip(header, row, strict=True))
        if i != id_at
    }
    return Record(index, record_id, value)


def _cell_value(cell: str) -> float | str:
    stripped = cell.strip()
    return float(stripped) if _NUMBER.fullmatch(stripped) else cell


# --- .npy --------------------------------------------------------------------------------


def _npy_records(source: io.BufferedReader[Any], name: str) -> Iterator[Record]:
    shape, dtype = _npy_header(source, name)
    if not shape:  # a 0-d array is one record
        data = source.read(dtype.itemsize)
        if len(data) < dtype.itemsize:
            raise UnreadableInputError(f"{name} ends before its one value")
        yield Record(0, 0, np.frombuffer(data, dtype=dtype).reshape(()))
        return
    rows, row_shape = shape[0], shape[1:]
    if rows == 0:
        return  # an empty array: no records (whatever its rows' shape)
    row_bytes = dtype.itemsize * math.prod(row_shape)
    # The header alone sets these: a 128-byte file may promise 10**15 empty rows (records that
    # cost nothing to read and would run for hours), or one row of terabytes.
    if row_bytes == 0:
        raise UnreadableInputError(
            f"{name} holds {rows:,} rows of no values (shape {list(shape)}); expected rows of numbers"
        )
    if row_bytes > NPY_MAX_ROW_BYTES:
        raise UnreadableInputError(
            f"{name} has rows of {row_bytes:,} bytes (shape {list(shape)}, {dtype}); a record may "
            f"hold at most {NPY_MAX_ROW_BYTES // MiB} MiB"
        )
    per_chunk = max(1, NPY_CHUNK // row_bytes)
    index = 0
    while index < rows:
        count = min(per_chunk, rows - index)
        data = source.read(count * row_bytes)
        if len(data) < count * row_bytes:
            raise UnreadableInputError(
                f"{name} ends early: its header promises {rows} rows of {row_bytes} bytes, "
                f"the data stops in row {index + len(data) // row_bytes}"
            )
        block = np.frombuffer(data, dtype=dtype).reshape((count, *row_shape))
        for offset in range(count):
            # [i, ...] keeps a 1-D file's rows as 0-d arrays rather than numpy scalars.
            yield Record(index, index, block[offset, ...])
            index += 1


def _npy_header(source: io.BufferedReader[Any], name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(source)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(source)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(source)
        else:
            raise UnreadableInputError(
                f"{name} uses .npy format version {version[0]}.{version[1]}; versions 1.0 and 2.0 are read"
            )
    except ValueError as exc:
        raise UnreadableInputError(f"{name} is not a valid .npy file: {exc}") from None
    if dtype.hasobject:
        raise UnreadableInputError(
            f"{name} holds Python objects (dtype {dtype}); only numeric, bool and fixed-width string "
            f"arrays are accepted, since reading objects means unpickling untrusted data"
        )
    if fortran_order and len(shape) > 1:
        raise UnreadableInputError(
            f"{name} is stored in Fortran order, so its rows cannot be streamed; "
            f"save it with np.save(path, np.ascontiguousarray(array))"
        )
    return tuple(shape), dtype


# --- images ------------------------------------------------------------------------------


def _image_records(source: io.BufferedReader[Any], name: str) -> Iterator[Record]:
    data = _read_at_most(source, MAX_IMAGE_BYTES)
    if data is None:
        raise UnreadableInputError(
            f"{name} is larger than {MAX_IMAGE_BYTES:,} bytes, the most one image may take"
        )
    if not looks_like_image(data):
        other = other_format(data)
        raise UnreadableInputError(
            f"{name} is not a PNG or JPEG image ("
            + (f"it is {other})" if other else "it does not start with either signature)")
        )
    yield Record(0, posixpath.basename(name), data)


# --- blocks ------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordBlock:
    """Consecutive records of a text file, parsed at once into one numeric array.

    Row ``i`` of ``array`` (float64, or the JSON values' own bool/int64 type) is record
    ``start + i``, whose id is its index. ``records()`` reads the same lines one record at a
    time and returns exactly what :func:`read_records` gives for them: the way back when the
    block cannot be run as a whole.
    """

    start: int
    array: np.ndarray[Any, Any]
    _reparse: Callable[[], list[Record]]
    _records: list[Record] | None = None

    def records(self) -> list[Record]:
        if self._records is None:  # kept: a block runs in several units, each may fall back
            self._records = self._reparse()
        return self._records


def read_blocks(
    stream: ByteStream,
    name: str,
    content_type: str | None = None,
    *,
    columns_ok: Callable[[list[str]], bool] = lambda header: True,
    id_column: str = "id",
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_decompressed_bytes: int | None = None,
    block_bytes: int | None = None,
) -> Iterator[RecordBlock | list[Record]]:
    """The records of :func:`read_records`, in order, as numeric blocks where possible.

    Each item is a :class:`RecordBlock` or a list of records; together they are exactly the
    records :func:`read_records` yields. Blocks come from CSV/TSV (whose header
    ``columns_ok`` accepts and which has no ``id_column``) and JSONL (lines that are JSON
    lists of numbers); other formats, and chunks that are not plain numeric tables, come as
    records. Memory is bounded as in :func:`read_records`: a chunk of about ``block_bytes``
    of whole lines at a time (:data:`BLOCK_BYTES` unless given).
    """
    fmt = detect_format(name, content_type)
    size = block_bytes or BLOCK_BYTES
    return _blocks(stream, name, fmt, columns_ok, id_column, max_json_bytes, max_decompressed_bytes, size)


def _blocks(
    stream: ByteStream,
    name: str,
    fmt: InputFormat,
    columns_ok: Callable[[list[str]], bool],
    id_column: str,
    max_json_bytes: int,
    max_decompressed_bytes: int | None,
    block_bytes: int,
) -> Iterator[RecordBlock | list[Record]]:
    if fmt.kind == "jsonl":
        source = _open(stream, name, fmt.gzip, max_decompressed_bytes)
        yield from _jsonl_blocks(source, max_json_bytes, block_bytes)
    elif fmt.kind in ("csv", "tsv"):
        source = _open(stream, name, fmt.gzip, max_decompressed_bytes)
        delimiter = "\t" if fmt.kind == "tsv" else ","
        yield from _csv_blocks(source, name, delimiter, id_column, columns_ok, block_bytes, max_json_bytes)
    else:
        yield from _lists(_records(stream, name, fmt, id_column, max_json_bytes, max_decompressed_bytes))


def _lists(records: Iterable[Record]) -> Iterator[list[Record]]:
    iterator = iter(records)
    while batch := list(islice(iterator, LIST_RECORDS)):
        yield batch


def _line_chunks(source: io.BufferedReader[Any], size: int) -> Iterator[tuple[bytes, bool]]:
    """``source`` as chunks of whole lines of about ``size`` bytes, each with ``whole``.

    ``whole`` is False only for a chunk that ends inside a line longer than ``4 * size``: the
    caller hands that chunk and the rest of the stream to a per-record reader, which streams
    such a line instead of holding it (the last chunk of a file may lack its newline and is
    still whole).
    """
    longest = 4 * size
    while data := source.read(size):
        if not data.endswith(b"\n"):
            tail = source.readline(longest + 1)
            data += tail
            if len(tail) > longest and not tail.endswith(b"\n"):
                yield data, False
                return
        yield data, True


class _Prefixed(io.RawIOBase):
    """``head`` and then the rest of ``rest``: a chunk already read, handed back to a reader."""

    def __init__(self, head: bytes, rest: io.BufferedReader[Any]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(min(len(view), READ_CHUNK))
        view[: len(data)] = data
        return len(data)


def _prefixed(head: bytes, rest: io.BufferedReader[Any]) -> io.BufferedReader[Any]:
    return io.BufferedReader(_Prefixed(head, rest), buffer_size=READ_CHUNK)


def _line_count(chunk: bytes) -> int:
    # (numpy's pass releases the GIL, bytes.count holds it ~4x as long: see _json_digit_rows)
    return int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == 10)) + (not chunk.endswith(b"\n"))


# JSON Lines: a chunk of lines that are all JSON lists of numbers is parsed by orjson as one
# array ("[" + lines joined by "," + "]"). orjson and json agree on such lines (numbers are
# correctly rounded by both); where they could differ (NaN/Infinity, integers past 64 bits, a
# BOM, blank lines, two values on a line) orjson refuses or the counts disagree, and the chunk
# is read record by record. Lines of compact non-negative integer lists, the commonest, skip
# orjson: np.fromstring reads their cells, as it reads a CSV of integers (_json_digit_rows).


def _jsonl_blocks(
    source: io.BufferedReader[Any], max_line_bytes: int, size: int
) -> Iterator[RecordBlock | list[Record]]:
    index = 0
    line_no = 0
    for chunk, whole in _line_chunks(source, size):
        if not whole:
            yield from _lists(_jsonl_records(_prefixed(chunk, source), max_line_bytes, index, line_no))
            return
        lines = _line_count(chunk)
        reparse = partial(_jsonl_chunk_records, chunk, max_line_bytes, index, line_no)
        array = _json_block(chunk, lines, max_line_bytes)
        if array is not None:
            yield RecordBlock(index, array, reparse)
            index += lines
        else:
            records = reparse()
            yield records
            index += len(records)
        line_no += lines


def _jsonl_chunk_records(chunk: bytes, max_line_bytes: int, index: int, line_no: int) -> list[Record]:
    # BytesIO.readline(n) splits exactly as the stream's readline does, so the chunk reads as
    # it would have in place (line 1's BOM included, since line_no says where the chunk is).
    return list(_jsonl_records(io.BytesIO(chunk), max_line_bytes, index, line_no))


def _json_block(chunk: bytes, lines: int, max_line_bytes: int) -> np.ndarray[Any, Any] | None:
    if not chunk.startswith(b"["):
        return None
    if _has_line_over(chunk, max_line_bytes):
        return None  # a line over the limit is an error record
    ints = _json_digit_rows(chunk, lines)
    if ints is not None:
        return ints
    body = chunk[:-1] if chunk.endswith(b"\n") else chunk
    try:
        values = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(values) != lines or not all(type(value) is list for value in values):
        return None
    array = _int_rows(body, values)
    if array is None:
        try:
            array = np.asarray(values)
        except (ValueError, TypeError):  # ragged lists
            return None
    if array.dtype not in _JSON_BLOCK_DTYPES or array.size == 0:
        return None
    # A record's own array is int64 when it holds only integers; in a float64 block its
    # integers went through float64, which is exact only up to 2**53.
    if array.dtype.kind == "f" and not bool(np.abs(array).max() <= EXACT_INT):
        return None
    return array


def _json_digit_rows(chunk: bytes, lines: int) -> np.ndarray[Any, Any] | None:
    """Lines that are compact JSON lists of non-negative integers as an int64 table, or None.

    The commonest JSONL of a numeric model (pixel values, counts). Once the bytes are shown to
    be exactly that (each line "[" + digits and commas + "]", nothing else, no empty cell, and
    no integer JSON would refuse: a leading zero, "01"), the brackets become spaces and the
    line ends commas, and ``np.fromstring`` reads the cells as it reads a CSV of integers
    (``_int_table``). What orjson and ``_int_rows`` would make of such lines is the same table.

    The checks are numpy passes over the bytes, which release the GIL, and the three
    single-byte ``replace`` calls hold it least of the bytes methods (~0.04 us a row, where
    counting "]\n[" and deleting the brackets held it ~0.2): the pipeline parses on the main
    thread while its inference thread formats, and what either side holds the other waits for.
    """
    body = chunk if chunk.endswith(b"\n") else chunk + b"\n"
    buf = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(ends) != lines:
        return None
    starts = np.empty(lines, np.intp)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    # Every line "[" ... "]": 2 * lines bytes above "9", so none other (brackets or letters).
    # (A blank line starts with its newline; "[" alone cannot both start and end its line.)
    if not ((buf[starts] == 91).all() and (buf[ends - 1] == 93).all()):
        return None
    high = buf > 57
    if np.count_nonzero(high) != 2 * lines:
        return None
    # Below "0" only commas and the line ends, and each line with the first one's count.
    low = buf < 48
    if np.count_nonzero(low) != np.count_nonzero(buf == 44) + lines:
        return None
    per_line = np.add.reduceat(low, starts, dtype=np.intp)
    columns = int(per_line[0])
    if not (per_line == columns).all():
        return None
    # Two non-digits side by side only as "]\n" (each line) and "\n[" (between lines): any
    # other pair ("[,", ",,", ",]", "[]") is an empty cell.
    other = low | high
    if np.count_nonzero(other[:-1] & other[1:]) != 2 * lines - 1:
        return None
    if ((buf[1:-1] == 48) & other[:-2] & ~other[2:]).any():  # "0" opening a cell, a digit next
        return None
    # (fromstring skips the blanks around a comma)
    return _int_table(body.replace(b"[", b" ").replace(b"]", b" ").replace(b"\n", b","), lines, columns)


def _int_rows(body: bytes, values: list[list[Any]]) -> np.ndarray[Any, Any] | None:
    """``np.asarray(values)`` for rows of equal length of int64 integers only, else None.

    Such rows (pixel values, counts) are common, and ``np.fromiter`` over them takes ~30%
    less time than ``np.asarray``, which must first find the nesting and the type. The bytes
    say the values are integers: JSON writes every other number with ".", "e" or "E", and
    true/false/null and strings need letters or quotes. But orjson reads an integer outside
    [-2**63, 2**64) as a float, which fromiter would convert: one past 2**63 in magnitude
    makes it raise, and the only one it takes is -2**63 itself (what integers just below
    -2**63 round to), so a block holding -2**63 is left to ``np.asarray``, as are nested
    lists and integers past int64, which make fromiter fail.
    """
    if body.translate(None, b"0123456789-,[]\n"):
        return None
    width = len(values[0])
    if any(len(value) != width for value in values):
        return None
    try:
        flat = np.fromiter(chain.from_iterable(values), dtype=np.int64, count=len(values) * width)
    except (TypeError, ValueError, OverflowError):
        return None
    if flat.size and flat.min() == _INT64_MIN:
        return None
    return flat.reshape(len(values), width)


_INT64_MIN: Final = -(2**63)
_JSON_BLOCK_DTYPES: Final = (np.dtype(np.bool_), np.dtype(np.int64), np.dtype(np.float64))


# CSV/TSV: a chunk (after the header) of nothing but digits, signs, points, exponents,
# delimiters and newlines, with no blank line, is parsed by np.loadtxt, whose number syntax and
# rounding over those bytes are the per-record reader's (_NUMBER, then float()); a chunk
# holding anything else (quotes, spaces, text, \r, invalid UTF-8, empty cells) is read record
# by record. A quote can open a field that spans lines, so from a chunk with one the rest of
# the file is read record by record by one csv reader.


def _csv_blocks(
    source: io.BufferedReader[Any],
    name: str,
    delimiter: str,
    id_column: str,
    columns_ok: Callable[[list[str]], bool],
    size: int,
    max_line_chars: int,
) -> Iterator[RecordBlock | list[Record]]:
    chunks = _line_chunks(source, size)
    first, whole = next(chunks, (b"", True))
    head, newline, body = first.partition(b"\n")
    if not (whole and newline and head) or first.startswith(_BOM) or b'"' in head or b"\r" in head:
        # An unusual header (quoted, blank lines first, a BOM): the per-record reader, whole.
        yield from _lists(_csv_records(_prefixed(first, source), name, delimiter, id_column, max_line_chars))
        return
    header = _csv_header(csv.reader([head.decode("utf-8", "surrogateescape")], delimiter=delimiter), name)
    id_at = header.index(id_column) if id_column in header else None
    numeric = id_at is None and columns_ok(header)
    index = 0
    lines_before = 1
    for chunk, whole in chain([(body, True)], chunks):
        if not chunk:
            continue
        # (A line over the limit, in bytes, is left to the bounded reader, which counts it in
        # characters: the record reader's verdict either way.)
        if not whole or b'"' in chunk or _has_line_over(chunk, max_line_chars):
            text = io.TextIOWrapper(
                _prefixed(chunk, source), encoding="utf-8", errors="surrogateescape", newline=""
            )
            bounded = _BoundedLines(text, max_line_chars)
            reader = csv.reader(bounded, delimiter=delimiter)
            yield from _lists(_csv_rows(reader, name, header, id_at, index, lines_before, bounded))
            return
        reparse = partial(_csv_chunk_records, chunk, name, delimiter, header, id_at, index, lines_before)
        array = _csv_block(chunk, delimiter, len(header)) if numeric else None
        if array is not None:
            yield RecordBlock(index, array, partial(_records_of, reparse))
            index += len(array)
            lines_before += len(array)
        else:
            records, lines = reparse()
            yield records
            index += len(records)
            lines_before += lines


def _has_line_over(chunk: bytes, limit: int) -> bool:
    """Whether a chunk of whole lines holds one longer than ``limit`` bytes."""
    return len(chunk) > limit and max(map(len, chunk.split(b"\n"))) > limit


def _csv_chunk_records(
    chunk: bytes,
    name: str,
    delimiter: str,
    header: list[str],
    id_at: int | None,
    index: int,
    lines_before: int,
) -> tuple[list[Record], int]:
    """A quote-free chunk's records as the file's csv reader reads them, and its line count.

    Without quotes every row ends at a line end, so a fresh reader over the chunk sees the rows
    the file's reader sees. StringIO with newline="" splits lines as the file's TextIOWrapper
    does, and the chunk ends after a newline byte, which is never inside a UTF-8 character.
    """
    text = io.StringIO(chunk.decode("utf-8", "surrogateescape"), newline="")
    reader = csv.reader(text, delimiter=delimiter)
    records = list(_csv_rows(reader, name, header, id_at, index, lines_before))
    return records, reader.line_num


def _records_of(reparse: Callable[[], tuple[list[Record], int]]) -> list[Record]:
    return reparse()[0]


def _csv_block(chunk: bytes, delimiter: str, columns: int) -> np.ndarray[Any, Any] | None:
    ints = _digit_ints(chunk, delimiter, columns)  # an integer table, the common case
    if ints is not None:
        return ints.astype(np.float64)
    # Anything but digits, newlines, the delimiter and number marks (signs, points, exponents):
    # not a table of numbers. Integers _digit_ints declined (one at int64's maximum, or past
    # it) are read as floats here, which rounds them as the int64 route did: both correctly.
    if chunk.translate(None, _NUMBER_BYTES + delimiter.encode()):
        return None
    if chunk.startswith(b"\n") or b"\n\n" in chunk:
        return None
    lines = chunk.splitlines()  # no \r here: splits at \n only
    try:
        array = np.loadtxt(
            lines, delimiter=delimiter, comments=None, quotechar=None, dtype=np.float64, ndmin=2
        )
    except ValueError:  # empty cells, ragged rows, a cell that is not a number
        return None
    if array.shape != (len(lines), columns):
        return None
    return array


def _digit_ints(chunk: bytes, delimiter: str, columns: int) -> np.ndarray[Any, Any] | None:
    """A chunk of only digits, delimiters and newlines as an int64 table, or None to parse it
    another way.

    ``np.fromstring`` parses integers ~20% faster than ``loadtxt`` and needs no split into
    lines, but it is lax: it sees no rows, stops quietly at a trailing empty cell, and clamps
    an integer past int64's range to its maximum. So: every row must end with a newline and
    hold ``columns`` separators (bytes below "0": the delimiters and its newline), no cell may
    be empty (two separators in a row, or one first), and a value at int64's maximum (a clamp,
    or that very value) sends the chunk to the other parse. What fromstring reads is then exactly the
    cells, in order. The checks are whole-array passes with small results: arrays as large as
    the chunk's separator positions cost more in page faults (freed and faulted back in on
    every call) than the parse saves.
    """
    buf = np.frombuffer(chunk, np.uint8)
    newlines = buf == 10
    ends = np.flatnonzero(newlines)
    rows = len(ends)
    if not rows or ends[-1] != len(buf) - 1:
        return None
    separators = buf < 48
    # Nothing but digits (48-57), the delimiter and newlines. (numpy passes over the chunk
    # release the GIL, where bytes.translate holds it: the pipeline parses on the main thread
    # while its inference thread formats.)
    if (buf > 57).any() or (separators & ~newlines & (buf != ord(delimiter))).any():
        return None
    starts = np.empty(rows, np.intp)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    if not (np.add.reduceat(separators, starts, dtype=np.intp) == columns).all():
        return None
    if separators[0] or (separators[1:] & separators[:-1]).any():  # an empty cell
        return None
    if delimiter == ",":
        text = chunk.replace(b"\n", b",")
    else:
        text = chunk.translate(bytes.maketrans(b"\n" + delimiter.encode(), b",,"))
    return _int_table(text, rows, columns)


def _int_table(text: bytes, rows: int, columns: int) -> np.ndarray[Any, Any] | None:
    """Comma-separated integers already shown to be ``rows * columns`` valid cells, as that
    table; None where ``np.fromstring`` refuses or clamps one (past int64, or at its maximum)."""
    try:
        values = np.fromstring(text, dtype=np.int64, sep=",")
    except (ValueError, OverflowError):  # (numpy 2.5 clamps instead; a later one may refuse)
        return None
    if len(values) != rows * columns or (values == _INT64_MAX).any():
        return None
    return values.reshape(rows, columns)


_INT64_MAX: Final = np.iinfo(np.int64).max
_NUMBER_BYTES: Final = b"0123456789\n+-.eE"
