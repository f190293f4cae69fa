"""The SageMaker container's bodies: as many lines out as lines in, in order, whatever is on them.

Predictions are compared with the model's own (``LoadedModel.predict``) line by line; bad lines
must become error lines on the same line number, and a property test throws mixed bodies at
both formats to check the one-for-one rule. The last section covers how the container finds
its model (a model folder, or a store) without starting a server.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto

from sinfer.errors import ModelIntegrityError, ModelNotFoundError, UnsupportedMediaTypeError
from sinfer.inference.batch import Outcome
from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import ModelRegistry
from sinfer.model.store import open_store
from sinfer.records import Record, RecordError
from sinfer.sagemaker import codec
from sinfer.sagemaker.codec import (
    BLANK_LINE,
    NotAcceptableError,
    body_lines,
    csv_columns,
    encode_outcomes,
    request_format,
    response_format,
    transform,
)
from sinfer.sagemaker.server import MODEL_ENV, ModelDirStore, locate_model
from tests.conftest import MODELS
from tests.unit import onnx_graphs
from tests.unit.onnx_graphs import load

ZEROS = [0.0] * 64
SIXTEENS = [16.0] * 64


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(open_store(MODELS))


@pytest.fixture(scope="module")
def digits(registry: ModelRegistry) -> LoadedModel:
    return registry.get("digits")


@pytest.fixture(scope="module")
def cancer(registry: ModelRegistry) -> LoadedModel:
    return registry.get("breast_cancer")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("graphs")
    onnx_graphs.identity(store, "floats3", TensorProto.FLOAT, ["N", 3])
    onnx_graphs.identity(store, "strings2", TensorProto.STRING, ["N", 2])
    onnx_graphs.identity(store, "ragged", TensorProto.FLOAT, ["N", "F"])
    onnx_graphs.multi_io(store)
    return store


def jsonl(*values: Any) -> bytes:
    return b"".join(json.dumps(value).encode() + b"\n" for value in values)


def csv_row(values: list[Any]) -> bytes:
    return ",".join(str(value) for value in values).encode()


def out_lines(body: bytes) -> list[Any]:
    """The response's lines as JSON; every line, the last one included, ends in a newline."""
    assert body == b"" or body.endswith(b"\n")
    return [json.loads(line) for line in body.decode("ascii").split("\n")[:-1]]


