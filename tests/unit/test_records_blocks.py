"""The block lane gives, byte for byte, what the per-record lane gives.

``process_records`` reads CSV/TSV and JSONL in numeric blocks for models that take one numeric
array, and falls back to records wherever a block could differ. These tests hold it to the
per-record lane as it was before blocks existed: ``read_records`` → ``predict_records`` →
one ``json.dumps`` line per outcome. Small block sizes put chunk boundaries everywhere, and
hypothesis mixes clean numeric rows with every corner the adversarial suites know (quotes, id
columns, empty cells, ragged rows, text, NaN, objects, blank lines, BOM, CRLF, lone CR, bad
UTF-8, over-long lines).
"""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto

from sinfer.inference.batch import predict_records, process_records
from sinfer.inference.model import LoadedModel
from sinfer.records import RecordBlock, error_line, prediction_line, read_blocks, read_records
from sinfer.records import readers as readers_module
from tests.conftest import LineSink
from tests.unit.onnx_graphs import identity, load

MODELS = Path(__file__).resolve().parents[2] / "models"


def per_record_output(model: LoadedModel, data: bytes, name: str) -> tuple[bytes, dict[str, int]]:
    """The per-record lane: a Record, an Outcome and one ``prediction_line``/``error_line`` each."""
    out = bytearray()
    counts = {"records": 0, "predictions": 0, "errors": 0}
    for outcome in predict_records(model, read_records(io.BytesIO(data), name), overlap=False):
        counts["records"] += 1
        if outcome.error is None:
            counts["predictions"] += 1
            out += prediction_line(outcome.record.id, outcome.prediction)
        else:
            counts["errors"] += 1
            out += error_line(outcome.record.id, outcome.error.code, outcome.error.message)
    return bytes(out), counts


def block_output(
    model: LoadedModel, data: bytes, name: str, *, overlap: bool = True
) -> tuple[bytes, dict[str, int]]:
    sink = LineSink()
    counts = process_records(model, io.BytesIO(data), name, sink, overlap=overlap)
    assert sink.lines == counts["records"] == counts["predictions"] + counts["errors"]
    assert sink.data.count(b"\n") == sink.lines
    return bytes(sink.data), counts


def assert_same(model: LoadedModel, data: bytes, name: str) -> None:
    expected = per_record_output(model, data, name)
    assert block_output(model, data, name) == expected
    assert block_output(model, data, name, overlap=False) == expected


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store")
    identity(folder, "float3", TensorProto.FLOAT, ["N", 3])
    identity(folder, "int3", TensorProto.INT64, ["N", 3])
    identity(folder, "anyfloat", TensorProto.FLOAT, ["N", None])
    identity(folder, "bool2", TensorProto.BOOL, ["N", 2])
    identity(
        folder,
        "named",
        TensorProto.FLOAT,
        ["N", 3],
        manifest={"inputs": {"x": {"kind": "tabular", "columns": ["a", "b", "c"]}}},
    )
    return folder


@pytest.fixture(scope="module")
def models(store: Path) -> dict[str, LoadedModel]:
    return {name: load(store, name) for name in ("float3", "int3", "anyfloat", "bool2", "named")}


@pytest.fixture(scope="module")
def digits() -> LoadedModel:
    return load(MODELS, "digits")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunk boundaries every few lines, so every test crosses many of them.
    monkeypatch.setattr(readers_module, "BLOCK_BYTES", 64)


# --- the fast lane is taken --------------------------------------------------------------


def test_a_clean_numeric_csv_is_read_as_blocks_that_equal_its_records() -> None:
    data = b"a,b,c\n" + b"".join(b"%d,%d.5,-%de3\n" % (i, i, i) for i in range(50))
    items = list(read_blocks(io.BytesIO(data), "x.csv"))
    assert items
    assert all(isinstance(item, RecordBlock) for item in items)
    records = read_records(io.BytesIO(data), "x.csv")
    flat = [r for item in items if isinstance(item, RecordBlock) for r in item.records()]
    assert [(r.index, r.id, r.value) for r in flat] == [(r.index, r.id, r.value) for r in records]
    rows = np.concatenate([item.array for item in items if isinstance(item, RecordBlock)])
    assert rows.tolist() == [list(r.value.values()) for r in flat]


