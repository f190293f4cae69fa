"""Input files → records: every format, bad records, file-level failures, bounded reads."""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sinfer.errors import UnreadableInputError
from sinfer.records import (
    EMPTY_CELL,
    INVALID_ENCODING,
    INVALID_JSON,
    RAGGED_ROW,
    RECORD_TOO_LARGE,
    InputFormat,
    Record,
    detect_format,
    read_records,
)
from sinfer.records.readers import READ_CHUNK

MiB = 1024 * 1024


class SpyStream:
    """A stream that only has ``read(n)`` (like a StreamingBody) and records every size asked."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = None) -> bytes:
        self.sizes.append(size)
        return self._data.read(size)


def read(data: bytes, name: str, **kwargs: Any) -> list[Record]:
    return list(read_records(io.BytesIO(data), name, **kwargs))


def values(records: list[Record]) -> list[Any]:
    return [r.value for r in records]


def ids(records: list[Record]) -> list[Any]:
    return [r.id for r in records]


def npy_bytes(array: np.ndarray[Any, Any], **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


# --- format detection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("inputs/m/a.jsonl", None, InputFormat("jsonl")),
        ("A.NDJSON", None, InputFormat("jsonl")),
        ("a.json", None, InputFormat("json")),
        ("a.CSV", None, InputFormat("csv")),
        ("a.tsv", None, InputFormat("tsv")),
        ("a.npy", None, InputFormat("npy")),
        ("dir/cat.JPEG", None, InputFormat("image")),
        ("a.csv.gz", None, InputFormat("csv", gzip=True)),
        ("a.json.GZ", None, InputFormat("json", gzip=True)),
        ("upload", "text/csv; charset=utf-8", InputFormat("csv")),
        ("upload.bin", "application/x-ndjson", InputFormat("jsonl")),
        ("upload.gz", "application/json", InputFormat("json", gzip=True)),
        ("a.jsonl", "text/csv", InputFormat("jsonl")),  # the extension wins
    ],
)
def test_format_comes_from_the_extension_then_the_content_type(
    name: str, content_type: str | None, expected: InputFormat
) -> None:
    assert detect_format(name, content_type) == expected


def test_unknown_format_is_refused_at_the_call_listing_accepted_formats() -> None:
    stream = SpyStream(b"whatever")
    with pytest.raises(
        UnreadableInputError, match=r"cannot tell the format.*\.jsonl.*\.csv.*\.npy.*\.png"
    ) as info:
        read_records(stream, "data.parquet", "application/octet-stream")
    assert info.value.status == 422
    assert info.value.code == "unreadable_input"
    assert stream.sizes == []


def test_gzipped_images_are_refused() -> None:
    with pytest.raises(UnreadableInputError, match="images"):
        detect_format("cat.png.gz")


def test_reading_is_lazy() -> None:
    stream = SpyStream(b"[1]\n")
    records = read_records(stream, "a.jsonl")
    assert stream.sizes == []
    assert [r.value for r in records] == [[1]]


def test_the_callers_stream_is_left_open() -> None:
    for data, name in ((b"[1]\n", "a.jsonl"), (b"a\n1\n", "a.csv"), (gzip.compress(b"a\n1\n"), "a.csv.gz")):
        stream = io.BytesIO(data)
        assert len(list(read_records(stream, name))) == 1
        assert not stream.closed


# --- JSON Lines ---------------------------------------------------------------------------


def test_jsonl_record_rules() -> None:
    lines = [
        {"id": "a", "instance": [1, 2]},  # wrapper: id and instance
        {"instance": {"x": 1}},  # wrapper without id: the index
        {"id": 7, "x": 1.5, "y": "z"},  # id plus fields: the fields are the instance
        [3, 4],  # bare list
        5,  # bare number
        {"x": 1},  # object without id
        {"id": "only"},  # nothing but an id: a bare value
        None,
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    records = read(data, "a.jsonl")
    assert ids(records) == ["a", 1, 7, 3, 4, 5, 6, 7]
    assert values(records) == [
        [1, 2],
        {"x": 1},
        {"x": 1.5, "y": "z"},
        [3, 4],
        5,
        {"x": 1},
        {"id": "only"},
        None,
    ]
    assert [r.index for r in records] == list(range(8))
    assert all(r.ok for r in records)


def test_jsonl_blank_lines_are_skipped_and_not_counted() -> None:
    records = read(b"\n[1]\n\n   \r\n[2]\r\n\n", "a.jsonl")
    assert values(records) == [[1], [2]]
    assert ids(records) == [0, 1]


def test_jsonl_unicode_bom_and_missing_final_newline() -> None:
    data = "\ufeff" + '{"id": "é", "text": "日本語 \u2028 ok"}\n"naïve"'
    records = read(data.encode("utf-8"), "a.jsonl")
    assert ids(records) == ["é", 1]
    assert values(records) == [{"text": "日本語 \u2028 ok"}, "naïve"]


def test_jsonl_bad_lines_become_error_records_and_reading_continues() -> None:
    data = b'[1]\n{"broken": \n\n[2]\n"\xff\xfe"\n[3]\n'
    records = read(data, "a.jsonl")
    assert len(records) == 5  # records in = records out
    assert [r.error.code if r.error else None for r in records] == [
        None,
        INVALID_JSON,
        None,
        INVALID_ENCODING,
        None,
    ]
    assert records[1].value is None
    assert records[1].id == 1
    assert records[1].error is not None
    assert "line 2" in records[1].error.message
    assert records[3].error is not None
    assert "line 5" in records[3].error.message
    assert values(records)[::2] == [[1], [2], [3]]


def test_jsonl_pathological_lines_are_error_records() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    huge_int = b"1" * 5000
    records = read(deep + b"\n" + huge_int + b"\n[1]\n", "a.jsonl")
    assert [r.error.code if r.error else None for r in records] == [INVALID_JSON, INVALID_JSON, None]


def test_jsonl_line_over_the_limit_is_skipped_as_an_error_record() -> None:
    data = b"[1]\n" + b"[" + b"0," * 5000 + b"0]\n" + b"[2]\n"
    records = read(data, "a.jsonl", max_json_bytes=1000)
    assert values(records) == [[1], None, [2]]
    assert records[1].error is not None
    assert records[1].error.code == RECORD_TOO_LARGE
    assert "line 2" in records[1].error.message


# --- JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [[[1, 2], {"id": "b", "x": 3}], {"instances": [[1, 2], {"id": "b", "x": 3}], "parameters": {}}],
    ids=["list", "instances"],
)
def test_json_document_elements_follow_the_jsonl_rules(document: Any) -> None:
    records = read(b"\xef\xbb\xbf" + json.dumps(document).encode(), "a.json")
    assert ids(records) == [0, "b"]
    assert values(records) == [[1, 2], {"x": 3}]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"x": 1}', "expected a JSON list of instances"),
        (b'"text"', "got a string"),
        (b"[1, 2", "not valid JSON"),
        (b'["\xff"]', "not valid UTF-8"),
    ],
)
def test_json_that_is_not_a_list_of_instances_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(UnreadableInputError, match=match):
        read(data, "a.json")


def test_json_over_the_limit_points_at_jsonl() -> None:
    data = json.dumps(list(range(1000))).encode()
    stream = SpyStream(data)
    with pytest.raises(UnreadableInputError, match=r"larger than 100 bytes.*\.jsonl"):
        list(read_records(stream, "a.json", max_json_bytes=100))
    assert all(size is not None and 0 < size <= READ_CHUNK for size in stream.sizes)


# --- CSV and TSV --------------------------------------------------------------------------


def test_csv_with_an_id_column() -> None:
    data = b'id,a,b,label\nr1,1,2.5e-1,"cat, black"\nr2,-3,.5,dog\n'
    records = read(data, "a.csv")
    assert ids(records) == ["r1", "r2"]
    assert values(records) == [
        {"a": 1.0, "b": 0.25, "label": "cat, black"},
        {"a": -3.0, "b": 0.5, "label": "dog"},
    ]
    assert all(isinstance(v, float) for v in records[0].value.values() if not isinstance(v, str))


def test_csv_without_an_id_column_uses_the_index() -> None:
    records = read(b"a,b\n1,2\n\n3,4\n", "a.csv")
    assert ids(records) == [0, 1]
    assert values(records) == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]


def test_csv_ids_are_trimmed_and_a_blank_id_is_the_record_index() -> None:
    # Spreadsheets pad cells: " r1 " names the record "r1", as a number cell " 7 " reads 7.0.
    # A blank or all-space id cell leaves the record its index, as a file without ids gives.
    records = read(b"id,a\n r1 ,1\n,2\n   ,3\n\tr4\t,4\n", "a.csv")
    assert ids(records) == ["r1", 1, 2, "r4"]
    assert values(records) == [{"a": 1.0}, {"a": 2.0}, {"a": 3.0}, {"a": 4.0}]


def test_csv_id_column_is_configurable_and_duplicate_ids_are_reported_as_is() -> None:
    records = read(b"key,a\nk,1\nk,2\n", "a.csv", id_column="key")
    assert ids(records) == ["k", "k"]
    assert values(records) == [{"a": 1.0}, {"a": 2.0}]


def test_csv_numbers_strings_and_special_values() -> None:
    records = read(b"a,b,c,d,e\nnan,-inf,1e3, 7 ,N/A\n", "a.csv")
    value = records[0].value
    assert np.isnan(value["a"])
    assert value["b"] == float("-inf")
    assert value["c"] == 1000.0
    assert value["d"] == 7.0
    assert value["e"] == "N/A"


def test_tsv_unicode_bom_and_quoted_newlines() -> None:
    data = '\ufeffid\tname\tx\n1\tcafé 日本\t2\n2\t"two\nlines"\t3\n'.encode()
    records = read(data, "a.tsv")
    assert ids(records) == ["1", "2"]
    assert values(records) == [{"name": "café 日本", "x": 2.0}, {"name": "two\nlines", "x": 3.0}]


def test_csv_bad_rows_become_error_records_and_reading_continues() -> None:
    data = b"id,a,b\nr1,1,2\nr2,1\nr3,,\nr4,1,\xff\nr5,5,6\nr6,1,2,3\n"
    records = read(data, "a.csv")
    assert len(records) == 6
    codes = [r.error.code if r.error else None for r in records]
    assert codes == [None, RAGGED_ROW, EMPTY_CELL, INVALID_ENCODING, None, RAGGED_ROW]
    assert ids(records) == ["r1", "r2", "r3", 3, "r5", "r6"]
    messages = [r.error.message for r in records if r.error]
    assert messages[0] == "line 3: expected 3 cells (one per header column), got 2"
    assert messages[1] == "line 4: columns 'a', 'b' are empty"
    assert "line 5" in messages[2]
    assert "got 4" in messages[3]
    assert values(records)[4] == {"a": 5.0, "b": 6.0}


def test_csv_empty_id_falls_back_to_the_index() -> None:
    records = read(b"id,a\n,1\n", "a.csv")
    assert ids(records) == [0]
    assert values(records) == [{"a": 1.0}]


def test_csv_field_over_the_csv_module_limit_is_an_error_record() -> None:
    big = b"x" * (csv.field_size_limit() + 10)
    records = read(b"a\n" + big + b"\n1\n", "a.csv")
    assert records[0].error is not None
    assert records[0].error.code == "invalid_csv"
    assert values(records)[-1] == {"a": 1.0}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "expected a header row"),
        (b"\n\n", "expected a header row"),
        (b",a,b\n0,1,2\n", "column 1 of the header row has no name"),
        (b"a,b,a\n1,2,3\n", "more than once"),
        (b"a,\xff\n1,2\n", "not valid UTF-8"),
    ],
)
def test_csv_header_problems_are_file_errors(data: bytes, match: str) -> None:
    with pytest.raises(UnreadableInputError, match=match):
        read(data, "a.csv")


# --- .npy ---------------------------------------------------------------------------------


def test_npy_2d_float32_rows() -> None:
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    records = read(npy_bytes(array), "a.npy")
    assert ids(records) == [0, 1, 2, 3]
    for record, row in zip(records, array, strict=True):
        assert isinstance(record.value, np.ndarray)
        assert record.value.dtype == np.float32
        np.testing.assert_array_equal(record.value, row)


def test_npy_1d_rows_are_0d_arrays() -> None:
    records = read(npy_bytes(np.array([1.5, 2.5, 3.5])), "a.npy")
    assert [r.value.shape for r in records] == [(), (), ()]
    assert all(isinstance(r.value, np.ndarray) for r in records)
    assert [float(r.value) for r in records] == [1.5, 2.5, 3.5]


def test_npy_0d_is_one_record_and_higher_ranks_keep_their_row_shape() -> None:
    assert [float(r.value) for r in read(npy_bytes(np.array(4.0)), "a.npy")] == [4.0]
    cube = np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4)
    records = read(npy_bytes(cube), "a.npy")
    assert len(records) == 2
    np.testing.assert_array_equal(records[1].value, cube[1])


def test_npy_fortran_order_1d_is_fine_but_2d_is_refused() -> None:
    assert len(read(npy_bytes(np.asfortranarray(np.arange(3.0))), "a.npy")) == 3
    with pytest.raises(UnreadableInputError, match="Fortran order"):
        read(npy_bytes(np.asfortranarray(np.ones((3, 2)))), "a.npy")


def test_npy_with_objects_is_refused_without_unpickling() -> None:
    data = npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UnreadableInputError, match="Python objects"):
        read(data, "a.npy")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a valid .npy"),
        (b"not an npy file at all", "not a valid .npy"),
        (npy_bytes(np.ones((10, 4), dtype=np.float32))[:-20], "ends early"),
    ],
)
def test_npy_that_is_not_npy_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(UnreadableInputError, match=match):
        read(data, "a.npy")


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "inputs/m/cat.png"), ("JPEG", "inputs/m/dog.JPG")])
def test_an_image_is_one_record_of_its_bytes(fmt: str, name: str) -> None:
    data = image_bytes(fmt)
    records = read(data, name)
    assert len(records) == 1
    assert records[0].id == name.rsplit("/", 1)[1]
    assert records[0].value == data


def test_a_file_named_like_an_image_that_is_not_one_is_refused() -> None:
    with pytest.raises(UnreadableInputError, match="not a PNG or JPEG"):
        read(b"GIF89a....", "a.png")


# --- gzip ---------------------------------------------------------------------------------


def test_gzip_of_each_text_format() -> None:
    assert values(read(gzip.compress(b"[1]\n[2]\n"), "a.jsonl.gz")) == [[1], [2]]
    assert values(read(gzip.compress(b'{"instances": [[3]]}'), "a.json.gz")) == [[3]]
    assert values(read(gzip.compress(b"a,b\n1,x\n"), "a.csv.gz")) == [{"a": 1.0, "b": "x"}]
    # Concatenated gzip members (what `cat a.gz b.gz` gives) are one stream.
    assert values(read(gzip.compress(b"[1]\n") + gzip.compress(b"[2]\n"), "a.jsonl.gz")) == [[1], [2]]


def test_empty_gzip_file_has_no_records() -> None:
    assert read(b"", "a.jsonl.gz") == []


def _crc_broken(data: bytes) -> bytes:
    crc = struct.unpack("<I", data[-8:-4])[0]
    return data[:-8] + struct.pack("<I", crc ^ 1) + data[-4:]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"this is not gzip", "Not a gzipped file"),
        (gzip.compress(b"[1]\n" * 1000)[:-30], "ended before"),
        (_crc_broken(gzip.compress(b"[1]\n" * 1000)), "CRC check failed"),
        (gzip.compress(b"[1]\n")[:10] + b"\x00garbage-deflate" * 4, ""),
    ],
    ids=["bad-header", "truncated", "crc", "corrupt-deflate"],
)
def test_corrupt_gzip_is_a_file_error(data: bytes, match: str) -> None:
    with pytest.raises(UnreadableInputError, match=f"a.jsonl.gz is not valid gzip: .*{match}"):
        read(data, "a.jsonl.gz")


def test_decompression_bomb_is_stopped_at_the_limit() -> None:
    bomb = gzip.compress(b"0" * (64 * MiB))  # 64 MiB of zeros: ~64 KiB compressed
    assert len(bomb) < MiB
    records = read_records(io.BytesIO(bomb), "a.csv.gz", max_decompressed_bytes=MiB)
    with pytest.raises(UnreadableInputError, match=r"decompresses to more than 1,048,576 bytes"):
        list(records)
    # Under the limit a similar file reads: one header, one cell too big for csv (an error record).
    assert len(read(gzip.compress(b"a\n" + b"0" * MiB), "a.csv.gz", max_decompressed_bytes=2 * MiB)) == 1


# --- bounded reads ------------------------------------------------------------------------


def _jsonl_input() -> bytes:
    return b"".join(json.dumps({"id": i, "x": [i] * 20}).encode() + b"\n" for i in range(40_000))


def _csv_input() -> bytes:
    return b"id,a,b,c\n" + b"".join(f"r{i},{i},{i * 0.5},text {i}\n".encode() for i in range(150_000))


def _npy_input() -> bytes:
    return npy_bytes(np.arange(3_000_000, dtype=np.float32).reshape(-1, 30))


@pytest.mark.parametrize(
    ("name", "make", "count"),
    [
        ("big.jsonl", _jsonl_input, 40_000),
        ("big.csv", _csv_input, 150_000),
        ("big.npy", _npy_input, 100_000),
        ("big.jsonl.gz", lambda: gzip.compress(_jsonl_input(), compresslevel=1), 40_000),
        ("big.csv.gz", lambda: gzip.compress(_csv_input(), compresslevel=1), 150_000),
    ],
)
def test_multi_megabyte_inputs_are_read_in_bounded_chunks(name: str, make: Any, count: int) -> None:
    data = make()
    assert len(data) > 3 * MiB or name.endswith(".gz")
    stream = SpyStream(data)
    assert sum(1 for _ in read_records(stream, name)) == count
    assert stream.sizes, "the stream was never read"
    assert all(size is not None and 0 < size <= 8 * MiB for size in stream.sizes), set(stream.sizes)
    assert max(s for s in stream.sizes if s is not None) <= READ_CHUNK


def test_npy_rows_are_decoded_in_chunks_not_all_at_once() -> None:
    array = np.arange(2_000_000, dtype=np.float64).reshape(-1, 4)  # 16 MB of data
    records = read_records(SpyStream(npy_bytes(array)), "a.npy")
    first = next(records)
    assert first.value.base is not None
    assert first.value.base.nbytes <= 4 * MiB  # a view into one chunk, not into the whole file
    rest = list(records)
    np.testing.assert_array_equal(rest[-1].value, array[-1])


# --- property: JSONL round trip -----------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
# Top-level objects with "id"/"instance" keys follow the wrapper rules; tested separately.
plain_values = json_values.filter(lambda v: not (isinstance(v, dict) and ({"id", "instance"} & set(v))))


@settings(max_examples=150, deadline=None)
@given(st.lists(plain_values, max_size=20), st.booleans())
def test_jsonl_round_trips_any_json_values(items: list[Any], ascii_only: bool) -> None:
    data = b"".join(json.dumps(item, ensure_ascii=ascii_only).encode() + b"\n" for item in items)
    records = read(data, "a.jsonl")
    assert len(records) == len(items)
    assert values(records) == items
    assert ids(records) == list(range(len(items)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(json_scalars, json_values), max_size=10))
def test_jsonl_wrapped_instances_round_trip_with_their_ids(items: list[tuple[Any, Any]]) -> None:
    data = b"".join(json.dumps({"id": i, "instance": v}).encode() + b"\n" for i, v in items)
    records = read(gzip.compress(data), "a.jsonl.gz")
    assert [(r.id, r.value) for r in records] == items


@pytest.mark.parametrize("reader", ["records", "blocks"])
def test_a_csv_line_over_the_limit_is_one_error_record_held_in_bounded_memory(reader: str) -> None:
    # GIVEN a gzipped CSV with one line of 24 MiB between good rows (a megabyte of gzip may
    # inflate to a gigabyte of one line, which was read whole: ~2 GB of memory)
    import tracemalloc

    from sinfer.records.readers import read_blocks

    body = b"a,b\n1,2\n3," + b"9" * (24 << 20) + b"\n4,5\n"
    data = gzip.compress(body, mtime=0)
    limit = 1 << 20

    # WHEN it is read with a 1 MiB line limit
    tracemalloc.start()
    try:
        if reader == "records":
            records = read(data, "t.csv.gz", max_json_bytes=limit)
        else:
            records = []
            for item in read_blocks(
                io.BytesIO(data), "t.csv.gz", columns_ok=lambda _: False, max_json_bytes=limit
            ):
                assert isinstance(item, list)
                records.extend(item)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # THEN the long line is one record_too_large record naming its line, the rows around it
    # are read with their own line numbers, and memory stayed far under the line's size (read
    # whole, the line took 50 MiB here; bounded, 6 MiB and 11 MiB, the same for a 96 MiB line)
    assert [r.error.code if r.error else r.value for r in records] == [
        {"a": 1.0, "b": 2.0},
        RECORD_TOO_LARGE,
        {"a": 4.0, "b": 5.0},
    ]
    error = records[1].error
    assert error is not None
    assert error.message == "line 3 is longer than 1,048,576 characters, the most one row may take"
    assert peak < 16 * limit, peak


def test_json_that_would_make_millions_of_lists_is_refused_before_parsing() -> None:
    # GIVEN a .json.gz of ~60 KB holding 5 million empty lists (parsed: ~2 GB of memory), and a
    # JSONL file with such a line between two good ones
    import tracemalloc

    from sinfer.codecs.jsontext import MAX_JSON_CONTAINERS, too_many_containers

    bomb = b"[" + b"[]," * 5_000_000 + b"[]]"
    tracemalloc.start()
    try:
        # WHEN each is read, THEN the document is refused and the line is one error record,
        # before either is parsed
        with pytest.raises(UnreadableInputError, match=r"5,000,002 JSON lists and objects.*JSON Lines"):
            read(gzip.compress(bomb, mtime=0), "bomb.json.gz")
        records = read(gzip.compress(b"[1]\n" + bomb + b"\n[2]\n", mtime=0), "bomb.jsonl.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.value for r in records[::2]] == [[1], [2]]
    error = records[1].error
    assert error is not None
    assert error.code == RECORD_TOO_LARGE
    assert error.message.startswith("line 2 holds up to 5,000,002 JSON lists and objects")
    assert peak < 8 * len(bomb), peak  # (the text, not its ~5 million parsed lists)
    # AND the limit is exact: MAX_JSON_CONTAINERS brackets pass, one more does not
    at_limit = b"[" * MAX_JSON_CONTAINERS + b" " * MAX_JSON_CONTAINERS
    assert too_many_containers(at_limit) is None
    assert too_many_containers(at_limit + b"{") == MAX_JSON_CONTAINERS + 1


def test_an_empty_npy_of_empty_rows_is_no_records() -> None:
    # (0, 0): no rows, so no rows of no values either (it divided by its zero row size)
    assert read(npy_bytes(np.zeros((0, 0))), "a.npy") == []
    assert read(npy_bytes(np.zeros((0, 3))), "a.npy") == []


def test_the_block_reader_agrees_on_a_csv_line_over_a_lowered_limit() -> None:
    # A line over the limit that still fits in one chunk was parsed by the block reader (the
    # record reader makes it a record_too_large record)
    from sinfer.records.readers import read_blocks

    body = b"a,b\n1,2\n3," + b"9" * 300 + b"\n4,5\n"
    records = read(body, "t.csv", max_json_bytes=100)
    blocks = list(read_blocks(io.BytesIO(body), "t.csv", columns_ok=lambda _: True, max_json_bytes=100))
    flat = [record for item in blocks for record in (item if isinstance(item, list) else [])]
    assert all(isinstance(item, list) for item in blocks)
    assert [(r.id, r.value, r.error) for r in flat] == [(r.id, r.value, r.error) for r in records]
    assert [r.error.code if r.error else None for r in records] == [None, RECORD_TOO_LARGE, None]