def close(actual: Any, expected: Any) -> bool:
    """Equal, floats to float32 precision: a micro-batch and a batch of one differ in the last bits."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(close(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(close(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, float):
        return actual == pytest.approx(expected, rel=1e-5, abs=1e-7)
    return bool(actual == expected)


def csv_out(body: bytes) -> list[list[str]]:
    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == ""
    return [next(csv.reader([line])) if line else [] for line in lines[:-1]]


# --- content negotiation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "jsonl"),
        ("", "jsonl"),
        ("application/jsonlines", "jsonl"),
        ("application/x-jsonlines", "jsonl"),
        ("application/json; charset=utf-8", "jsonl"),
        ("Application/JSONLines", "jsonl"),
        ("application/x-ndjson", "jsonl"),
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8", "csv"),
    ],
)
def test_request_format_reads_sagemaker_content_types(content_type: str | None, expected: str) -> None:
    assert request_format(content_type) == expected


@pytest.mark.parametrize("content_type", ["image/png", "application/x-www-form-urlencoded", "text/plain"])
def test_request_format_refuses_other_types_with_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        request_format(content_type)
    assert caught.value.status == 415
    assert "application/jsonlines" in caught.value.message
    assert "text/csv" in caught.value.message


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ("jsonl", "application/jsonlines")),
        ("*/*", ("jsonl", "application/jsonlines")),
        ("application/jsonlines", ("jsonl", "application/jsonlines")),
        ("application/x-jsonlines", ("jsonl", "application/x-jsonlines")),
        ("application/json", ("jsonl", "application/json")),
        ("text/csv", ("csv", "text/csv")),
        ("text/csv;q=0.9, application/jsonlines", ("csv", "text/csv")),
        ("image/png, text/csv", ("csv", "text/csv")),
    ],
)
def test_response_format_takes_the_first_type_written_here(
    accept: str | None, expected: tuple[str, str]
) -> None:
    assert response_format(accept) == expected


def test_response_format_refuses_unwritable_accept_with_406() -> None:
    with pytest.raises(NotAcceptableError) as caught:
        response_format("image/png")
    assert caught.value.status == 406


# --- lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        (b"", []),
        (b"\n", [b""]),
        (b"a", [b"a"]),
        (b"a\n", [b"a"]),
        (b"a\nb", [b"a", b"b"]),
        (b"a\n\nb\n", [b"a", b"", b"b"]),
        (b"a\n\n", [b"a", b""]),
        (b"a\r\nb\r\n", [b"a\r", b"b\r"]),
        (b"\xef\xbb\xbfa\nb\n", [b"a", b"b"]),
    ],
)
def test_body_lines_end_at_newlines_and_a_final_newline_adds_no_line(body: bytes, lines: list[bytes]) -> None:
    assert body_lines(body) == lines


def test_empty_body_gives_an_empty_response(digits: LoadedModel) -> None:
    assert transform(digits, b"", "jsonl", "jsonl") == b""
    assert transform(digits, b"", "csv", "csv") == b""


# --- JSON Lines in -----------------------------------------------------------------------


def test_jsonl_lines_give_the_models_predictions_in_order(digits: LoadedModel) -> None:
    # GIVEN instances bare, wrapped, and wrapped with an id (ids are not echoed: order joins)
    body = jsonl(ZEROS, {"instance": SIXTEENS}, {"id": "r3", "instance": ZEROS}, {"pixels": SIXTEENS})

    # WHEN the body is transformed
    lines = out_lines(transform(digits, body, "jsonl", "jsonl"))

    # THEN one prediction per line, equal to the model's own, and nothing else on the line
    expected = digits.predict([ZEROS, SIXTEENS, ZEROS, SIXTEENS])
    assert close(lines, [{"prediction": prediction} for prediction in expected])


def test_bad_jsonl_lines_become_error_lines_on_their_own_line(digits: LoadedModel) -> None:
    body = b"\n".join(
        [
            json.dumps(ZEROS).encode(),  # 1 fine
            b"",  # 2 blank
            b"{not json",  # 3 invalid JSON
            b"   \t",  # 4 blank too
            json.dumps([1, 2]).encode(),  # 5 wrong shape
            b"\xff\xfe[1]",  # 6 not UTF-8
            json.dumps({"instance": SIXTEENS}).encode(),  # 7 fine
        ]
    )
    lines = out_lines(transform(digits, body, "jsonl", "jsonl"))

    assert len(lines) == 7
    assert close(lines[0], {"prediction": digits.predict([ZEROS])[0]})
    assert close(lines[6], {"prediction": digits.predict([SIXTEENS])[0]})
    codes = [line.get("error", {}).get("code") for line in lines]
    assert codes == [None, BLANK_LINE, "invalid_json", BLANK_LINE, "invalid_input", "invalid_encoding", None]
    messages = [line["error"]["message"] for line in lines if "error" in line]
    assert messages[0].startswith("line 2 is blank")
    assert messages[1].startswith("line 3 is not valid JSON")
    assert messages[2].startswith("line 4 is blank")
    assert messages[3].startswith("record 5 (input 'pixels')")  # the line number, as parse errors
    assert messages[4].startswith("line 6 is not valid UTF-8")


def test_a_body_of_blank_lines_answers_each_of_them(digits: LoadedModel) -> None:
    lines = out_lines(transform(digits, b"\n\n\n", "jsonl", "jsonl"))
    assert [line["error"]["code"] for line in lines] == [BLANK_LINE] * 3


def test_jsonl_output_is_ascii_and_has_no_nan(graphs: Path) -> None:
    model = load(graphs, "floats3")
    body = jsonl([float("nan"), 1.5, -2.0])  # json.dumps writes NaN, which the readers take
    out = transform(model, body, "jsonl", "jsonl")
    assert out == b'{"prediction":[null,1.5,-2.0]}\n'
    strings = load(graphs, "strings2")
    out = transform(strings, jsonl(["é", "ok"], ["\ud800", "x"]), "jsonl", "jsonl")
    assert out.isascii()
    first, second = out_lines(out)
    assert first == {"prediction": ["é", "ok"]}
    assert second["error"]["code"] == "invalid_input"  # ONNX Runtime wants UTF-8 strings


# --- CSV in ------------------------------------------------------------------------------


def test_csv_columns_come_from_the_manifest_or_the_input_width(
    digits: LoadedModel, cancer: LoadedModel, graphs: Path
) -> None:
    assert csv_columns(cancer) == cancer.inputs[0].decl.columns
    assert csv_columns(digits) == tuple(str(n) for n in range(1, 65))
    assert csv_columns(load(graphs, "floats3")) == ("1", "2", "3")


@pytest.mark.parametrize("name", ["ragged", "multi"])
def test_csv_is_refused_whole_for_models_rows_cannot_feed(graphs: Path, name: str) -> None:
    model = load(graphs, name)
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        transform(model, b"1,2,3\n", "csv", "jsonl")
    assert "application/jsonlines" in caught.value.message


def test_headerless_csv_rows_give_the_models_predictions(digits: LoadedModel, cancer: LoadedModel) -> None:
    rows = [ZEROS, SIXTEENS, [float(i % 17) for i in range(64)]]
    body = b"\n".join(csv_row(row) for row in rows) + b"\n"
    assert close(
        out_lines(transform(digits, body, "csv", "jsonl")), [{"prediction": p} for p in digits.predict(rows)]
    )

    # a model with declared columns takes the row in that column order
    features = [[13.0 + i * 0.5] * 30 for i in range(4)]
    body = b"\r\n".join(csv_row(row) for row in features) + b"\r\n"
    expected = cancer.predict(features)
    assert close(out_lines(transform(cancer, body, "csv", "jsonl")), [{"prediction": p} for p in expected])
    assert csv_out(transform(cancer, body, "csv", "csv")) == [[p["label"]] for p in expected]


def test_bad_csv_lines_become_error_lines_on_their_own_line(digits: LoadedModel) -> None:
    good = csv_row(ZEROS)
    body = b"\n".join(
        [
            good,  # 1
            b"1,2,3",  # 2 too few cells
            b"",  # 3 blank
            csv_row([*ZEROS[:10], "", *ZEROS[11:]]),  # 4 an empty cell
            csv_row([*ZEROS[:63], "x"]),  # 5 text where a number goes
            b'"0",' + csv_row(ZEROS[1:]),  # 6 quoted, read on its own: fine
            csv_row(ZEROS[:32]) + b"\r" + csv_row(ZEROS[32:]),  # 7 a CR splits the row
            b'"unclosed,' + csv_row(ZEROS[1:]),  # 8 a quote that never closes
            good,  # 9
        ]
    )
    lines = out_lines(transform(digits, body, "csv", "jsonl"))

    assert len(lines) == 9
    zero = {"prediction": digits.predict([ZEROS])[0]}
    assert close([lines[0], lines[5], lines[8]], [zero, zero, zero])
    errors = {n + 1: line["error"] for n, line in enumerate(lines) if "error" in line}
    assert {n: e["code"] for n, e in errors.items()} == {
        2: "ragged_row",
        3: BLANK_LINE,
        4: "empty_cell",
        5: "invalid_input",
        7: "invalid_csv",
        8: "ragged_row",
    }
    assert errors[2]["message"].startswith("line 2: expected 64 cells")
    assert errors[4]["message"] == "line 4: column '11' is empty"
    assert errors[5]["message"].startswith("record 5 (input 'pixels')")
    assert errors[7]["message"].startswith("line 7 is not one CSV row")


def test_many_csv_lines_stay_in_step_across_reads(digits: LoadedModel) -> None:
    # GIVEN more lines than one read takes, with lines read alone scattered among them
    count = codec._CSV_RUN_LINES * 2 + 37
    odd = {5: b"", 600: b'"16",' + csv_row(SIXTEENS[1:]), 700: b"1,2", count - 1: b"\r"}
    rows = [odd.get(n, csv_row(SIXTEENS if n % 3 else ZEROS)) for n in range(count)]

    lines = out_lines(transform(digits, b"\n".join(rows), "csv", "jsonl"))

    assert len(lines) == count
    zero, sixteen = digits.predict([ZEROS, SIXTEENS])
    for n, line in enumerate(lines):
        if n in (5, count - 1):
            assert line["error"]["code"] == BLANK_LINE
        elif n == 700:
            assert line["error"]["message"].startswith(f"line {n + 1}: expected 64 cells")
        else:
            assert close(line, {"prediction": sixteen if (n % 3 or n == 600) else zero}), n


# --- CSV out -----------------------------------------------------------------------------


def outcome(prediction: Any = None, error: RecordError | None = None) -> Outcome:
    return Outcome(Record(0, 1), prediction, error)


def test_csv_output_is_the_label_or_the_flattened_values() -> None:
    outcomes = [
        outcome({"label": "7", "score": 0.9, "top_k": []}),
        outcome([[1.5, 2], [3, None]]),
        outcome({"output_label": 1, "output_probability": {"0": 0.25, "1": 0.75}}),
        outcome(True),
        outcome(["a,b", 'say "hi"', "two\nlines"]),
        outcome([]),
    ]
    assert encode_outcomes(outcomes, "csv").decode() == (
        '7\n1.5,2,3,\n1,0.25,0.75\ntrue\n"a,b","say ""hi""",two lines\n\n'
    )