def test_a_clean_jsonl_is_read_as_blocks() -> None:
    data = b"".join(b"[%d,%d.25,true]\n" % (i, i) for i in range(40))
    items = list(read_blocks(io.BytesIO(data), "x.jsonl"))
    assert all(isinstance(item, RecordBlock) for item in items)
    assert sum(len(item.array) for item in items if isinstance(item, RecordBlock)) == 40


def test_digits_csv_and_jsonl_give_the_per_record_lines(digits: LoadedModel) -> None:
    rows = np.random.default_rng(7).integers(0, 17, (300, 64))
    header = ",".join(f"p{i}" for i in range(64)).encode()
    csv_data = header + b"\n" + b"".join(b",".join(b"%d" % v for v in row) + b"\n" for row in rows)
    jsonl_data = b"".join(json.dumps(row).encode() + b"\n" for row in rows.tolist())
    assert_same(digits, csv_data, "d.csv")
    assert_same(digits, jsonl_data, "d.jsonl")


def test_a_block_the_model_refuses_is_rerun_record_by_record(models: dict[str, LoadedModel]) -> None:
    # Fractions for an int64 input: the block fails validation as a whole, records fail alone.
    data = b"a,b,c\n1,2,3\n4,5.5,6\n7,8,9\n" * 5
    assert_same(models["int3"], data, "x.csv")


def test_tabular_columns_in_declared_order_take_the_block_lane(models: dict[str, LoadedModel]) -> None:
    named = models["named"]
    for header in (b"a,b,c", b"c,b,a", b"a,b,d", b"x,a,b"):
        assert_same(named, header + b"\n1,2,3\n4,5,6\n", "x.csv")


# --- everything else is the per-record lane, line for line --------------------------------


CSV_CASES = [
    b"",
    b"a,b,c",
    b"a,b,c\n",
    b"\xef\xbb\xbfa,b,c\n1,2,3\n",
    b"a,b,c\r\n1,2,3\r\n4,5,6\r\n",
    b"a,b,c\n1,2,3\r4,5,6\n",
    b"a,b,c\n1,2,3\n\n4,5,6\n\n",
    b'a,b,c\n1,"2",3\n"4\n5",6,7\n8,9,10\n',
    b'"a","b","c"\n1,2,3\n',
    b"\na,b,c\n1,2,3\n",
    b"id,a,b,c\nx,1,2,3\n,4,5,6\n",
    b"a,b,c\n1,,3\n1,2\n1,2,3,4\n 1 , 2 ,3\n",
    b"a,b,c\nnan,inf,-inf\n1e400,-0,+.5\n1_0,0x10,abc\n",
    b"a,b,c\n1,2,\xff\n1,2,3\n",
    b"a,b,x\n1,2,3\n",
    b"b64\n1\n",
    b"a,b,c\n99999999999999999999,1,2\n1,2,3",
    b"a,b,c\n1,2,3\n" + b"1," * 200 + b"3\n4,5,6\n",
    b"a,a,b\n1,2,3\n",
]


@pytest.mark.parametrize("data", CSV_CASES, ids=range(len(CSV_CASES)))
@pytest.mark.parametrize("model_name", ["float3", "int3", "anyfloat", "named"])
def test_csv_corner_cases_match(models: dict[str, LoadedModel], model_name: str, data: bytes) -> None:
    model = models[model_name]
    for payload, name in ((data, "x.csv"), (data.replace(b",", b"\t"), "x.tsv")):
        assert outcome_of(block_output, model, payload, name) == outcome_of(
            per_record_output, model, payload, name
        )


def outcome_of(run: Any, *args: Any) -> Any:
    """The output, or the file-level error (type and message), which must be the same too."""
    try:
        return run(*args)
    except Exception as exc:
        return type(exc), str(exc)


