"""JSON Lines records read by orjson are the records json reads.

``records.readers._json_line_record`` tries orjson first (where ``codecs.jsontext`` says it
reads what ``json`` reads) and falls back to ``json`` on any refusal. The spec is the ``json``
route alone (forced here by making every line look like it holds a long integer): values,
ids and error records must be equal, for valid lines and for every way a line can be odd.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sinfer.codecs.jsontext import has_long_digit_run
from sinfer.records import readers
from sinfer.records.types import Record

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["id", "instance", "b64", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)
# Text json and orjson may read differently, or that one of them refuses.
ODD = st.sampled_from(
    [
        b"NaN",
        b"[Infinity, -Infinity]",
        b"1e400",
        b'"\\ud800"',
        b'{"a": 1, "a": 2, "b": 3}',
        b"18446744073709551616",
        b"-9223372036854775809",
        b"18446744073709551615",
        b"[" * 1100 + b"]" * 1100,
        b"\xef\xbb\xbf{}",
        b"\xff\xfe",
        b'{"b64": "\xc3\xa9"}',
        b"[1, 2",
        b"[1] [2]",
        b"-0",
        b"0.1e-400",
        b'"\\u00e9\\n"',
        b"{}\r",
    ]
)


def _via_json_only(line: bytes) -> Record:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(readers, "has_long_digit_run", lambda data: True)
        return readers._json_line_record(7, line, 3)


@settings(max_examples=400, deadline=None)
@given(
    value=VALUES, odd=ODD, which=st.sampled_from(["value", "odd"]), end=st.sampled_from([b"\n", b"", b"\r\n"])
)
@example(value=2**64, odd=b"", which="value", end=b"\n")  # orjson would read it as a float
@example(value={"id": "r1", "instance": [1.5, -0.0]}, odd=b"", which="value", end=b"\n")
def test_orjson_first_reads_what_json_reads(value: object, odd: bytes, which: str, end: bytes) -> None:
    line = (json.dumps(value).encode() if which == "value" else odd) + end

    record = readers._json_line_record(7, line, 3)
    expected = _via_json_only(line)

    assert record.index == expected.index
    assert record.error == expected.error
    assert repr(record.id) == repr(expected.id)  # (repr: 1 and 1.0, 0.0 and -0.0 differ)
    assert repr(record.value) == repr(expected.value)


@pytest.mark.parametrize(
    ("data", "long"),
    [
        (b'{"instances": [[1, 2]]}', False),
        (b"[123456789012345678]", False),  # 18 digits: within int64
        (b"[1234567890123456789]", True),  # 19: may be past int64
        (b'{"b64": "0000000000000000000"}', True),  # in a string too (json then reads it)
        (b"[0.12345678901234567890]", True),
    ],
)
def test_a_run_of_19_digits_is_what_sends_text_to_json(data: bytes, long: bool) -> None:
    assert has_long_digit_run(data) is long