def test_csv_error_lines_are_quoted_and_stay_on_one_line() -> None:
    error = RecordError("invalid_input", 'expected "x", got 1,2\nand more')
    body = encode_outcomes([outcome(error=error), outcome(3)], "csv")
    assert body.count(b"\n") == 2
    assert csv_out(body) == [["error", "invalid_input", 'expected "x", got 1,2 and more'], ["3"]]


def test_string_predictions_round_trip_through_csv(graphs: Path) -> None:
    model = load(graphs, "strings2")
    body = b'"a,b",c\nplain,"q""uote"\n'
    assert csv_out(transform(model, body, "csv", "csv")) == [["a,b", "c"], ["plain", 'q"uote']]


# --- one line out per line in, whatever the lines ----------------------------------------

LINE_KINDS = st.sampled_from(
    [
        csv_row(ZEROS),
        json.dumps(ZEROS).encode(),
        json.dumps({"instance": SIXTEENS}).encode(),
        b"",
        b"  ",
        b"\r",
        b"1,2",
        b'"',
        b'a,"b\r',
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        b"\x00",
        b",,,",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE_KINDS, max_size=30), final_newline=st.booleans())
def test_every_line_in_gives_exactly_one_line_out(
    digits: LoadedModel, lines: list[bytes], final_newline: bool
) -> None:
    body = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    count = len(body_lines(body))
    for fmt_in in ("jsonl", "csv"):
        for fmt_out in ("jsonl", "csv"):
            out = transform(digits, body, fmt_in, fmt_out)  # type: ignore[arg-type]
            assert out.count(b"\n") == count, (fmt_in, fmt_out)
            assert out == b"" or out.endswith(b"\n")