JSONL_CASES = [
    b"",
    b"\n\n",
    b"\xef\xbb\xbf[1,2,3]\n[4,5,6]\n",
    b"[1,2,3]\r\n[4,5,6]\r\n",
    b"[1,2,3]\n\n[4,5,6]\n   \n",
    b"[1,2,3]\n[1,2]\n[1,2,3,4]\n[[1,2,3]]\n",
    b"[1,2,3][4,5,6]\n[1,2,3],[4,5,6]\n[7,8,9]\n",
    b"[NaN,Infinity,-Infinity]\n[1e400,-0,-0.0]\n",
    b'[1,2,"3"]\n{"id":"a","instance":[1,2,3]}\n{"x":[1,2,3]}\n[null,1,2]\n',
    b"[true,false,true]\n[1,true,2.5]\n[2,3,4]\n",
    b"[18446744073709551616,1,2]\n[9223372036854775808,1,2]\n[9007199254740993,0.5,1]\n",
    b"[9007199254740993,1,2]\n[1.5,2,3]\n",
    b"[1,2,3]\n[1,2,\xff]\n[4,5,6]",
    b"[1,2,3]\n" + b"[" + b"1," * 100 + b"1]\n[4,5,6]\n",
    b"[1,2,3]\n[1,2,",
    b"[[1],[2],[3]]\n[[4],[5],[6]]\n",
    b"[]\n[]\n",
    b"1\n2\n",
    b"[1.5,2.5,3.5]\n" * 20,
    b"[9223372036854775807,-9223372036854775808,0]\n[-1,-0,7]\n",
    b"[9223372036854775807,1,2]\n[-9223372036854775809,1,2]\n",
    b"[1,2,3]\n[-9223372036854776833,1,2]\n[-9223372036854775808,1,2]\n",
    b"[1,2,3]\n[4,5,6]\n" * 10,
]


@pytest.mark.parametrize("data", JSONL_CASES, ids=range(len(JSONL_CASES)))
@pytest.mark.parametrize("model_name", ["float3", "int3", "anyfloat", "bool2"])
def test_jsonl_corner_cases_match(models: dict[str, LoadedModel], model_name: str, data: bytes) -> None:
    assert_same(models[model_name], data, "x.jsonl")


def test_over_long_jsonl_lines_match(models: dict[str, LoadedModel]) -> None:
    model = models["float3"]
    data = b"[1,2,3]\n" + b"[" + b"1," * 5000 + b"1]\n[4,5,6]\n"
    expected = per_record_output(model, data, "x.jsonl")
    sink = LineSink()
    process_records(model, io.BytesIO(data), "x.jsonl", sink)
    assert (bytes(sink.data), sink.lines) == (expected[0], expected[1]["records"])


# --- property: any mix of rows ------------------------------------------------------------

NUMBER_CELLS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 20).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["1e5", "-0", "+.5", "1.", "007", "2E-3", "99999999999999999999"]),
)
ODD_CELLS = st.sampled_from(["", " 1", "nan", "inf", "abc", '"1"', "1,5", "\xe9", "1 ", "-", "."])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    columns = draw(st.integers(1, 4))
    id_column = draw(st.booleans()) and draw(st.booleans())
    header = [f"c{i}" for i in range(columns)] + (["id"] if id_column else [])
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["clean"] * 8 + ["odd", "ragged", "blank"]))
        if kind == "blank":
            lines.append("")
            continue
        count = len(header) + (draw(st.sampled_from([-1, 1])) if kind == "ragged" else 0)
        cells = [
            draw(ODD_CELLS if kind == "odd" and draw(st.booleans()) else NUMBER_CELLS) for _ in range(count)
        ]
        lines.append(",".join(cells))
    newline = draw(st.sampled_from(["\n"] * 6 + ["\r\n", "\r"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return text.encode()


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(1, 3))
    lines = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["clean"] * 8 + ["odd", "blank", "ragged"]))
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\r"])))
        elif kind == "odd":
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            "[1,2,",
                            "{}",
                            '{"id":1,"instance":[1,2,3]}',
                            "[NaN,1,2]",
                            "7",
                            "[true,1,2]",
                            "[1,[2],3]",
                            "\xff",
                        ]
                    )
                )
            )
        else:
            count = width + (draw(st.sampled_from([-1, 1])) if kind == "ragged" else 0)
            values = draw(
                st.lists(
                    st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=False, allow_infinity=False)),
                    min_size=count,
                    max_size=count,
                )
            )
            compact = draw(st.booleans())  # as most writers do; the integer fast path needs it
            lines.append(json.dumps(values, separators=(",", ":") if compact else None))
    newline = draw(st.sampled_from(["\n"] * 6 + ["\r\n"]))
    return (newline.join(lines) + (newline if draw(st.booleans()) else "")).encode("utf-8", "surrogateescape")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=csv_files(), block=st.integers(8, 300), model_name=st.sampled_from(["anyfloat", "int3", "float3"])
)
def test_any_csv_gives_the_per_record_lines(
    models: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch, data: bytes, block: int, model_name: str
) -> None:
    monkeypatch.setattr(readers_module, "BLOCK_BYTES", block)
    model = models[model_name]
    assert block_output(model, data, "x.csv") == per_record_output(model, data, "x.csv")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=jsonl_files(), block=st.integers(8, 300), model_name=st.sampled_from(["anyfloat", "int3", "float3"])
)
# Found by CI: rows of different widths in consecutive blocks of one cell must not be stacked.
@example(data=b"[0, -1]\n[0]", block=8, model_name="anyfloat")
@example(data=b"[1.5, 2]\n[1, 2, 3]\n[4]", block=9, model_name="anyfloat")
def test_any_jsonl_gives_the_per_record_lines(
    models: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch, data: bytes, block: int, model_name: str
) -> None:
    monkeypatch.setattr(readers_module, "BLOCK_BYTES", block)
    model = models[model_name]
    assert block_output(model, data, "x.jsonl") == per_record_output(model, data, "x.jsonl")


