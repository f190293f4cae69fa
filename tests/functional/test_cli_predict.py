"""``sinfer predict``: local files in every format the S3 path takes → the same JSONL, offline.

Inputs are held-out rows of the demo models' data sets (``events.build_s3_events.held_out``,
trained once per process), written in each format; the expected predictions are what the
loaded model itself returns for the same instances (``LoadedModel.predict``), so this tests the
command's reading, batching and writing, not the model. Everything runs in this process through
:func:`sinfer.cli.main.main`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from events.build_s3_events import held_out
from sinfer.cli.main import main
from sinfer.cli.progress import Progress
from sinfer.inference.registry import ModelRegistry
from sinfer.model.store import LocalModelStore
from tests.conftest import MODELS

DIGITS_ROWS = 12
CANCER_ROWS = 10


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(LocalModelStore(MODELS))


@pytest.fixture(autouse=True)
def _no_model_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_STORE", raising=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def predict(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    return cli(capsys, "predict", *args, "--model-store", MODELS)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def close(actual: Any, expected: Any) -> bool:
    """Equal, floats within 1e-6 (a different micro-batch may round the last bit differently)."""
    if isinstance(expected, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(close(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list | tuple):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(close(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --- building inputs ---------------------------------------------------------------------------


def digits_rows() -> np.ndarray[Any, Any]:
    return held_out().digits[:DIGITS_ROWS].astype(np.float32)


def cancer_rows() -> np.ndarray[Any, Any]:
    return held_out().cancer[:CANCER_ROWS].astype(np.float32)


def cancer_columns() -> list[str]:
    return list(held_out().cancer_columns)


def _floats(row: np.ndarray[Any, Any]) -> list[float]:
    return [float(str(v)) for v in row.astype(np.float32)]  # shortest decimals, same float32


def _csv_bytes(header: list[str], rows: list[list[Any]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _npy(rows: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(rows), allow_pickle=False)
    return buffer.getvalue()


def digit_image(row: np.ndarray[Any, Any], fmt: str = "PNG") -> bytes:
    pixels = np.round(row.reshape(8, 8) * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def build(model: str, fmt: str) -> tuple[str, bytes, list[Any], list[Any]]:
    """(file name, bytes, expected ids, instances the model must predict the same for)."""
    if model == "digits":
        rows = digits_rows()
        values = [_floats(r) for r in rows]
        ids: list[Any] = list(range(len(values)))
        if fmt == "jsonl":
            data = "".join(json.dumps(v) + "\n" for v in values).encode()
        elif fmt == "jsonl.gz":
            data = gzip.compress("".join(json.dumps(v) + "\n" for v in values).encode(), mtime=0)
        elif fmt == "json":
            data = json.dumps({"instances": values}).encode()
        elif fmt in ("csv", "tsv", "csv.gz"):
            ids = [f"d{i}" for i in range(len(values))]
            header = ["id", *(f"p{i}" for i in range(64))]
            table = [[ids[i], *values[i]] for i in range(len(values))]
            data = _csv_bytes(header, table, "\t" if fmt == "tsv" else ",")
            data = gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data
        elif fmt == "npy":
            data = _npy(rows)
        elif fmt in ("png", "jpg"):
            data = digit_image(rows[3], "PNG" if fmt == "png" else "JPEG")
            return f"digit.{fmt}", data, [f"digit.{fmt}"], [data]
        else:
            raise AssertionError(fmt)
        return f"digits.{fmt}", data, ids, values
    rows = cancer_rows()
    columns = cancer_columns()
    objects = [dict(zip(columns, _floats(r), strict=True)) for r in rows]
    ids = list(range(len(objects)))
    if fmt == "csv":
        ids = [f"patient-{i}" for i in range(len(objects))]
        data = _csv_bytes(["id", *columns], [[ids[i], *_floats(r)] for i, r in enumerate(rows)])
    elif fmt in ("jsonl", "jsonl.gz"):
        ids = [f"p{i}" for i in range(len(objects))]
        text = "".join(json.dumps({"id": ids[i], **o}) + "\n" for i, o in enumerate(objects))
        data = gzip.compress(text.encode(), mtime=0) if fmt.endswith(".gz") else text.encode()
    elif fmt == "json":
        data = json.dumps(objects).encode()
    elif fmt == "npy":
        data = _npy(rows)
    else:
        raise AssertionError(fmt)
    return f"cancer.{fmt}", data, ids, objects


CASES = [
    *(("digits", fmt) for fmt in ("jsonl", "json", "csv", "tsv", "npy", "png", "jpg", "jsonl.gz", "csv.gz")),
    *(("breast_cancer", fmt) for fmt in ("csv", "jsonl", "json", "npy", "jsonl.gz")),
]


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "fmt"), CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_every_input_format_predicts_what_the_model_predicts(
    model: str, fmt: str, tmp_path: Path, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN held-out rows written as one file in this format
    name, data, ids, instances = build(model, fmt)
    path = tmp_path / name
    path.write_bytes(data)

    # WHEN predicted with one input and no -o
    code, out, err = predict(capsys, model, path)

    # THEN stdout has one line per record, in input order, equal to LoadedModel.predict
    assert code == 0, err
    expected = jsonable(registry.get(model).predict(instances))
    results = lines(out)
    assert [r["id"] for r in results] == ids
    assert all("prediction" in r for r in results), results
    assert close([r["prediction"] for r in results], expected)
    assert f"{len(ids)} record" in err


def test_digits_predictions_are_sklearns_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, data, _, _ = build("digits", "npy")
    (tmp_path / name).write_bytes(data)
    code, out, _ = predict(capsys, "digits", tmp_path / name)
    assert code == 0
    labels = [r["prediction"]["label"] for r in lines(out)]
    assert labels == [str(label) for label in held_out().digits_predicted[:DIGITS_ROWS]]


def test_batch_size_does_not_change_the_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, data, _, _ = build("breast_cancer", "csv")
    (tmp_path / name).write_bytes(data)
    _, default, _ = predict(capsys, "breast_cancer", tmp_path / name)
    code, one_by_one, _ = predict(capsys, "breast_cancer", tmp_path / name, "--batch-size", "1")
    assert code == 0
    assert close(lines(one_by_one), lines(default))


# --- where results go --------------------------------------------------------------------------


def test_o_file_writes_that_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, data, ids, _ = build("digits", "jsonl")
    (tmp_path / name).write_bytes(data)
    target = tmp_path / "results" / "digits-out.jsonl"

    code, out, err = predict(capsys, "digits", tmp_path / name, "-o", target)

    assert code == 0, err
    assert out == ""
    assert [r["id"] for r in lines(target.read_text())] == ids
    assert sorted(p.name for p in target.parent.iterdir()) == ["digits-out.jsonl"]  # no temp file left


def test_a_folder_is_walked_and_mirrored_under_the_output_folder(
    tmp_path: Path, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a folder with inputs at two levels, a file in no input format, an earlier output
    data_dir = tmp_path / "data"
    (data_dir / "sub").mkdir(parents=True)
    for fmt, where in (("csv", data_dir), ("npy", data_dir / "sub"), ("png", data_dir / "sub")):
        name, data, _, _ = build("digits", fmt)
        (where / name).write_bytes(data)
    (data_dir / "README.txt").write_text("not an input")
    (data_dir / "old.csv.predictions.jsonl").write_text('{"id": 0, "prediction": 1}\n')
    (data_dir / ".hidden.csv").write_text("id,x\n1,2\n")
    out_dir = tmp_path / "out"

    # WHEN the folder is predicted into -o DIR/
    code, out, err = predict(capsys, "digits", data_dir, "-o", f"{out_dir}/")

    # THEN each input has <DIR>/<relative path>.predictions.jsonl and .summary.json
    assert code == 0, err
    assert out == ""
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert written == [
        "digits.csv.predictions.jsonl",
        "digits.csv.summary.json",
        "sub/digit.png.predictions.jsonl",
        "sub/digit.png.summary.json",
        "sub/digits.npy.predictions.jsonl",
        "sub/digits.npy.summary.json",
    ]
    summary = json.loads((out_dir / "sub/digits.npy.summary.json").read_text())
    assert summary["status"] == "COMPLETED"
    assert summary["counts"] == {"records": DIGITS_ROWS, "predictions": DIGITS_ROWS, "errors": 0}
    assert (summary["model"], summary["model_version"]) == ("digits", "1")
    assert summary["timings"]["seconds"] >= 0
    assert summary["output"] == str(out_dir / "sub/digits.npy.predictions.jsonl")
    expected = jsonable(registry.get("digits").predict([_floats(r) for r in digits_rows()]))
    got = [r["prediction"] for r in lines((out_dir / "sub/digits.npy.predictions.jsonl").read_text())]
    assert close(got, expected)
    # AND the file in no input format is skipped with a note; earlier outputs, hidden files silently
    assert "skipped 1 file(s)" in err
    assert "README.txt" in err
    assert "old.csv" not in err
    assert "hidden" not in err
    assert "3 files" in err


def test_several_inputs_without_o_write_beside_each_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for folder, fmt in ((first, "jsonl"), (second, "json")):
        name, data, _, _ = build("breast_cancer", fmt)
        (folder / name).write_bytes(data)

    code, out, err = predict(capsys, "breast_cancer", first / "cancer.jsonl", second / "cancer.json")

    assert code == 0, err
    assert out == ""
    assert len(lines((first / "cancer.jsonl.predictions.jsonl").read_text())) == CANCER_ROWS
    assert json.loads((second / "cancer.json.summary.json").read_text())["counts"]["records"] == CANCER_ROWS


def test_two_inputs_that_would_write_the_same_output_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jsonl").write_text("[1]\n")
    code, _, err = predict(
        capsys, "digits", tmp_path / "a/x.jsonl", tmp_path / "b/x.jsonl", "-o", tmp_path / "o"
    )
    assert code == 2
    assert "would both write" in err
    assert not (tmp_path / "o").exists()


# --- failures ----------------------------------------------------------------------------------


def test_bad_records_become_error_lines_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a JSONL file with good rows, a broken line and an instance of the wrong shape
    good = [_floats(r) for r in digits_rows()[:3]]
    text = "\n".join(
        [json.dumps(good[0]), "{broken", json.dumps(good[1]), json.dumps([1.0, 2.0]), json.dumps(good[2])]
    )
    path = tmp_path / "mixed.jsonl"
    path.write_text(text + "\n")

    code, out, err = predict(capsys, "digits", path)

    # THEN records in = predictions + errors, in input order, and the exit code is 0
    assert code == 0, err
    results = lines(out)
    assert [r["id"] for r in results] == [0, 1, 2, 3, 4]
    assert ["prediction" in r for r in results] == [True, False, True, False, True]
    assert results[1]["error"]["code"] == "invalid_json"
    assert results[3]["error"]["code"] == "invalid_input"
    assert "5 records: 3 predictions, 2 errors" in err

    # AND a script that must not take a partial result for a whole one can ask for exit 3,
    # with the same lines written
    code, strict_out, _ = predict(capsys, "digits", path, "--fail-on-errors")
    assert (code, strict_out) == (3, out)
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps(good[0]) + "\n")
    assert predict(capsys, "digits", clean, "--fail-on-errors")[0] == 0


def test_an_unreadable_file_fails_at_the_end_and_the_others_are_processed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a folder with a good file between two that cannot be read as a whole
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    (data_dir / "a-broken.json").write_text('{"instances": [1, 2')
    name, data, ids, _ = build("digits", "jsonl")
    (data_dir / name).write_bytes(data)
    (data_dir / "z-corrupt.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    out_dir = tmp_path / "out"

    code, out, err = predict(capsys, "digits", data_dir, "-o", out_dir)

    # THEN exit 1, the good file has its predictions, each bad one a FAILED summary and no output
    assert code == 1
    assert out == ""
    assert [r["id"] for r in lines((out_dir / f"{name}.predictions.jsonl").read_text())] == ids
    for bad in ("a-broken.json", "z-corrupt.csv.gz"):
        assert not (out_dir / f"{bad}.predictions.jsonl").exists()
        summary = json.loads((out_dir / f"{bad}.summary.json").read_text())
        assert summary["status"] == "FAILED"
        assert summary["error"].startswith("unreadable_input: ")
        assert summary["output"] is None
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 2
    assert "not valid JSON" in errors[0]
    assert "not valid gzip" in errors[1]
    assert "2 file(s) failed" in err
    assert "Traceback" not in err


def test_an_explicit_file_in_no_input_format_is_a_failed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, out, err = predict(capsys, "digits", path)
    assert code == 1
    assert out == ""
    assert "cannot tell the format" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nope", "model 'nope' not found"),
        ("digits:9", "model 'digits' has no version '9'"),
        ("digits/../../etc", "is a path"),  # (a path never reaches the store's name checks)
        ("..", "invalid model name"),
    ],
)
def test_an_unknown_model_is_one_line_and_exit_2(
    model: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("[1]\n")
    code, out, err = predict(capsys, model, path)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


def test_a_missing_input_or_store_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = predict(capsys, "digits", tmp_path / "missing.csv")
    assert (code, err.count("\n")) == (2, 1)
    assert "no such input" in err

    (tmp_path / "x.jsonl").write_text("[1]\n")
    monkeypatch.chdir(tmp_path)  # no ./models here
    code, _, err = cli(capsys, "predict", "digits", "x.jsonl")
    assert (code, err.count("\n")) == (2, 1)
    assert "model store folder models does not exist" in err


def test_the_model_store_defaults_to_MODEL_STORE(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, data, ids, _ = build("digits", "csv")
    (tmp_path / name).write_bytes(data)
    monkeypatch.setenv("MODEL_STORE", str(MODELS))
    code, out, _ = cli(capsys, "predict", "digits", tmp_path / name, "--version", "1")
    assert code == 0
    assert [r["id"] for r in lines(out)] == ids


def test_an_s3_model_store_works_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from sinfer.aws.clients import reset_clients

    name, data, ids, _ = build("breast_cancer", "csv")
    (tmp_path / name).write_bytes(data)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    with mock_aws():
        reset_clients()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models-bucket")
        for file in ("model.onnx", "model.json"):
            s3.upload_file(
                str(MODELS / "breast_cancer/1" / file), "models-bucket", f"m/breast_cancer/1/{file}"
            )
        try:
            code, out, err = cli(
                capsys, "predict", "breast_cancer", tmp_path / name, "--model-store", "s3://models-bucket/m/"
            )
        finally:
            reset_clients()
    assert code == 0, err
    assert [r["id"] for r in lines(out)] == ids


# --- progress ----------------------------------------------------------------------------------


def test_a_forced_progress_bar_writes_to_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bar is cut to the terminal's width; a wide one keeps the rate whatever the tmp path.
    monkeypatch.setenv("COLUMNS", "400")
    name, data, ids, _ = build("digits", "jsonl")
    (tmp_path / name).write_bytes(data)

    code, out, err = predict(capsys, "digits", tmp_path / name, "--progress")

    assert code == 0
    assert [r["id"] for r in lines(out)] == ids  # stdout is nothing but the JSONL
    assert "\r" not in out
    assert "\r" in err
    assert f"{len(ids)} records" in err
    assert "100%" in err
    assert "/s" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, data, _, _ = build("digits", "jsonl")
    (tmp_path / name).write_bytes(data)
    code, _, err = predict(capsys, "digits", tmp_path / name, "-o", tmp_path / "out.jsonl")
    assert code == 0
    assert "\r" not in err
    code, _, err = predict(capsys, "digits", tmp_path / name, "-o", tmp_path / "out.jsonl", "--no-progress")
    assert "\r" not in err


def test_progress_line_shows_records_rate_and_elapsed_time() -> None:
    stream = io.StringIO()
    bar = Progress(True, total=200, label="x.csv", stream=stream, forced=True)
    bar.advance(50, done=100)
    text = bar.line(now=bar._started + 10)
    assert text.startswith("x.csv  [############------------]  50%")
    assert "50 records" in text
    assert "5/s" in text
    assert text.endswith("0:10")
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_an_inactive_progress_bar_writes_nothing() -> None:
    stream = io.StringIO()
    with Progress(False, total=10, stream=stream) as bar:
        bar.advance(5, done=5)
    assert stream.getvalue() == ""


def test_a_model_that_fails_its_sha256_check_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    shutil.copytree(MODELS / "digits", store / "digits")
    onnx = store / "digits/1/model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    (tmp_path / "x.jsonl").write_text("[1]\n")

    code, out, err = cli(capsys, "predict", "digits", tmp_path / "x.jsonl", "--model-store", store)

    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "refusing to load" in err


def test_a_fifo_is_one_file_to_stdout_and_nothing_is_written_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a named pipe fed three JSON lines (what <(...) and /dev/stdin are too)
    import os
    import threading

    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    rows = [[float(i)] * 64 for i in range(3)]

    def feed() -> None:
        with fifo.open("w") as pipe:
            pipe.writelines(json.dumps(row) + "\n" for row in rows)

    feeder = threading.Thread(target=feed)
    feeder.start()
    # WHEN it is the one input
    code, out, err = cli(capsys, "predict", "digits", fifo, "--model-store", MODELS)
    feeder.join(timeout=10)

    # THEN its lines go to stdout, as a file's would (it was taken for the folder layout, and
    # the predictions and summary were written beside the pipe)
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_stdin_and_misnamed_files_are_read_as_format_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cat rows.jsonl | sinfer predict digits - --format jsonl`: a pipeline on a device
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    rows = "".join(json.dumps({"id": f"r{i}", "instance": [float(i)] * 64}) + "\n" for i in range(3))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "sinfer")}
    command = [
        sys.executable,
        "-m",
        "sinfer.cli.main",
        "predict",
        "digits",
        "-",
        "--model-store",
        f"{MODELS}",
    ]
    done = subprocess.run(
        [*command, "--format", "jsonl"], input=rows, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["r0", "r1", "r2"]
    # without --format, stdin is one line and exit 2
    done = subprocess.run(command, input=rows, capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert "--format" in done.stderr
    # AND a file whose name says nothing is read as --format says
    misnamed = tmp_path / "rows.txt"
    misnamed.write_text(rows)
    code, out, err = cli(capsys, "predict", "digits", misnamed, "--format", "jsonl", "--model-store", MODELS)
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_model_named_by_path_needs_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An edge device with a bare .onnx (or a pulled version folder) and no store layout: the
    # model given by path predicts as the store's does, its model.json applied and its pin checked
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps([float(i % 17)] * 64) + "\n" for i in range(4)))
    code, by_name, err = cli(capsys, "predict", "digits", rows, "--model-store", MODELS)
    assert code == 0, err
    for path in (MODELS / "digits" / "1" / "model.onnx", MODELS / "digits" / "1"):
        code, out, err = cli(capsys, "predict", path, rows)
        assert code == 0, err
        assert out == by_name
    # a file of another name, with no manifest beside it: the graph's own outputs
    bare = tmp_path / "mnist.onnx"
    shutil.copyfile(MODELS / "digits" / "1" / "model.onnx", bare)
    code, out, err = cli(capsys, "predict", bare, rows)
    assert code == 0, err
    assert [set(line["prediction"]) for line in lines(out)] == [{"label", "probabilities"}] * 4
    # a tampered file whose model.json pins another sha256 is refused, as a store's would be
    pinned = tmp_path / "pinned"
    shutil.copytree(MODELS / "digits" / "1", pinned)
    (pinned / "model.onnx").write_bytes((pinned / "model.onnx").read_bytes() + b"\0")
    code, out, err = cli(capsys, "predict", pinned, rows)
    assert (code, out) == (1, "")
    assert "sha256" in err
    # paths that are not models, and a path with a store's options, are one line and exit 2
    for args in ((tmp_path / "nope.onnx", rows), (MODELS / "digits" / "1", rows, "--version", "1")):
        code, _, err = cli(capsys, "predict", *args)
        assert code == 2, err
        assert err.count("\n") == 1
