"""Batch Transform request and response bodies: lines in, lines out, one for one, in order.

With ``SplitType=Line`` SageMaker cuts each input file at newlines and, with ``BatchStrategy=
MultiRecord``, packs as many whole lines as fit ``MaxPayloadInMB`` into one ``POST /invocations``.
With ``AssembleWith=Line`` it writes the responses one after another into ``<key>.out``, and
whatever joins results to inputs (``JoinSource=Input``, or sinfer's ``batch_collect``) pairs
output line k with input line k. Nothing carries an id across, so one rule outranks all others:
every input line gives exactly one output line, whatever is on it.

* A line is one record. JSON Lines (``application/jsonlines`` and friends, and
  ``application/json`` read as one document per line, which is what line splitting sends) follow
  sinfer's JSONL rules: a bare instance, or ``{"instance": ...}``. ``text/csv`` lines are
  headerless rows of the model's features in order, as SageMaker's tabular algorithms take them.
* A blank line is an error line. :mod:`sinfer.records` skips blank lines in files, where ids
  keep results joined; here skipping one would shift every later result onto the wrong input.
  The newline that ends the body's last line does not start another line.
* A line that does not parse, or does not fit the model, is an error line; only a body the
  model cannot take at all is refused whole (415), since every line of it would fail alike.

Parsing is the shared readers' (:func:`sinfer.records.read_records`) and inference is the shared
micro-batching loop (:func:`sinfer.inference.batch.predict_records`), so a record means the same
here as in s3_ingest. The readers want a CSV header, so one is made from the model (its
declared column names, or one name per feature) and put in front of the rows. Runs of plain
rows go through one read; a line with a quote or a carriage return, which could make a CSV row
span or split lines, is read on its own so it cannot pull its neighbours out of step.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal

from sinfer.codecs.outputs import to_jsonable
from sinfer.errors import SinferError, UnreadableInputError, UnsupportedMediaTypeError
from sinfer.inference.batch import Outcome, predict_records
from sinfer.inference.model import LoadedModel
from sinfer.records import INVALID_CSV, Record, RecordError, read_records

BodyFormat = Literal["jsonl", "csv"]

JSONL: Final = "application/jsonlines"
CSV: Final = "text/csv"
# Request types: SageMaker's names for JSON Lines, the other common spellings, and JSON, which
# Batch Transform sends one document per line when it splits files by line.
_JSON_LINES_TYPES: Final = frozenset(
    {
        JSONL,
        "application/x-jsonlines",
        "application/jsonl",
        "application/x-ndjson",
        "application/ndjson",
        "application/json",
    }
)
ACCEPTED_TYPES: Final = f"{JSONL} (or application/x-jsonlines, application/json: one JSON per line), {CSV}"

BLANK_LINE: Final = "blank_line"  # error code of a line with nothing on it
_BOM: Final = b"\xef\xbb\xbf"
_LINE_NUMBER: Final = re.compile(r"^line \d+")  # how the shared readers start record messages
# Plain CSV rows read together per this many lines, so parsing streams into micro-batches.
_CSV_RUN_LINES: Final = 512


class NotAcceptableError(SinferError):
    """An ``Accept`` header naming no type the container writes."""

    status = 406
    code = "not_acceptable"


# --- content negotiation -----------------------------------------------------------------


def _media_types(header: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in header.split(",") if part.strip()]


def request_format(content_type: str | None) -> BodyFormat:
    """How to read a body of this ``Content-Type``; none given means JSON Lines."""
    types = _media_types(content_type or "")
    if not types or types[0] in _JSON_LINES_TYPES:
        return "jsonl"
    if types[0] == CSV:
        return "csv"
    raise UnsupportedMediaTypeError(f"Content-Type {content_type!r} is not accepted; send {ACCEPTED_TYPES}")


def response_format(accept: str | None) -> tuple[BodyFormat, str]:
    """The format to answer in and its ``Content-Type``: the first type of ``Accept`` written here.

    JSON Lines is the default (no ``Accept``, ``*/*``, ``application/*``). A type's ``q``
    weight is not ranked: SageMaker sends the job's ``Accept`` as a single type.
    """
    types = _media_types(accept or "")
    for media_type in types or ["*/*"]:
        if media_type in _JSON_LINES_TYPES:
            return "jsonl", media_type
        if media_type in ("*/*", "application/*"):
            return "jsonl", JSONL
        if media_type in (CSV, "text/*"):
            return "csv", CSV
    raise NotAcceptableError(
        f"Accept {accept!r} names no type this container writes; accept {ACCEPTED_TYPES}"
    )


# --- request bodies → records ------------------------------------------------------------


def body_lines(body: bytes) -> list[bytes]:
    """The body's lines, without their newlines (a final newline ends the last line)."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body:
        return []
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def csv_columns(model: LoadedModel) -> tuple[str, ...]:
    """Names for the cells of a headerless CSV row of this model's features.

    The model's declared column names if it has them, else one name per element of a
    fixed-length 1-D input (the rows' values then go to the model in order, as
    :func:`sinfer.inference.batch.record_instance` reads a row of an undeclared input).
    """
    if len(model.inputs) == 1:
        spec = model.inputs[0]
        if spec.decl.columns is not None:
            return spec.decl.columns
        shape = spec.sample_shape
        if shape is not None and len(shape) == 1 and shape[0] is not None:
            return tuple(str(number) for number in range(1, shape[0] + 1))
    inputs = ", ".join(f"{spec.name} {spec.describe()}" for spec in model.inputs)
    raise UnsupportedMediaTypeError(
        f"text/csv rows feed a model with one input of a fixed number of features; model "
        f"{model.name!r} takes {inputs}; send {JSONL}, one instance per line"
    )


def body_records(body: bytes, fmt: BodyFormat, model: LoadedModel) -> Iterator[Record]:
    """One record per line of ``body``, lazily and in order.

    ``Record.index`` is the line's 0-based position and ``Record.id`` its 1-based number, so
    that "record 5" in a model error and "line 5" in a parse error name the same line.

    For ``csv`` the check that the model can take rows at all happens here, at the call.
    """
    lines = body_lines(body)
    if fmt == "csv":
        return _csv_records(lines, _csv_header(csv_columns(model)))
    return _jsonl_records(lines)


def _blank(line: bytes) -> bool:
    return not line.strip()  # the shared readers' test for a blank line


def _blank_record(index: int) -> Record:
    message = f"line {index + 1} is blank; every line must hold one record"
    return Record(index, index + 1, error=RecordError(BLANK_LINE, message))


def _renumbered(index: int, record: Record, line_number_in_read: bool) -> Record:
    """A record read from a synthetic document, placed at line ``index`` of the body."""
    error = record.error
    if error is not None and line_number_in_read:
        error = RecordError(error.code, _LINE_NUMBER.sub(f"line {index + 1}", error.message, count=1))
    return Record(index, index + 1, record.value, error)


def _jsonl_records(lines: list[bytes]) -> Iterator[Record]:
    # The reader splits at b"\n" and skips blank lines exactly as body_lines and _blank do, so
    # its records pair with the non-blank lines, and its "line N" already counts every line.
    # max_json_bytes: the body is already bounded by the payload limit; no line is "too long".
    data = b"".join(line + b"\n" for line in lines)
    parsed = read_records(io.BytesIO(data), "body.jsonl", max_json_bytes=len(data) + 1)
    for index, line in enumerate(lines):
        if _blank(line):
            yield _blank_record(index)
            continue
        record = next(parsed, None)
        if record is None:  # cannot happen: the pairing above is exact
            raise RuntimeError("JSON Lines records fell out of step with the body's lines")
        yield _renumbered(index, record, line_number_in_read=False)


def _csv_header(columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(columns)
    return buffer.getvalue().encode("utf-8")


def _plain_row(line: bytes) -> bool:
    """No quote and no carriage return (bar a CRLF's): certainly exactly one CSV row."""
    return b'"' not in line and b"\r" not in line.removesuffix(b"\r")


def _csv_records(lines: list[bytes], header: bytes) -> Iterator[Record]:
    run: list[tuple[int, bytes]] = []
    for index, line in enumerate(lines):
        if not _blank(line) and _plain_row(line):
            run.append((index, line))
            if len(run) >= _CSV_RUN_LINES:
                yield from _csv_run(run, header)
                run = []
            continue
        yield from _csv_run(run, header)
        run = []
        yield _blank_record(index) if _blank(line) else _csv_line(index, line, header)
    yield from _csv_run(run, header)


def _read_csv(header: bytes, rows: Iterable[bytes]) -> list[Record]:
    data = header + b"".join(row + b"\n" for row in rows)
    return list(read_records(io.BytesIO(data), "body.csv"))


def _csv_run(run: list[tuple[int, bytes]], header: bytes) -> Iterator[Record]:
    if not run:
        return
    try:
        parsed = _read_csv(header, (line for _, line in run))
    except UnreadableInputError:
        parsed = []
    # A row the csv module chokes on may leave the reader mid-line; then pairing by position is
    # not safe, and each line is read alone instead.
    in_step = len(parsed) == len(run) and not any(r.error and r.error.code == INVALID_CSV for r in parsed)
    if not in_step:
        for index, line in run:
            yield _csv_line(index, line, header)
        return
    for (index, _), record in zip(run, parsed, strict=True):
        yield _renumbered(index, record, line_number_in_read=True)


def _csv_line(index: int, line: bytes, header: bytes) -> Record:
    try:
        parsed = _read_csv(header, [line])
    except UnreadableInputError:  # the csv module could not get past something on the line
        parsed = []
    if len(parsed) == 1:
        return _renumbered(index, parsed[0], line_number_in_read=True)
    message = (
        f"line {index + 1} is not one CSV row: a carriage return inside it, or quoting the csv "
        f"reader cannot follow"
    )
    return Record(index, index + 1, error=RecordError(INVALID_CSV, message))


# --- outcomes → response bodies ----------------------------------------------------------


def encode_outcomes(outcomes: Iterable[Outcome], fmt: BodyFormat) -> bytes:
    """One line per outcome, each ending in a newline."""
    if fmt == "jsonl":
        return b"".join(_jsonl_line(outcome) for outcome in outcomes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for outcome in outcomes:
        writer.writerow(_csv_cells(outcome))
    # "replace": a lone surrogate (legal in JSON input, echoed in a message) has no UTF-8 form.
    return buffer.getvalue().encode("utf-8", "replace")


def _jsonl_line(outcome: Outcome) -> bytes:
    if outcome.error is not None:
        line: dict[str, Any] = {"error": {"code": outcome.error.code, "message": outcome.error.message}}
    else:
        line = {"prediction": outcome.prediction}
    # Predictions come JSON-ready from LoadedModel.format (non-finite floats already null), so
    # to_jsonable only runs for a value json cannot take, and allow_nan=False keeps NaN out.
    # ASCII escapes: any string (lone surrogates included) encodes, and no raw newline appears.
    text = json.dumps(line, separators=(",", ":"), allow_nan=False, default=to_jsonable)
    return text.encode("ascii") + b"\n"


def _csv_cells(outcome: Outcome) -> list[str]:
    if outcome.error is not None:
        return ["error", outcome.error.code, _one_line(outcome.error.message)]
    prediction = to_jsonable(outcome.prediction)
    if isinstance(prediction, dict) and "label" in prediction:
        return [_cell(prediction["label"])]
    return [_cell(value) for value in _flatten(prediction)]


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _cell(value: Any) -> str:
    if value is None:
        return ""  # a non-finite float, as JSON's null
    if isinstance(value, bool):
        return "true" if value else "false"
    return _one_line(str(value))


def _one_line(text: str) -> str:
    # A newline inside a quoted cell is valid CSV, but AssembleWith=Line readers count lines.
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def transform(model: LoadedModel, body: bytes, request: BodyFormat, response: BodyFormat) -> bytes:
    """One ``/invocations`` body → its response body: as many lines out as lines in."""
    records = body_records(body, request, model)
    return encode_outcomes(predict_records(model, records), response)
