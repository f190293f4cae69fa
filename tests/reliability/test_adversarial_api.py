"""predict_api under adversarial input: every bad request is a 4xx that says why, never a 5xx.

Every test runs against a REST (1.0) and an HTTP API (2.0) event (``call_api`` is
parametrised). Beyond the status, each response must be strict JSON (RFC 8259: no ``NaN``
tokens, which JavaScript's and Go's parsers refuse), and bombs must be refused before they
cost memory: the gzip bomb inflates 1 GiB of zeros and the PNG claims 10 gigapixels, and the
test measures what the request allocated.

test_api.py covers one example per status; this module covers the inputs an attacker or a
broken client sends, plus hypothesis over arbitrary JSON documents and near-valid tensors.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import struct
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto

from sinfer.api import routes
from sinfer.codecs.dtypes import V2_TO_NUMPY
from sinfer.inference.registry import reset_default_registry
from tests.conftest import MODELS, CallApi
from tests.functional.conftest import AwsStack
from tests.reliability.conftest import GiB, MiB, fuzz, png_claiming, strict_json, zeros_gzip
from tests.unit import onnx_graphs

PREDICT = "/v1/models/digits:predict"
INFER = "/v2/models/digits/infer"
CANCER = "/v1/models/breast_cancer:predict"
JSON_HEADERS = {"Content-Type": "application/json"}
DEEP = 100_000


def _error(response: Any, status: int | tuple[int, ...], needle: str = "") -> str:
    """Assert a 4xx JSON error of the given status, mentioning ``needle``; return its message."""
    wanted = (status,) if isinstance(status, int) else status
    assert response.status in wanted, (response.status, response.body[:300])
    doc = strict_json(response.body)
    assert set(doc) == {"error", "code"}
    assert doc["error"]
    assert doc["code"] != "internal_error"
    assert needle.lower() in doc["error"].lower(), doc["error"]
    return str(doc["error"])


def _never_5xx(response: Any) -> Any:
    """The invariant: below 500, strict JSON, and an error message on every 4xx."""
    assert response.status < 500, (response.status, response.body[:300])
    if response.headers.get("Content-Type", "").startswith("application/octet-stream"):
        return None
    doc = strict_json(response.body)
    if response.status >= 400:
        assert isinstance(doc, dict), doc
        assert doc.get("error"), doc
        assert doc.get("code"), doc
    return doc


def _digits(value: Any = 0.0, count: int = 64) -> list[Any]:
    return [value] * count


def _v2(name: str, shape: list[Any], datatype: str, data: Any, **extra: Any) -> bytes:
    return json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **extra}
    ).encode()


@pytest.fixture
def mixed_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo models plus ``multi`` (float, int64, bool and string inputs) and an int64 identity."""
    for name in ("digits", "breast_cancer"):
        shutil.copytree(MODELS / name, tmp_path / name)
    onnx_graphs.multi_io(tmp_path)
    onnx_graphs.identity(tmp_path, "ints", TensorProto.INT64, ["N", 2])
    monkeypatch.setenv("MODEL_STORE", str(tmp_path))
    reset_default_registry()
    return tmp_path


# --- 1. malformed requests ------------------------------------------------------------------------