def test_gzip_and_big_files_stream_in_blocks(models: dict[str, LoadedModel]) -> None:
    import gzip

    rows = b"".join(b"%d,%d,%d\n" % (i, i + 1, i + 2) for i in range(2000))
    data = gzip.compress(b"a,b,c\n" + rows)
    assert block_output(models["float3"], data, "x.csv.gz") == per_record_output(
        models["float3"], data, "x.csv.gz"
    )


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.integers(-(2**64), 2**64) | st.integers(-20, 20) | st.integers(-(2**63) - 3000, -(2**63) + 3),
            min_size=0,
            max_size=4,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_integer_rows_are_read_as_numpy_reads_their_lists(rows: list[list[int]]) -> None:
    # _json_block's integer route (np.fromiter) gives np.asarray's array, or declines as it does.
    chunk = b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)
    array = readers_module._json_block(chunk, len(rows), 1 << 20)
    try:
        expected = np.asarray(rows)
    except ValueError:  # ragged
        expected = None
    if expected is None or expected.dtype != np.int64 or expected.size == 0:
        assert array is None
    else:
        assert array is not None
        assert array.dtype == expected.dtype
        assert array.shape == expected.shape
        assert array.tolist() == rows


DIGIT_CELLS = st.one_of(
    st.integers(0, 10**6).map(str),
    st.sampled_from(["", "0", "007", "9" * 18, "9" * 19, "9" * 20, "1" + "0" * 18, "0" * 23 + "1"]),
)
NUMBER_NOT_DIGITS = ("-1", "1.5", "1e3", "+2")  # numbers, for loadtxt's route
NOT_NUMBERS = (" 3", "a", "\r", "1;2")  # no block at all


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.lists(DIGIT_CELLS | st.sampled_from(NUMBER_NOT_DIGITS + NOT_NUMBERS), min_size=1, max_size=4),
        min_size=1,
        max_size=10,
    ),
    columns=st.integers(1, 4),
    delimiter=st.sampled_from([",", "\t"]),
    ended=st.booleans(),
)
@example(rows=[["1", "2"], ["3", "4"]], columns=2, delimiter=",", ended=True)
@example(rows=[["1", ""], ["3", "4"]], columns=2, delimiter=",", ended=True)  # a trailing empty cell
@example(rows=[["9" * 19]], columns=1, delimiter=",", ended=True)  # fromstring would clamp it
def test_digit_tables_are_the_cells_as_floats(
    rows: list[list[str]], columns: int, delimiter: str, ended: bool
) -> None:
    # _digit_ints (np.fromstring) reads a digits-only chunk exactly, or declines; _csv_block,
    # which tries it first, gives float(cell) for every cell of a well-formed table.
    chunk = "\n".join(delimiter.join(row) for row in rows).encode() + (b"\n" if ended else b"")
    assume(chunk)  # (the reader never passes an empty chunk)
    assume(ended or rows[-1] != [""])  # (that chunk is the rows before it, ended)
    with warnings.catch_warnings():  # fromstring warns where it stops early: the checks prevent it
        warnings.simplefilter("error")
        ints = readers_module._digit_ints(chunk, delimiter, columns)
    table = None if ints is None else ints.astype(np.float64)
    cells = [cell for row in rows for cell in row]
    well_formed = all(len(row) == columns and all(row) for row in rows) and not set(cells) & set(NOT_NUMBERS)
    expected = np.array([[float(cell) for cell in row] for row in rows]) if well_formed else None
    if table is not None:
        assert expected is not None
        assert ended
        assert all(cell.isdigit() for cell in cells)
        assert table.dtype == np.float64
        assert table.shape == expected.shape
        assert table.tobytes() == expected.tobytes()
    elif well_formed and ended:  # declined only for a cell past 18 digits, or not digits
        assert any(len(cell) > 18 or not cell.isdigit() for cell in cells)
    block = readers_module._csv_block(chunk, delimiter, columns)
    if expected is not None and ended:
        assert block is not None
        assert block.tobytes() == expected.tobytes()
    elif not well_formed:
        assert block is None