# --- where the model is ------------------------------------------------------------------


def test_a_model_folder_is_served_under_its_manifests_name(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(MODELS / "digits" / "1", folder)

    location = locate_model(folder)

    assert (location.name, location.version) == ("digits", "1")
    assert isinstance(location.store, ModelDirStore)
    model = ModelRegistry(location.store).get(location.name, location.version)
    assert model.predict([ZEROS]) == ModelRegistry(open_store(MODELS)).get("digits").predict([ZEROS])


def test_a_model_folder_without_manifest_gets_a_default_name(tmp_path: Path) -> None:
    shutil.copy(MODELS / "digits" / "1" / "model.onnx", tmp_path / "model.onnx")
    location = locate_model(tmp_path)
    assert (location.name, location.version) == ("model", "1")
    assert ModelRegistry(location.store).get("model", "1").manifest.name is None


def test_a_model_folder_checks_the_pinned_sha256(tmp_path: Path) -> None:
    shutil.copytree(MODELS / "digits" / "1", tmp_path / "m")
    with (tmp_path / "m" / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    location = locate_model(tmp_path / "m")
    with pytest.raises(ModelIntegrityError):
        location.store.fetch(location.name, location.version)


def test_a_model_folder_refuses_a_selection_it_does_not_hold(tmp_path: Path) -> None:
    shutil.copytree(MODELS / "digits" / "1", tmp_path / "m")
    with pytest.raises(ModelNotFoundError, match="holds model 'digits', not the 'breast_cancer'"):
        locate_model(tmp_path / "m", "breast_cancer")


@pytest.fixture
def two_models(tmp_path: Path) -> Path:
    for name in ("digits", "breast_cancer"):
        shutil.copytree(MODELS / name / "1", tmp_path / name / "1")
    (tmp_path / "llm" / "1").mkdir(parents=True)  # a foundation-model entry: model.json alone
    (tmp_path / "llm" / "1" / "model.json").write_text('{"name": "llm"}', encoding="utf-8")
    return tmp_path


def test_a_store_layout_needs_a_choice_when_it_holds_several_models(
    two_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    with pytest.raises(ModelNotFoundError, match="holds models breast_cancer, digits; choose one"):
        locate_model(two_models)

    location = locate_model(two_models, "breast_cancer")
    assert (location.name, location.version) == ("breast_cancer", "1")

    monkeypatch.setenv(MODEL_ENV, "digits/1")
    assert (locate_model(two_models).name, locate_model(two_models).version) == ("digits", "1")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("llm", "no ONNX model 'llm'"),
        ("nope", "no ONNX model 'nope'"),
        ("digits/9", "has no version '9'"),
        ("../etc", "invalid model name"),
    ],
)
def test_a_store_layout_refuses_selections_it_cannot_serve(
    two_models: Path, selection: str, message: str
) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        locate_model(two_models, selection)


def test_a_missing_or_empty_model_folder_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        locate_model(tmp_path / "absent")
    with pytest.raises(ModelNotFoundError, match=r"holds no model\.onnx"):
        locate_model(tmp_path)


def test_the_only_model_of_a_store_is_served_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    shutil.copytree(MODELS / "digits" / "1", tmp_path / "digits" / "1")
    assert locate_model(tmp_path).name == "digits"


def test_an_in_process_server_logs_failed_requests_only(capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN the container app served from a thread, as the local batch backend runs it
    import urllib.error
    import urllib.request

    from sinfer.sagemaker.server import start_in_thread

    model = ModelRegistry(open_store(str(MODELS))).get("digits")
    url = start_in_thread(model)

    # WHEN it answers one good request and one it refuses
    good = urllib.request.Request(
        f"{url}/invocations",
        data=b"[" + b"1," * 63 + b"1]\n",
        headers={"Content-Type": "application/jsonlines"},
    )
    with urllib.request.urlopen(good, timeout=10) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{url}/nowhere", data=b"x"), timeout=10)
    assert refused.value.code == 404

    # THEN only the refusal is in the log (a line per good record would bury make demo's output)
    logged = capfd.readouterr().err
    assert "/nowhere" in logged
    assert "/invocations" not in logged