MALFORMED = [
    # (id, path, body, headers, status, what the message must say)
    ("not-json", PREDICT, b"{not json", {}, 400, "not valid JSON"),
    ("truncated", INFER, b'{"inputs": [', {}, 400, "not valid JSON"),
    ("empty-predict", PREDICT, b"", {}, 400, "empty body"),
    ("empty-infer", INFER, b"", {}, 400, "not valid JSON"),
    ("invalid-utf8", PREDICT, b'{"instances": ["\xff\xfe"]}', {}, 400, "not valid JSON"),
    ("utf16-bom", INFER, "{}".encode("utf-16"), {}, 400, "inputs"),
    ("nul-bytes", PREDICT, b"\0" * 64, {}, 400, "not valid JSON"),
    ("instances-not-list", PREDICT, b'{"instances": "x"}', {}, 400, "must be a list"),
    ("instances-object", PREDICT, b'{"instances": {"a": 1}}', {}, 400, "must be a list"),
    ("top-level-list", PREDICT, b"[[1, 2]]", {}, 400, "instances"),
    ("top-level-null", INFER, b"null", {}, 400, "inputs"),
    ("inputs-empty", INFER, b'{"inputs": []}', {}, 400, "inputs"),
    ("tensor-not-object", INFER, b'{"inputs": [7]}', {}, 400, "expected an object"),
    ("name-not-string", INFER, _v2(5, [1], "FP32", [1]), {}, 400, "'name'"),  # type: ignore[arg-type]
    ("shape-string", INFER, _v2("pixels", "1,64", "FP32", [1]), {}, 400, "shape"),  # type: ignore[arg-type]
    ("shape-negative", INFER, _v2("pixels", [-1, 64], "FP32", [1]), {}, 400, "shape"),
    ("shape-float", INFER, _v2("pixels", [1.0, 64], "FP32", _digits()), {}, 400, "shape"),
    ("shape-bool", INFER, _v2("pixels", [True, 64], "FP32", _digits()), {}, 400, "shape"),
    ("unknown-datatype", INFER, _v2("pixels", [1, 64], "FP99", _digits()), {}, 400, "datatype"),
    # the data must be what the request declares: numbers declared BOOL (16 would be True), or
    # true/false declared FP32
    ("bool-of-numbers", INFER, _v2("pixels", [1, 64], "BOOL", _digits()), {}, 422, "true or false"),
    ("numbers-of-bools", INFER, _v2("pixels", [1, 2], "FP32", [True, False]), {}, 422, "not true or false"),
    (
        "parameters-list",
        INFER,
        _v2("pixels", [1, 64], "FP32", _digits(), parameters=[]),
        {},
        400,
        "parameters",
    ),
    ("outputs-object", INFER, _v2("pixels", [1, 64], "FP32", _digits(), outputs={}), {}, 400, "outputs"),
    (
        "duplicate-input",
        INFER,
        json.dumps(
            {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": _digits()}] * 2}
        ).encode(),
        {},
        400,
        "twice",
    ),
    ("header-length-text", INFER, b"{}", {"Inference-Header-Content-Length": "x"}, 400, "integer"),
    ("header-length-long", INFER, b"{}", {"Inference-Header-Content-Length": "99"}, 400, "body has 2 bytes"),
    (
        "header-length-negative",
        INFER,
        b"{}",
        {"Inference-Header-Content-Length": "-1"},
        400,
        "Inference-Header",
    ),
    (
        "corrupt-gzip",
        PREDICT,
        b"\x1f\x8b\x08\x00garbage",
        {"Content-Encoding": "gzip"},
        400,
        "not valid gzip",
    ),
    (
        "corrupt-deflate",
        PREDICT,
        b"\x78\x9cgarbage",
        {"Content-Encoding": "deflate"},
        400,
        "not valid deflate",
    ),
    ("unknown-encoding", PREDICT, b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("wrong-content-type", INFER, b"<xml/>", {"Content-Type": "application/xml"}, 415, "Content-Type"),
    ("csv-to-predict", PREDICT, b"a,b\n1,2\n", {"Content-Type": "text/csv"}, 415, "application/json"),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "needle"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_requests_are_400s_that_say_why(
    call_api: CallApi, path: str, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    _error(call_api("POST", path, body, {**JSON_HEADERS, **headers}), status, needle)


@pytest.mark.parametrize("path", [PREDICT, INFER, "/jobs"])
@pytest.mark.parametrize(
    "body",
    [b"[" * DEEP + b"]" * DEEP, b"[" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP],
    ids=["balanced", "unclosed", "objects"],
)
def test_json_nested_100k_levels_deep_is_a_400_not_a_recursion_error(
    call_api: CallApi, path: str, body: bytes
) -> None:
    _error(call_api("POST", path, body, JSON_HEADERS), 400, "nested too deeply")


def test_nesting_that_parses_but_is_deeper_than_any_tensor_is_a_4xx(call_api: CallApi) -> None:
    # 900 levels parse (under the interpreter's recursion limit) but no array has 900 axes
    deep = "[" * 900 + "0" + "]" * 900
    _error(call_api("POST", PREDICT, f'{{"instances": [{deep}]}}', JSON_HEADERS), 422)
    tensor = f'{{"name": "pixels", "shape": [1], "datatype": "FP32", "data": {deep}}}'
    _error(call_api("POST", INFER, f'{{"inputs": [{tensor}]}}', JSON_HEADERS), (400, 422))
    # ... also where the value is only echoed back (the request id)
    response = call_api("POST", INFER, _v2("pixels", [1, 64], "FP32", _digits(), id=json.loads(deep)))
    assert _never_5xx(response) is not None


# --- 2. wrong types, shapes and numbers -------------------------------------------------------------

WRONG = [
    ("short-row", PREDICT, {"instances": [[1.0, 2.0]]}, 422, "[64]"),
    ("text-pixels", PREDICT, {"instances": [_digits("a")]}, 422, "float32"),
    ("null-instance", PREDICT, {"instances": [None]}, 422, "float32"),
    ("ragged", PREDICT, {"instances": [[[1, 2], [3]]]}, 422, "ragged"),
    ("object-for-vector", PREDICT, {"instances": [{"a": 1}]}, 422, "keys"),
    ("b64-not-base64", PREDICT, {"instances": [{"b64": "!!!"}]}, 422, "base64"),
    ("b64-not-string", PREDICT, {"instances": [{"b64": 5}]}, 422, "base64"),
    (
        "b64-garbage-image",
        PREDICT,
        {"instances": [{"b64": base64.b64encode(random.Random(2).randbytes(256)).decode()}]},
        422,
        "PNG or JPEG",
    ),
    (
        "v2-too-few-values",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 63}]},
        422,
        "needs 64",
    ),
    (
        "v2-wrong-rank",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [64], "datatype": "FP32", "data": _digits()}]},
        422,
        "[N, 64]",
    ),
    (
        "v2-text-data",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": _digits("x")}]},
        422,
        "FP32",
    ),
    (
        "v2-unknown-input",
        INFER,
        {"inputs": [{"name": "nope", "shape": [1, 64], "datatype": "FP32", "data": _digits()}]},
        422,
        "missing ['pixels']",
    ),
    (
        "v2-unknown-output",
        INFER,
        {
            "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": _digits()}],
            "outputs": [{"name": "nope"}],
        },
        422,
        "unknown outputs",
    ),
    (
        "v2-huge-shape",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [10**11] * 3, "datatype": "FP32", "data": [1]}]},
        422,
        "1000000000000000000000000000000000 values",
    ),
    (
        "v2-zero-and-huge",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [2**64, 0], "datatype": "FP32", "data": []}]},
        (400, 422),
        "shape",
    ),
    (
        "v2-70-axes",
        INFER,
        {"inputs": [{"name": "pixels", "shape": [1] * 70, "datatype": "FP32", "data": [1]}]},
        (400, 422),
        "shape",
    ),
    ("tabular-unknown-unicode-column", CANCER, {"instances": [{"rayon moyen ✓": 1.0}]}, 422, "unknown"),
    ("tabular-nul-column", CANCER, {"instances": [{"\u0000": 1.0}]}, 422, "missing"),
]


