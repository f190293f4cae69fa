"""JSON text read by orjson where orjson reads exactly what ``json`` reads.

``json`` is the reference: it is what the API's resolver and the record readers have always
parsed with. orjson is ~3x faster, and over the documents both accept it gives the same values
(numbers correctly rounded, the last of repeated keys, in the same order), with one exception:
an integer outside [-2**63, 2**64) becomes a float where ``json`` keeps it exact (and then
refuses it, or passes it on exactly). Everything else that sets them apart (NaN and Infinity,
numbers past a double's range, lone surrogate escapes, nesting past 1,024, invalid UTF-8)
orjson refuses, so a caller that falls back to ``json`` on orjson's refusal reads what ``json``
reads. The integer case is caught before parsing: a run of 19 or more digits anywhere (inside
a string or a long fraction too, which then merely takes ``json``'s slower way).
"""

from __future__ import annotations


def json_failure(exc: Exception) -> str:
    """Why ``json.loads`` refused a text, in words: its message, or "nested too deeply" for
    the ``RecursionError`` of nesting past the interpreter's limit (whose own text is no use)."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


# Every digit mapped to 0, then one search: ~0.5 us for a small body, where a regex took ~15 us.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def has_long_digit_run(data: bytes) -> bool:
    """Whether ``data`` holds 19 or more digits in a row: an integer orjson may read as a float."""
    return _NINETEEN_DIGITS in data.translate(_DIGITS_AS_ZERO)


# The most lists and objects one JSON text (a .json document, a JSONL line) may make. Each
# costs ~64 bytes of memory parsed, so a small text can be large: 64 MiB of "[[],[],...]" is
# ~22 million lists, ~2 GB. Four million is ~256 MB; numbers in lists cost far fewer containers.
MAX_JSON_CONTAINERS = 4_000_000


def too_many_containers(data: bytes) -> int | None:
    """The lists and objects ``data`` may make (an upper bound: its "[" and "{" bytes, those in
    strings too) when over :data:`MAX_JSON_CONTAINERS`, else None. A text shorter than twice
    the limit cannot hold that many, and is not scanned."""
    if len(data) <= 2 * MAX_JSON_CONTAINERS:
        return None
    count = data.count(b"[") + data.count(b"{")
    return count if count > MAX_JSON_CONTAINERS else None
