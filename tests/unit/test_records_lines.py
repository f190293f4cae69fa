"""Result lines: orjson writes them; json only what orjson refuses.

The values are what the json-only writer produced, and so are the bytes except one deliberate
change: floats under 1e-4 are spelled as orjson spells them ("1e-7", "0.000015"; json wrote
"1e-07", "1.5e-05"), the same numbers to any JSON reader. The sweeps check that over floats
(every exponent, random bit patterns) and every code point, the corners where the two
libraries could disagree, and that a block's lines equal its lines written one by one.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections import namedtuple
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinfer.codecs.outputs import to_jsonable
from sinfer.records import error_line, prediction_line, prediction_lines
from sinfer.records.types import _json_line, _line


def old_prediction_line(id: Any, prediction: Any) -> bytes:
    """The writer before orjson: json.dumps (``_json_line``, still json's fallback), after to_jsonable."""
    return _json_line({"id": to_jsonable(id), "prediction": to_jsonable(prediction)})


GOLDEN = [
    (
        0,
        {"label": "2", "score": 0.9953631162643433},
        b'{"id":0,"prediction":{"label":"2","score":0.9953631162643433}}\n',
    ),
    (
        1,
        [1e-07, 1.5e-05, 0.0001, 1e16, -0.0, 2.0],
        b'{"id":1,"prediction":[1e-7,0.000015,0.0001,1e+16,-0.0,2.0]}\n',
    ),
    ("a", float("nan"), b'{"id":"a","prediction":null}\n'),
    (2, np.float32(0.5), b'{"id":2,"prediction":0.5}\n'),
    (3, {"é": '\u2028\x00"\\'}, b'{"id":3,"prediction":{"\xc3\xa9":"\xe2\x80\xa8\\u0000\\"\\\\"}}\n'),
    (4, "\ud800", b'{"id":4,"prediction":"\\ud800"}\n'),
    (5, 2**70, b'{"id":5,"prediction":1180591620717411303424}\n'),
    (6, {1: (True, None)}, b'{"id":6,"prediction":{"1":[true,null]}}\n'),
    (np.int64(7), np.array([[1, 2]]), b'{"id":7,"prediction":[[1,2]]}\n'),
]


@pytest.mark.parametrize(("id", "prediction", "expected"), GOLDEN)
def test_prediction_lines_are_the_golden_bytes(id: Any, prediction: Any, expected: bytes) -> None:
    assert prediction_line(id, prediction) == expected
    assert json.loads(old_prediction_line(id, prediction)) == json.loads(expected)


def test_error_lines_are_the_golden_bytes() -> None:
    assert error_line(3, "invalid_json", "line 4: bad \udcff") == _json_line(
        {"id": 3, "error": {"code": "invalid_json", "message": "line 4: bad \udcff"}}
    )
    assert error_line("x", "c", "ünïcode") == '{"id":"x","error":{"code":"c","message":"ünïcode"}}\n'.encode()


def sample_floats() -> list[float]:
    rng = random.Random(6)
    values = [m * 10.0**e for e in range(-323, 308) for m in (1.0, 1.5, 9.999999999999999, 5.0)]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(50_000)]
    values += [rng.random() * 10 ** rng.randint(-12, 20) for _ in range(50_000)]
    return [v for v in values if math.isfinite(v)] + [-v for v in values[:2000]]


def test_floats_are_the_numbers_json_wrote_and_differ_only_in_spelling_under_1e_4() -> None:
    floats = sample_floats()
    for value in floats:
        line, old = prediction_line(0, value), old_prediction_line(0, value)
        assert json.loads(line)["prediction"] == value, value
        assert line == old or 0 < abs(value) < 1e-4, (value, line, old)
    block = [{"score": v, "top_k": [v, v / 7]} for v in floats[:20_000]]
    assert prediction_lines(10, block) == b"".join(prediction_line(10 + i, p) for i, p in enumerate(block))


def test_every_code_point_is_written_as_json_writes_it() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    chunks = [text[i : i + 997] for i in range(0, len(text), 997)]
    assert prediction_lines(0, chunks) == b"".join(old_prediction_line(i, c) for i, c in enumerate(chunks))
    for lone in ("\ud800", "a\udfffb"):
        assert prediction_lines(0, [lone]) == old_prediction_line(0, lone)


def test_prediction_lines_fall_back_for_values_orjson_refuses() -> None:
    odd = [np.float64(0.25), {2: "x"}, 2**65, float("inf"), (1, 2), b"bytes", [np.int32(3)]]
    assert prediction_lines(5, odd) == b"".join(old_prediction_line(5 + i, p) for i, p in enumerate(odd))


class Key(str):
    pass


Pair = namedtuple("Pair", "a b")

# Leaves orjson writes as they are, and leaves to_jsonable converts (which orjson refuses).
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.floats(width=32).map(np.float32)
    | st.floats().map(np.float64)
    | st.integers(-(2**40), 2**40).map(np.int64)
    | st.binary(max_size=8)
    | st.lists(st.floats(width=32), max_size=4).map(lambda v: np.asarray(v, dtype=np.float32))
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.tuples(inner, inner).map(lambda t: Pair(*t))
        | st.dictionaries(st.text(max_size=3) | st.text(max_size=3).map(Key), inner, max_size=3)
        | st.dictionaries(st.integers(-5, 5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(id=_VALUES, prediction=_VALUES)
def test_a_prediction_line_is_its_values_made_jsonable_first(id: Any, prediction: Any) -> None:
    # orjson on the values as they are, else to_jsonable first: the same bytes either way.
    assert prediction_line(id, prediction) == _line(
        {"id": to_jsonable(id), "prediction": to_jsonable(prediction)}
    )