@pytest.mark.parametrize(
    ("path", "doc", "status", "needle"), [c[1:] for c in WRONG], ids=[c[0] for c in WRONG]
)
def test_wrong_types_and_shapes_are_422s_saying_what_was_expected(
    call_api: CallApi, path: str, doc: dict[str, Any], status: int, needle: str
) -> None:
    _error(call_api("POST", path, doc), status, needle)


def test_integers_past_64_bits_are_floats_to_a_float_input(call_api: CallApi) -> None:
    # JSON allows any integer; json keeps it exact, and numpy could not type it (a 422 that
    # said "mixed or non-numeric values", where a CSV cell of the same digits is a float). Past
    # a double's range it is infinity, as the literal 1e400 is (a 401-digit one was a 500).
    for big, same in ((10**26, 1e26), (-(2**63) - 1, -(2.0**63)), (10**400, "1e400")):
        exact = call_api("POST", PREDICT, f'{{"instances": [[{",".join([str(big)] * 64)}]]}}', JSON_HEADERS)
        floats = call_api("POST", PREDICT, f'{{"instances": [[{",".join([str(same)] * 64)}]]}}', JSON_HEADERS)
        assert exact.status == floats.status == 200, exact.body[:300]
        assert strict_json(exact.body) == strict_json(floats.body)