JSON_DIGIT_LINES = st.one_of(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4).map(
        lambda row: json.dumps(row, separators=(",", ":"))
    ),
    st.sampled_from(["[]", "[007]", "[0,01]", "[1,[2]]", "[1,2", "1,2]", "[1][2]", "[9223372036854775807]"]),
    st.sampled_from(["[18446744073709551615]", "[99999999999999999999]", "[0,0]", "[10,0]", "[-1]", "[1.0]"]),
    # brackets out of place, or a line that is not one list
    st.sampled_from(["", "[", "]", "][", "[1]]", "[[1]", "[1]2]", "1]", "[1,2]\r", " [1]", "[1] "]),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(JSON_DIGIT_LINES, min_size=1, max_size=8), ended=st.booleans())
@example(lines=["[1,2]", "[3,4]"], ended=True)
@example(lines=["[01]"], ended=True)  # JSON has no leading zeros: an error record, not 1
@example(lines=["[0,4,16]", "[10,0,7]"], ended=False)
@example(lines=["[1]2]", "[[3]"], ended=True)  # as many brackets as lines, but not one a line
@example(lines=["1]]", "[2]"], ended=True)  # twice as many brackets as lines, the first misplaced
@example(lines=["[1,2]", ""], ended=True)  # a blank line
@example(lines=["[1,,2]", "[3,4,5]"], ended=True)  # an empty cell, with every line's comma count
@example(lines=["[,1]", "[2,3]"], ended=True)
@example(lines=["[1,]", "[2,3]"], ended=True)
@example(lines=["[1,a]", "[2,3]"], ended=True)  # a letter where a digit goes
def test_json_digit_rows_are_what_orjson_reads(lines: list[str], ended: bool) -> None:
    # _json_digit_rows (np.fromstring) takes lines of compact non-negative integer lists and
    # gives the int64 table orjson's values make, or declines; _json_block agrees either way.
    chunk = ("\n".join(lines) + ("\n" if ended else "")).encode()
    with warnings.catch_warnings():  # fromstring warns where it stops early: the checks prevent it
        warnings.simplefilter("error")
        table = readers_module._json_digit_rows(chunk, len(lines))
    try:
        values = [orjson.loads(line) for line in lines]
        expected = np.asarray(values)
    except (orjson.JSONDecodeError, ValueError):
        expected = None
    plain = expected is not None and expected.dtype == np.int64 and expected.ndim == 2 and expected.size > 0
    if table is not None:
        assert plain
        assert expected is not None
        assert table.dtype == np.int64
        assert table.tobytes() == expected.tobytes()
        assert table.shape == expected.shape
    elif plain and all(re.fullmatch(r"\[[0-9,]*\]", line) for line in lines):  # compact lists
        # declined only at int64's maximum (the clamp guard): orjson reads past it as uint64/float
        assert expected is not None
        assert (expected == 2**63 - 1).any()
    block = readers_module._json_block(chunk, len(lines), 1 << 20)
    if table is not None:
        assert block is not None
        assert block.tobytes() == table.tobytes()


def test_a_fromstring_that_refuses_sends_the_chunk_to_loadtxt(monkeypatch: pytest.MonkeyPatch) -> None:
    # numpy 2.5 clamps an out-of-range integer (the guard catches the clamp); a numpy that raises
    # instead must not fail the file: the chunk takes loadtxt's route.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OverflowError("integer out of range")

    monkeypatch.setattr(readers_module.np, "fromstring", refuse)
    chunk = b"1,2\n3,4\n"
    assert readers_module._digit_ints(chunk, ",", 2) is None
    block = readers_module._csv_block(chunk, ",", 2)
    assert block is not None
    assert block.tolist() == [[1.0, 2.0], [3.0, 4.0]]
