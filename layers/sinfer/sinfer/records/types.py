"""The shapes that flow through the asynchronous path: input records and output lines.

A :class:`Record` is one instance read from an input file, or the reason it could not be read.
Bad records do not stop a file: they travel to the output as error lines, so that records in
always equals predictions plus errors. Output lines are built here, in one place, so every
backend writes byte-for-byte the same JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from sinfer.codecs.outputs import to_jsonable

# Stable codes of record-level read errors (file-level failures raise UnreadableInputError).
INVALID_JSON: Final = "invalid_json"
INVALID_ENCODING: Final = "invalid_encoding"
INVALID_CSV: Final = "invalid_csv"
RAGGED_ROW: Final = "ragged_row"
EMPTY_CELL: Final = "empty_cell"
RECORD_TOO_LARGE: Final = "record_too_large"


@dataclass(slots=True)
class RecordError:
    code: str
    message: str


@dataclass(slots=True)
class Record:
    """One input record.

    ``index`` is the 0-based position among the file's records (blank lines are not records).
    ``id`` comes from the data (a CSV id column, a JSON ``"id"`` key) or is the index.
    ``value`` is the instance, ready for ``LoadedModel.to_sample``: a JSON value, a
    ``{column: value}`` dict, image bytes or an ``np.ndarray`` row. When ``error`` is set the
    record could not be parsed and ``value`` is ``None``.
    """

    index: int
    id: Any
    value: Any = None
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def prediction_line(id: Any, prediction: Any) -> bytes:
    """``{"id": ..., "prediction": ...}`` and a newline."""
    return _line({"id": to_jsonable(id), "prediction": to_jsonable(prediction)})


def error_line(id: Any, code: str, message: str) -> bytes:
    """``{"id": ..., "error": {"code": ..., "message": ...}}`` and a newline."""
    return _line({"id": to_jsonable(id), "error": {"code": code, "message": message}})


def prediction_lines(start: int, predictions: Sequence[Any]) -> bytes:
    """The lines of ``prediction_line(start + i, p)`` for each prediction, joined.

    For a block of records whose ids are their indices: one orjson call per prediction instead
    of ``to_jsonable`` and ``json.dumps`` per line (about 10x faster). A prediction that orjson
    refuses, or whose bytes might differ from json's, is written as ``prediction_line`` writes it.
    """
    try:
        bodies = [orjson.dumps(p, option=_STRICT) for p in predictions]
    except TypeError:  # orjson.JSONEncodeError: a value orjson does not write natively
        return b"".join([prediction_line(start + i, p) for i, p in enumerate(predictions)])
    lines = [b'{"id":%d,"prediction":%b}\n' % (start + i, body) for i, body in enumerate(bodies)]
    # _may_differ, inlined: a call per line costs as much as the test itself.
    for i in [i for i, body in enumerate(bodies) if b"e-" in body or b"0.0000" in body]:
        lines[i] = _json_prediction_line(start + i, predictions[i])
    return b"".join(lines)


def _json_prediction_line(id: int, prediction: Any) -> bytes:
    # orjson wrote it, so it holds only JSON-native values, which to_jsonable leaves as json
    # writes them (tuples are lists to both): json.dumps alone, unless it raises (NaN, which
    # to_jsonable makes null; a lone surrogate), when prediction_line's full path decides.
    try:
        text = json.dumps(prediction, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return b'{"id":%d,"prediction":%b}\n' % (id, text.encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        return prediction_line(id, prediction)


# Types orjson would write that json refuses: refused here too, so that json decides.
_STRICT: Final = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _may_differ(data: bytes) -> bool:
    """Whether orjson's bytes might differ from ``json.dumps(separators=(",", ":"), ensure_ascii=False)``.

    On JSON-native values they differ only in floats under 1e-4: negative exponents
    ("1e-07" vs "1e-7") and 1e-5 to 1e-4 ("1e-05" vs "0.00001"). Strings (every code point),
    integers, other floats, true/false/null and key order come out identically (checked over
    millions of floats: tests/unit/test_records_lines.py). Substring tests, because they are
    memchr-fast; a string that happens to contain one only costs the json path.
    """
    return b"e-" in data or b"0.0000" in data


def _line(obj: dict[str, Any]) -> bytes:
    # orjson first (several times faster); json whenever orjson refuses (numpy scalars, lone
    # surrogates, integers past 64 bits, non-string keys) or its bytes might differ.
    try:
        data = orjson.dumps(obj, option=_STRICT | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        pass
    else:
        if not _may_differ(data):
            return data
    return _json_line(obj)


def _json_line(obj: dict[str, Any]) -> bytes:
    # to_jsonable has already turned numpy values into Python ones and non-finite floats into
    # None; allow_nan=False makes any that slipped through fail loudly rather than emit NaN.
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate (legal as a JSON "\ud800" escape in the input) has no UTF-8 form;
        # escaped ASCII JSON carries it unchanged.
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"