def test_a_5001_digit_integer_is_a_400(call_api: CallApi) -> None:
    body = '{"instances": [[1' + "0" * 5000 + "]]}"
    _error(call_api("POST", PREDICT, body, JSON_HEADERS), 400, "digits")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_floats_are_passed_through_and_answered_with_strict_json(
    call_api: CallApi, token: str
) -> None:
    # GIVEN JSON's missing values as Python clients send them (NaN tokens, or overflowing 1e400)
    # into float models, which may treat NaN as missing. The request is valid for a float input;
    # what must never happen is a response a strict JSON parser refuses.
    row = "[" + ",".join([token] * 64) + "]"
    for path, body in [
        (PREDICT, f'{{"instances": [{row}]}}'),
        (CANCER, '{"instances": [[' + ",".join([token] * 30) + "]]}"),
        (INFER, f'{{"inputs": [{{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": {row}}}]}}'),
    ]:
        response = call_api("POST", path, body, JSON_HEADERS)
        assert response.status == 200, response.body[:300]
        doc = strict_json(response.body)  # THEN non-finite scores are null, not NaN
        assert b"NaN" not in response.body
        assert b"Infinity" not in response.body
        if "predictions" in doc:
            assert doc["predictions"][0]["score"] is None


@pytest.mark.parametrize(
    ("data", "datatype", "needle"),
    [
        ([2**63, 0], "INT64", "INT64"),  # one past int64's maximum
        ([2.0**63, 0], "INT64", "INT64"),  # the same as a float, which equals int64's maximum as floats
        ([-(2**63) - 1, 0], "INT64", "INT64"),
        ([10**30, 0], "INT64", "INT64"),
        ([1.5, 0], "INT64", "integers"),
        ([float("nan"), 0], "INT64", "integers"),
        ([float("inf"), 0], "INT64", "integers"),
        ([2**64, 0], "UINT64", "INT64"),
    ],
)
def test_integers_beyond_int64_into_an_int64_input_are_refused(
    call_api: CallApi, mixed_store: Path, data: list[Any], datatype: str, needle: str
) -> None:
    body = _v2("x", [1, 2], datatype, data)
    response = call_api("POST", "/v2/models/ints/infer", body, JSON_HEADERS)
    _error(response, 422, needle if datatype == "INT64" else "")
    v1 = call_api("POST", "/v1/models/ints:predict", json.dumps({"instances": [data]}).encode(), JSON_HEADERS)
    _error(v1, 422)


def test_int64_extremes_themselves_are_accepted(call_api: CallApi, mixed_store: Path) -> None:
    extremes = [2**63 - 1, -(2**63)]
    response = call_api("POST", "/v2/models/ints/infer", _v2("x", [1, 2], "INT64", extremes))
    assert response.status == 200
    assert strict_json(response.body)["outputs"][0]["data"] == extremes


# --- 3. images and bombs ------------------------------------------------------------------------------


def _allocated(call: Any) -> tuple[Any, int, float]:
    """Run ``call`` and return its result, the peak bytes Python allocated, and the seconds taken."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1], time.perf_counter() - started
    finally:
        tracemalloc.stop()


def _garbage(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Seeded, so each case is the same bytes on every run. A GIF is refused by its signature, never
# parsed: the one claiming a 6.9-gigapixel screen gets the same answer as the other.
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_garbage(0, 4096), "not an image"),
        (b"\x89PNG\r\n\x1a\n" + _garbage(0, 512), "not an image"),
        (b"\xff\xd8\xff" + _garbage(0, 512), "could not decode it"),
        (b"GIF89a\x08\x00\x08\x00" + _garbage(1, 60), "got a GIF"),
        (b"GIF89a" + _garbage(6, 64), "got a GIF"),  # a screen of 6.9 gigapixels
    ],
    ids=["random", "png-magic-then-garbage", "jpeg-magic-then-garbage", "gif", "gif-claiming-gigapixels"],
)
def test_garbage_bytes_sent_as_an_image_are_422(call_api: CallApi, body: bytes, needle: str) -> None:
    message = _error(call_api("POST", PREDICT, body, {"Content-Type": "image/png"}), 422, needle)
    assert "expected a PNG or JPEG image" in message


@pytest.mark.parametrize("magic", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00"])
def test_any_garbage_after_any_magic_is_a_422_naming_the_formats(call_api: CallApi, magic: bytes) -> None:
    # Whatever Pillow makes of it (no format, a truncated file, a bomb, another format), the
    # refusal is a 422 that names what is accepted, never a 500.
    for seed in range(25):
        body = magic + _garbage(seed, 256)
        _error(call_api("POST", PREDICT, body, {"Content-Type": "image/png"}), 422, "PNG or JPEG")


@pytest.mark.parametrize(
    ("width", "height", "needle"),
    [(100_000, 100_000, "pixels"), (7_000, 7_000, "at most 40,000,000 pixels"), (2**31 - 1, 1, "pixels")],
    ids=["10-gigapixels", "49-megapixels", "2^31-wide"],
)
def test_a_png_claiming_huge_dimensions_is_refused_before_decoding(
    call_api: CallApi, width: int, height: int, needle: str
) -> None:
    # GIVEN a few hundred bytes of PNG whose header claims up to ten billion pixels
    bomb = png_claiming(width, height)
    assert len(bomb) < 8192

    # WHEN it is sent raw, and as a b64 instance
    raw, peak, seconds = _allocated(lambda: call_api("POST", PREDICT, bomb, {"Content-Type": "image/png"}))
    b64 = call_api("POST", PREDICT, {"instances": [{"b64": base64.b64encode(bomb).decode()}]})

    # THEN both are 422s naming the pixel limit, refused from the header: quickly, in little memory
    _error(raw, 422, needle)
    _error(b64, 422, needle)
    assert peak < 16 * MiB, peak
    assert seconds < 5, seconds


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_inflating_to_1_gib_is_stopped_at_the_limit(
    call_api: CallApi, encoding: str
) -> None:
    # GIVEN about 1 MB on the wire that inflates to 1 GiB of zeros
    bomb = zeros_gzip(GiB)
    if encoding == "deflate":  # the same deflate blocks in a zlib wrapper
        bomb = b"\x78\x9c" + bomb[10:-8]
    assert len(bomb) < routes.MAX_SYNC_PAYLOAD_BYTES

    # WHEN it is posted with Content-Encoding
    headers = {**JSON_HEADERS, "Content-Encoding": encoding}
    response, peak, seconds = _allocated(lambda: call_api("POST", PREDICT, bomb, headers))

    # THEN it is a 413 pointing at /jobs, having inflated no more than the limit
    _error(response, 413, "decompressed body exceeds")
    assert peak < 4 * routes.MAX_SYNC_PAYLOAD_BYTES + 4 * len(bomb), peak
    assert seconds < 5, seconds


def test_a_truncated_gzip_body_is_refused_and_a_multi_member_one_read_whole(call_api: CallApi) -> None:
    import gzip

    body = json.dumps({"instances": [_digits(1.0), _digits(2.0)]}).encode()
    packed = gzip.compress(body, mtime=0)
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    # a body cut short is not read as the prefix it holds
    _error(call_api("POST", PREDICT, packed[: len(packed) // 2], headers), 400, "ends before the stream")
    # `cat a.gz b.gz` is valid gzip: both members are the body
    half = len(body) // 2
    members = gzip.compress(body[:half], mtime=0) + gzip.compress(body[half:], mtime=0)
    response = call_api("POST", PREDICT, members, headers)
    assert response.status == 200, response.body[:300]
    assert len(strict_json(response.body)["predictions"]) == 2
    # ... but not a member followed by garbage
    _error(call_api("POST", PREDICT, packed + b"garbage!", headers), 400, "not valid gzip")
    # ... nor more members than MAX_GZIP_MEMBERS: each costs a copy of the rest, and ~190,000
    # empty members in 4.4 MB took a minute to refuse
    from sinfer.api.payload import MAX_GZIP_MEMBERS

    many = gzip.compress(body, mtime=0) + gzip.compress(b"", mtime=0) * (MAX_GZIP_MEMBERS - 1)
    assert call_api("POST", PREDICT, many, headers).status == 200
    flood = gzip.compress(b" ", mtime=0) * (routes.MAX_SYNC_PAYLOAD_BYTES // 21)
    _error(call_api("POST", PREDICT, many + gzip.compress(b"", mtime=0), headers), 400, "members")
    _error(call_api("POST", PREDICT, flood, headers), 400, f"more than {MAX_GZIP_MEMBERS} members")


def test_a_body_over_the_sync_limit_is_413_pointing_at_jobs(call_api: CallApi) -> None:
    body = b'{"instances": [' + b"[" + b"0," * (routes.MAX_SYNC_PAYLOAD_BYTES // 2) + b"0]]}"
    _error(call_api("POST", PREDICT, body, JSON_HEADERS), 413, "/jobs")
    # ... gzipped below the limit on the wire, over it inflated
    import gzip

    packed = gzip.compress(body, mtime=0)
    assert len(packed) < routes.MAX_SYNC_PAYLOAD_BYTES
    _error(call_api("POST", PREDICT, packed, {**JSON_HEADERS, "Content-Encoding": "gzip"}), 413, "/jobs")


def test_too_many_instances_is_413(call_api: CallApi) -> None:
    doc = {"instances": [[0]] * (routes.MAX_SYNC_INSTANCES + 1)}
    message = _error(call_api("POST", PREDICT, doc), 413, "instances")
    assert "/jobs" in message


# --- 4. names, unicode and paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..:predict",
        "/v1/models/%2e%2e:predict",
        "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
        "/v1/models/digits/versions/..:predict",
        "/v1/models/digits/versions/%2E%2E%2F1:predict",
        "/v2/models/%2e%2e/versions/1/infer",
        "/v1/models/dígits:predict",
        "/v1/models/digits%00:predict",
        "/v1/models/" + "a" * 300 + ":predict",
        "/v2/models/.hidden/infer",
    ],
)
def test_path_like_and_unicode_model_names_are_404s(call_api: CallApi, path: str) -> None:
    _error(call_api("POST", path, {"instances": [_digits()]}), 404, "invalid")  # (model name, or version)


def test_unicode_and_escaped_keys_and_values_are_read_as_text(call_api: CallApi, mixed_store: Path) -> None:
    # GIVEN a string input fed emoji, right-to-left text, escapes, NUL and path-like text
    names = ["👩‍🔬", "مرحبا", "a\\u0000b", "\u0000", "%2e%2e/", "../../etc/passwd"]
    instances = [{"x": [1.0, 2.0, 3.0], "ids": [1, 2], "flag": True, "name": n} for n in names]

    response = call_api("POST", "/v1/models/multi:predict", {"instances": instances})

    # THEN each is text to the model, echoed back unchanged
    doc = _never_5xx(response)
    assert response.status == 200
    assert [p["name_out"] for p in doc["predictions"]] == names


def test_a_lone_surrogate_the_model_cannot_encode_is_a_422(call_api: CallApi, mixed_store: Path) -> None:
    # "\ud800" is legal as a JSON escape but has no UTF-8 form, which ONNX Runtime needs
    instance = {"x": [1.0, 2.0, 3.0], "ids": [1, 2], "flag": True, "name": "\ud800"}
    _error(call_api("POST", "/v1/models/multi:predict", {"instances": [instance]}), 422, "could not run")


# --- 5. /jobs -----------------------------------------------------------------------------------------


BAD_JOBS = [
    ({"model": "digits", "input": "s3://sinfer-data/inputs/digits/missing.jsonl"}, 400, "does not exist"),
    ({"model": "digits", "input": "s3://sinfer-data/inputs/../outputs/secret.jsonl"}, 400, "'..'"),
    ({"model": "digits", "input": "s3://sinfer-data/inputs/digits/../../outputs/secret.jsonl"}, 400, "'..'"),
    ({"model": "digits", "input": "s3://sinfer-data/staging/./../outputs/secret.jsonl"}, 400, "'..'"),
    ({"model": "digits", "input": "s3://sinfer-data/outputs/secret.jsonl"}, 400, "inputs/"),
    ({"model": "digits", "input": "s3://other-bucket/inputs/x.jsonl"}, 400, "data bucket"),
    ({"model": "digits", "input": "https://example.com/x.jsonl"}, 400, "s3://"),
    ({"model": "../digits", "instances": [[0]]}, 404, "invalid model name"),
    ({"model": "digits", "upload": {"filename": "../../outputs/x.csv"}}, 400, "plain file name"),
    ({"model": "digits", "upload": {"filename": "a/b.csv"}}, 400, "plain file name"),
    ({"model": "digits", "instances": "x"}, 400, "non-empty list"),
    ({"model": "digits", "instances": []}, 400, "non-empty list"),
    ({"model": 7, "instances": [[0]]}, 400, "model"),
]


def test_bad_job_requests_are_4xx_and_leave_no_job(aws: AwsStack, call_api: CallApi) -> None:
    # GIVEN an object outside the prefixes the API may read
    aws.put("outputs/secret.jsonl", b'{"instance": [1]}\n')
    before = aws.keys()
    for doc, status, needle in BAD_JOBS:
        # WHEN a job names it (or is otherwise wrong), THEN a 4xx says why...
        _error(call_api("POST", "/jobs", doc), status, needle)
    # ... AND nothing was copied and no job was left waiting for an input that never comes
    assert aws.keys() == before
    assert aws.dynamodb.scan(TableName=aws.table)["Count"] == 0


# --- 6. properties ------------------------------------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_docs = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@fuzz
@given(
    doc=json_docs,
    wrap=st.sampled_from(["raw", "instances", "inputs", "instance-list"]),
    path=st.sampled_from([PREDICT, INFER, CANCER, "/v2/models/breast_cancer/infer"]),
)
def test_any_json_body_is_never_a_5xx(call_api: CallApi, doc: Any, wrap: str, path: str) -> None:
    body = {
        "raw": doc,
        "instances": {"instances": doc},
        "inputs": {"inputs": doc},
        "instance-list": {"instances": [doc]},
    }[wrap]
    _never_5xx(call_api("POST", path, json.dumps(body).encode(), JSON_HEADERS))


@fuzz
@given(
    body=st.binary(max_size=512),
    content_type=st.sampled_from(["application/json", "image/png", "", "text/plain"]),
)
def test_any_bytes_are_never_a_5xx(call_api: CallApi, body: bytes, content_type: str) -> None:
    for path in (PREDICT, INFER):
        _never_5xx(call_api("POST", path, body, {"Content-Type": content_type} if content_type else {}))


_numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.booleans()
    | st.sampled_from([None, "1", "", 0.5])
)
_dims = st.integers(min_value=-2, max_value=70) | st.sampled_from(
    [True, False, 2**63, 2**64, 10**20, 1.0, "1"]
)


@fuzz
@given(
    name=st.sampled_from(["pixels", "features", "x", ""]),
    shape=st.lists(_dims, max_size=5) | st.just([1] * 70),
    datatype=st.sampled_from([*V2_TO_NUMPY, "fp32", None]),
    data=st.lists(_numbers, max_size=140) | st.lists(st.lists(_numbers, max_size=70), max_size=3),
    binary_output=st.booleans(),
    path=st.sampled_from([INFER, "/v2/models/breast_cancer/infer"]),
)
def test_near_valid_v2_tensors_are_never_a_5xx(
    call_api: CallApi, name: str, shape: list[Any], datatype: Any, data: Any, binary_output: bool, path: str
) -> None:
    body = _v2(name, shape, datatype, data, parameters={"binary_data_output": binary_output})
    _never_5xx(call_api("POST", path, body, JSON_HEADERS))


@fuzz
@given(
    rows=st.lists(st.lists(_numbers, min_size=62, max_size=66), min_size=1, max_size=3),
    path=st.sampled_from([PREDICT, CANCER]),
)
def test_near_valid_instances_are_never_a_5xx(call_api: CallApi, rows: list[list[Any]], path: str) -> None:
    if path == CANCER:
        rows = [row[:30] for row in rows]
    response = call_api("POST", path, json.dumps({"instances": rows}).encode(), JSON_HEADERS)
    doc = _never_5xx(response)
    if response.status == 200:
        assert len(doc["predictions"]) == len(rows)


@fuzz
@given(
    declared=st.integers(min_value=0, max_value=80),
    tail=st.binary(max_size=64),
    header_length=st.integers(min_value=-5, max_value=400) | st.none(),
    datatype=st.sampled_from(["FP32", "BYTES", "INT64", "BOOL"]),
)
def test_any_binary_tensor_payload_is_never_a_5xx(
    call_api: CallApi, declared: int, tail: bytes, header_length: int | None, datatype: str
) -> None:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [1, 64],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    body = head + struct.pack("<I", len(tail)) + tail
    length = len(head) if header_length is None else header_length
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(length)}
    _never_5xx(call_api("POST", INFER, body, headers))


@fuzz
@given(doc=json_docs)
def test_any_job_request_is_never_a_5xx(aws: AwsStack, call_api: CallApi, doc: Any) -> None:
    for body in (doc, {"model": "digits", "instances": doc}, {"model": "digits", "input": doc}):
        _never_5xx(call_api("POST", "/jobs", json.dumps(body).encode(), JSON_HEADERS))
