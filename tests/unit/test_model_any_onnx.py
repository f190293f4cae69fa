"""Any valid ONNX model serves without a manifest — and bad input is a clear 422, never a crash.

Graphs come from ``onnx.helper`` (tests/unit/onnx_graphs.py), skl2onnx, and the fixed-batch-1
image models the onnx package ships for its backend tests (used in place, never copied into
the repo). Every prediction is compared with a direct ``session.run`` or with scikit-learn.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

from sinfer.codecs import images
from sinfer.errors import InvalidInputError, ManifestError
from sinfer.inference.model import LoadedModel
from sinfer.model.store import LocalModelStore
from tests.unit import onnx_graphs
from tests.unit.onnx_graphs import load


def strict_json(value: Any) -> Any:
    """Serialise as the API does (no NaN allowed) and parse back."""
    return json.loads(json.dumps(value, allow_nan=False))


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# --- (a) several inputs and outputs of different element types -----------------------------


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    store = tmp_path_factory.mktemp("multi")
    onnx_graphs.multi_io(store)
    return load(store, "multi")


def test_multi_input_model_predicts_from_dict_instances(multi: LoadedModel) -> None:
    # GIVEN a manifest-less graph with float, int64, bool and string inputs
    assert multi.manifest.inputs == {}
    assert not multi.loops  # every input has a symbolic batch axis

    # WHEN two instances are predicted (values as JSON would carry them)
    instances = [
        {"x": [1, 2.5, -3], "ids": [1, 2], "flag": True, "name": "alpha"},
        {"x": [float("nan"), float("inf"), 0.125], "ids": [40, 2], "flag": False, "name": "bêta"},
    ]
    predictions = multi.predict(instances)

    # THEN each output is JSON-ready with the right values and types
    assert strict_json(predictions) == [
        {"x_half": [1.0, 2.5, -3.0], "ids_sum": 3, "name_out": "alpha", "flag_not": False},
        {"x_half": [None, None, 0.125], "ids_sum": 42, "name_out": "bêta", "flag_not": True},
    ]
    assert isinstance(predictions[0]["ids_sum"], int)
    assert isinstance(predictions[0]["flag_not"], bool)


def test_no_instances_means_no_predictions(multi: LoadedModel, tmp_path: Path) -> None:
    assert multi.predict([]) == []
    onnx_graphs.fixed_four(tmp_path)
    assert load(tmp_path, "four").predict([]) == []  # the looping path too


def test_numbers_sent_to_a_string_input_arrive_as_text(multi: LoadedModel) -> None:
    [prediction] = multi.predict([{"x": [0, 0, 0], "ids": [0, 0], "flag": False, "name": 7}])
    assert prediction["name_out"] == "7"


def test_multi_input_model_runs_whole_tensors(multi: LoadedModel) -> None:
    # Open Inference Protocol style: one tensor per input, batch on axis 0
    outputs = multi.run_v2(
        {
            "x": np.array([[0.5, 1, 2], [3, 4, 5]], np.float32),
            "ids": np.array([[1, 1], [2, 3]], np.int64),
            "flag": np.array([True, False]),
            "name": np.array(["a", "b"]),
        }
    )
    x_half, ids_sum, name_out, flag_not = outputs
    assert x_half.dtype == np.float16
    assert x_half.tolist() == [[0.5, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert ids_sum.tolist() == [2, 5]
    assert name_out.tolist() == ["a", "b"]
    assert flag_not.tolist() == [False, True]


def test_whole_tensor_dtypes_are_coerced_and_checked(multi: LoadedModel) -> None:
    # float64 and int32 arrays are converted to the graph's float32 and int64
    outputs = multi.run_v2(
        {
            "x": np.zeros((1, 3), np.float64),
            "ids": np.array([[7, 8]], np.int32),
            "flag": np.array([True]),
            "name": np.array(["z"], dtype=object),
        }
    )
    assert outputs[1].tolist() == [15]
    with pytest.raises(InvalidInputError, match=r"input 'ids'.*fractional"):
        multi.run_v2(
            {
                "x": np.zeros((1, 3)),
                "ids": np.array([[0.5, 1]]),
                "flag": np.array([True]),
                "name": np.array(["z"]),
            }
        )


@pytest.mark.parametrize(
    ("tensors", "fragment"),
    [
        ({"x": np.zeros((1, 3))}, r"missing \['ids', 'flag', 'name'\]"),
        (
            {
                "x": np.zeros((1, 3)),
                "ids": np.zeros((1, 2)),
                "flag": np.ones(1, bool),
                "name": np.array(["a"]),
                "y": 1,
            },
            r"unknown \['y'\]",
        ),
        (
            {
                "x": np.zeros((1, 4)),
                "ids": np.zeros((1, 2)),
                "flag": np.ones(1, bool),
                "name": np.array(["a"]),
            },
            r"input 'x': expected shape float32\[N, 3\], got \[1, 4\]",
        ),
    ],
    ids=["missing", "unknown", "shape"],
)
def test_whole_tensor_errors_say_what_was_expected(
    multi: LoadedModel, tensors: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        multi.run_v2(tensors)


@pytest.mark.parametrize(
    ("instance", "fragment"),
    [
        ([1, 2, 3], "send an object with one key per input"),
        ({"x": [1, 2, 3], "ids": [1, 2], "flag": True}, r"missing \['name'\], unknown \[\]"),
        ({"x": [1, 2, 3], "ids": [1, 2], "flag": True, "name": "a", "extra": 1}, r"unknown \['extra'\]"),
        (
            {"x": [1, 2], "ids": [1, 2], "flag": True, "name": "a"},
            r"\.x: expected float32 values shaped \[3\]",
        ),
        (
            {"x": ["a", "b", "c"], "ids": [1, 2], "flag": True, "name": "a"},
            r"\.x: expected float32.*got text",
        ),
        ({"x": [1, 2, 3], "ids": [1.5, 2], "flag": True, "name": "a"}, r"\.ids: expected integers \(int64\)"),
        (
            {"x": [1, 2, 3], "ids": [1, 2], "flag": "yes", "name": "a"},
            r"\.flag: expected a single bool value",
        ),
        ({"x": [[1, 2], [3]], "ids": [1, 2], "flag": True, "name": "a"}, r"\.x: .*ragged"),
    ],
    ids=["not-object", "missing", "unknown", "shape", "strings", "fractional", "bool", "ragged"],
)
def test_multi_input_instance_errors_name_the_input(multi: LoadedModel, instance: Any, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment) as caught:
        multi.predict([{"x": [0, 0, 0], "ids": [0, 0], "flag": True, "name": "ok"}, instance])
    assert caught.value.message.startswith("instances[1]")
    assert caught.value.status == 422


# --- (b) fixed-batch-1 image graphs from the onnx package ----------------------------------

LIGHT = ["light_squeezenet", "light_resnet50"]


@pytest.fixture(scope="module")
def light_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("light")
    for name in LIGHT:
        onnx_graphs.copy_light_model(store, name, name.removeprefix("light_"))
    return store


@pytest.fixture(scope="module", params=LIGHT)
def light(request: pytest.FixtureRequest, light_store: Path) -> tuple[LoadedModel, Any]:
    """The model served by sinfer (no manifest) and a plain onnxruntime session on the same file."""
    name = request.param.removeprefix("light_")
    model = load(light_store, name)
    direct = ort.InferenceSession(str(onnx_graphs.LIGHT_MODELS / f"{request.param}.onnx"))
    return model, direct


def test_fixed_batch_one_graph_loops_over_a_batch(light: tuple[LoadedModel, Any]) -> None:
    model, direct = light
    # GIVEN a graph whose input is float[1, 3, 224, 224] and no model.json
    [spec] = model.inputs
    assert spec.shape == (1, 3, 224, 224)
    assert model.manifest.sha256 is None
    assert model.loops

    # WHEN a batch of three instances is predicted (the first as nested JSON lists)
    rng = np.random.default_rng(0)
    batch = rng.random((3, 3, 224, 224), dtype=np.float32)
    predictions = model.predict([batch[0].tolist(), batch[1], batch[2]])

    # THEN each equals a direct run on that one instance
    assert len(predictions) == 3
    for instance, prediction in zip(batch, predictions, strict=True):
        [expected] = direct.run(None, {spec.name: instance[None]})
        assert np.allclose(np.asarray(prediction, np.float32), expected[0], atol=1e-6)


def test_fixed_batch_one_graph_takes_whole_batches_over_v2(light: tuple[LoadedModel, Any]) -> None:
    model, direct = light
    name = model.input_names[0]
    batch = np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32)
    [outputs] = model.run_v2({name: batch})
    assert outputs.shape[0] == 2
    for i in range(2):
        assert np.allclose(outputs[i], direct.run(None, {name: batch[i : i + 1]})[0][0], atol=1e-6)


def test_image_graph_accepts_png_bytes_without_a_manifest(light: tuple[LoadedModel, Any]) -> None:
    model, direct = light
    # GIVEN a 40x30 RGB PNG, as raw bytes and as {"b64": ...}
    pixels = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    data = png(pixels)

    # WHEN predicted
    raw, wrapped = model.predict([data, {"b64": base64.b64encode(data).decode()}])

    # THEN the implied preprocessing (resize to 224x224, scale to [0, 1], NCHW) was applied
    resized = np.asarray(Image.fromarray(pixels).resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    tensor = (resized / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
    [expected] = direct.run(None, {model.input_names[0]: tensor})
    assert np.allclose(np.asarray(raw, np.float32), expected[0], atol=1e-5)
    assert raw == wrapped


@pytest.mark.parametrize(
    ("instance", "fragment"),
    [
        (b"definitely not an image", "PNG or JPEG"),
        ({"b64": "***not base64***"}, "not valid base64"),
        ({"b64": base64.b64encode(b"GIF89a....").decode()}, "PNG or JPEG"),
        ({"b64": 12}, "must be a base64 string"),
        ([1.0, 2.0, 3.0], r"expected float32 values shaped \[3, 224, 224\], got shape \[3\]"),
        ({"pixels": [1.0]}, r"object with keys \['pixels'\].*b64"),
    ],
    ids=["garbage-bytes", "bad-base64", "gif", "b64-not-string", "short-vector", "wrong-object"],
)
def test_bad_image_instances_are_invalid_input(light_store: Path, instance: Any, fragment: str) -> None:
    model = load(light_store, "squeezenet")
    with pytest.raises(InvalidInputError, match=fragment) as caught:
        model.predict([instance])
    assert caught.value.message.startswith("instances[0] (input 'data_0')")


def test_oversized_image_is_refused(light_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    model = load(light_store, "squeezenet")
    with pytest.raises(InvalidInputError, match="11x10 pixels; at most 100"):
        model.predict([png(np.zeros((10, 11, 3), np.uint8))])


# --- (c) skl2onnx ZipMap classifier ------------------------------------------------------


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Any, np.ndarray, Path]:
    store = tmp_path_factory.mktemp("iris")
    classifier, features = onnx_graphs.iris_zipmap(store)
    return load(store, "iris"), classifier, features, store


def test_zipmap_classifier_serves_label_and_probabilities(
    iris: tuple[LoadedModel, Any, np.ndarray, Path],
) -> None:
    model, classifier, features, _ = iris
    # GIVEN default skl2onnx options: output_probability is seq(map(int64, float))
    assert model.outputs[1].onnx_type.startswith("seq(map(int64")
    rows = features[::10]

    # WHEN rows are predicted, as plain lists
    predictions = strict_json(model.predict(rows.tolist()))

    # THEN labels equal sklearn's and probabilities match predict_proba
    expected_proba = classifier.predict_proba(rows)
    expected_label = classifier.predict(rows)
    for prediction, proba, label in zip(predictions, expected_proba, expected_label, strict=True):
        assert prediction["output_label"] == int(label)
        assert list(prediction["output_probability"]) == ["0", "1", "2"]
        assert np.allclose(list(prediction["output_probability"].values()), proba, atol=1e-5)


def test_zipmap_with_manifest_labels_and_postprocess(iris: tuple[LoadedModel, Any, np.ndarray, Path]) -> None:
    _, classifier, features, store = iris
    folder = store / "iris" / "1"
    (folder / "model.json").write_text(
        json.dumps({"labels": ["setosa", "versicolor", "virginica"], "postprocess": "probabilities"})
    )
    try:
        model = load(store, "iris")
    finally:
        (folder / "model.json").unlink()
    rows = features[[0, 60, 120]]
    predictions = model.predict(rows.tolist())
    names = np.array(["setosa", "versicolor", "virginica"])
    assert [p["label"] for p in predictions] == names[classifier.predict(rows)].tolist()
    for prediction, proba in zip(predictions, classifier.predict_proba(rows), strict=True):
        assert list(prediction["probabilities"]) == names.tolist()
        assert np.allclose(list(prediction["probabilities"].values()), proba, atol=1e-5)


def test_zipmap_whole_tensor_run_returns_the_map_sequence(
    iris: tuple[LoadedModel, Any, np.ndarray, Path],
) -> None:
    model, classifier, features, _ = iris
    labels, maps = model.run_v2({"features": features[:4]})
    assert labels.tolist() == classifier.predict(features[:4]).tolist()
    assert len(maps) == 4
    assert np.allclose([maps[0][k] for k in (0, 1, 2)], classifier.predict_proba(features[:1])[0], atol=1e-5)


# --- (d) no batch axis, (e) a fixed non-batch first dimension ------------------------------


def test_input_without_batch_axis_is_looped_and_outputs_stay_whole(tmp_path: Path) -> None:
    # GIVEN x: float[3] — one instance is the whole input; total is shaped [1]
    onnx_graphs.no_batch_axis(tmp_path)
    model = load(tmp_path, "vector3")
    assert model.loops

    # WHEN two instances are predicted
    predictions = model.predict([[1, 2, 3], [4, 5, 6.5]])

    # THEN each runs alone and its outputs keep the graph's shapes (total stays [sum])
    assert predictions == [
        {"doubled": [2.0, 4.0, 6.0], "total": [6.0]},
        {"doubled": [8.0, 10.0, 13.0], "total": [15.5]},
    ]
    doubled, total = model.run_v2({"x": np.array([1, 1, 1], np.float32)})
    assert doubled.tolist() == [2.0, 2.0, 2.0]
    assert total.tolist() == [3.0]
    with pytest.raises(InvalidInputError, match=r"expected float32 values shaped \[3\], got shape \[2\]"):
        model.predict([[1, 2]])


def test_scalar_input(tmp_path: Path) -> None:
    onnx_graphs.scalar_input(tmp_path)
    model = load(tmp_path, "scalar")
    assert model.predict([2, 1.5, {"x": -3}]) == [4.0, 2.25, 9.0]
    with pytest.raises(InvalidInputError, match="expected a single float32 value"):
        model.predict([[1, 2]])


def test_fixed_first_dimension_of_four_is_not_a_batch(tmp_path: Path) -> None:
    # GIVEN x: float[4, 2] — a first dim of 4 cannot carry a batch
    onnx_graphs.fixed_four(tmp_path)
    model = load(tmp_path, "four")
    assert model.loops
    assert not model.inputs[0].has_batch_axis

    # WHEN three instances of shape [4, 2] (one flattened) are predicted
    instances = [np.arange(8).reshape(4, 2).tolist(), [[1, 1]] * 4, list(range(8))]
    predictions = model.predict(instances)

    # THEN each is run alone
    assert predictions == [[1.0, 5.0, 9.0, 13.0], [2.0, 2.0, 2.0, 2.0], [1.0, 5.0, 9.0, 13.0]]
    with pytest.raises(
        InvalidInputError, match=r"input 'x': expected shape float32\[4, 2\], got \[3, 4, 2\]"
    ):
        model.run_v2({"x": np.zeros((3, 4, 2), np.float32)})


# --- more of "any valid model" -----------------------------------------------------------


def test_sequence_input_is_refused_cleanly(tmp_path: Path) -> None:
    onnx_graphs.sequence_input(tmp_path)
    model = load(tmp_path, "seq")
    with pytest.raises(InvalidInputError, match=r"seq\(tensor\(float\)\) cannot be fed from JSON"):
        model.predict([[1.0, 2.0]])


def test_single_input_may_be_wrapped_in_its_name(tmp_path: Path) -> None:
    onnx_graphs.identity(tmp_path, "ids", TensorProto.INT64, ["N", 2])
    model = load(tmp_path, "ids")
    assert model.predict([[1, 2], {"x": [3, 4]}, [5.0, 6.0]]) == [[1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize(
    ("instance", "fragment"),
    [
        ([1, 2, 3], r"expected int64 values shaped \[2\], got shape \[3\]"),
        (["a", "b"], r"expected int64 values shaped \[2\], got text"),
        ([0.5, 1], r"expected integers \(int64\), got fractional values"),
        ([[1], [2, 3]], "ragged"),
        (None, "non-numeric"),
        ({"a": 1, "b": 2}, r"got an object with keys \['a', 'b'\]"),
        (b"\x89PNG\r\n\x1a\n", "not an image input"),
    ],
    ids=["shape", "strings", "fractional", "ragged", "null", "object", "bytes"],
)
def test_single_input_errors_name_input_dtype_and_shape(tmp_path: Path, instance: Any, fragment: str) -> None:
    onnx_graphs.identity(tmp_path, "ids", TensorProto.INT64, ["N", 2])
    model = load(tmp_path, "ids")
    with pytest.raises(InvalidInputError, match=fragment) as caught:
        model.predict([[0, 0], instance])
    assert caught.value.message.startswith("instances[1] (input 'x')")


@pytest.mark.parametrize(
    "shape", [["N", 3], ["N", None], ["N", 3, 1]], ids=["fixed", "any-width", "reshaped"]
)
def test_rows_of_plain_numbers_are_fed_whole_and_other_widths_refused_per_instance(
    tmp_path: Path, shape: list[Any]
) -> None:
    # GIVEN a float graph whose instances are rows (of a fixed width, any width, or reshaped)
    onnx_graphs.identity(tmp_path, "rows", TensorProto.FLOAT, shape)
    model = load(tmp_path, "rows")
    rows = [[0.5, 2, True], [1e39, float("nan"), -0.0]]
    # WHEN rows arrive whole THEN they are what each instance alone converts to
    got = model.predict(rows)
    alone = [model.predict([row])[0] for row in rows]
    assert json.dumps(got) == json.dumps(alone)
    assert model.predict(rows[:1]) == [[0.5, 2.0, 1.0] if len(shape) == 2 else [[0.5], [2.0], [1.0]]]
    # and a row of another width names its instance (unless the graph takes any width)
    if shape[1] is None:
        assert model.predict([[1.0, 2.0]]) == [[1.0, 2.0]]
    else:
        with pytest.raises(InvalidInputError, match=r"instances\[0\] \(input 'x'\)"):
            model.predict([[1.0, 2.0]])


def test_tabular_columns_map_objects_to_vectors(tmp_path: Path) -> None:
    manifest = {"inputs": {"x": {"kind": "tabular", "columns": ["height", "weight"]}}}
    onnx_graphs.identity(tmp_path, "tab", TensorProto.FLOAT, ["N", 2], manifest=manifest)
    model = load(tmp_path, "tab")
    # key order in the object does not matter; the manifest's column order does
    assert model.predict([{"weight": 70, "height": 1.8}]) == [[pytest.approx(1.8), 70.0]]
    with pytest.raises(
        InvalidInputError, match=r"expected columns \['height', 'weight'\]; missing \['weight'\]"
    ):
        model.predict([{"height": 1.8}])
    with pytest.raises(InvalidInputError, match=r"unknown \['age'\]"):
        model.predict([{"height": 1.8, "weight": 70, "age": 40}])
    with pytest.raises(InvalidInputError, match="got text"):
        model.predict([{"height": "tall", "weight": 70}])


def test_instances_of_different_shapes_on_a_dynamic_axis(tmp_path: Path) -> None:
    onnx_graphs.identity(tmp_path, "any", TensorProto.FLOAT, ["N", "M"])
    model = load(tmp_path, "any")
    assert model.predict([[1, 2, 3]]) == [[1.0, 2.0, 3.0]]
    with pytest.raises(
        InvalidInputError, match=r"input 'x': instances have different shapes \[\(2,\), \(3,\)\]"
    ):
        model.predict([[1, 2, 3], [1, 2]])


def test_runtime_failures_become_invalid_input(tmp_path: Path) -> None:
    # GIVEN a graph that reshapes x: float[N, M] into rows of 4: only some M can run
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "reshape",
        [onnx_graphs.tensor("x", TensorProto.FLOAT, ["N", "M"])],
        [onnx_graphs.tensor("y", TensorProto.FLOAT, [None, 4])],
        initializer=[shape],
    )
    onnx_graphs.write_model(tmp_path, "reshape", graph)
    model = load(tmp_path, "reshape")
    assert model.predict([[1, 2, 3, 4]]) == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(InvalidInputError, match="could not run on this input"):
        model.predict([[1, 2, 3]])


class _CountingSession:
    """Wraps a session to record the batch size of every run."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self._session.run(names, feeds)


def test_batches_are_chunked_by_max_batch_size(tmp_path: Path) -> None:
    # GIVEN a model whose manifest caps batches at 2
    onnx_graphs.identity(
        tmp_path, "cap", TensorProto.FLOAT, ["N", 1], manifest={"batch": {"max_batch_size": 2}}
    )
    files = LocalModelStore(tmp_path).fetch("cap", "1")
    counting = _CountingSession(ort.InferenceSession(str(files.onnx_path)))
    model = LoadedModel(files, counting)

    # WHEN five instances are predicted THEN they run as 2 + 2 + 1, in order
    assert model.predict([[i] for i in range(5)]) == [[float(i)] for i in range(5)]
    assert counting.batches == [2, 2, 1]


def test_onnxruntime_sessions_are_run_through_their_binding(tmp_path: Path) -> None:
    # GIVEN an identity model loaded with a real InferenceSession, and the same model behind a
    # wrapper whose run() is its own (as a test double or a subclass would be)
    onnx_graphs.identity(tmp_path, "ident", TensorProto.FLOAT, ["N", 2])
    files = LocalModelStore(tmp_path).fetch("ident", "1")
    session = ort.InferenceSession(str(files.onnx_path))
    direct = LoadedModel(files, session)
    counting = _CountingSession(ort.InferenceSession(str(files.onnx_path)))
    wrapped = LoadedModel(files, counting)

    # THEN the real session's C++ run is called directly, skipping InferenceSession.run's
    # Python checks; the wrapper keeps its own run, though its __getattr__ reaches _sess
    assert direct._binding_run == session._sess.run
    # AND both give what the public run gives, for predictions and whole-tensor runs
    x = np.array([[1.5, -2.0], [0.0, 3.25]], dtype=np.float32)
    expected = session.run(None, {"x": x})[0]
    for model in (direct, wrapped):
        assert model.predict(x.tolist()) == expected.tolist()
        np.testing.assert_array_equal(model.run({"x": x})[0], expected)
    assert counting.batches == [2, 2]
    # AND a feed the C++ run refuses (an input missing) is still a clear InvalidInputError
    with pytest.raises(InvalidInputError, match="could not run on this input"):
        direct.run({})


# --- a manifest that does not fit its graph fails the load, naming both ----------------------


@pytest.mark.parametrize(
    ("elem_type", "shape", "manifest", "says"),
    [
        (
            TensorProto.FLOAT,
            ["N", 3],
            {"labels": ["a", "b"], "postprocess": "argmax"},
            "labels has 2 names, but output 'y' scores 3 classes",
        ),
        (
            TensorProto.INT64,
            ["N", 3],
            {"postprocess": {"kind": "argmax", "output": "y"}},
            "postprocess reads output 'y', which holds int64",
        ),
        (
            TensorProto.FLOAT,
            ["N", 4],
            {"inputs": {"x": {"kind": "tabular", "columns": ["a", "b"]}}},
            "2 columns, but the graph input takes float32 values shaped [4]",
        ),
        (
            TensorProto.FLOAT,
            ["N", 4],
            {"inputs": {"x": {"kind": "image", "image": {"color_mode": "L", "resize": 8, "layout": "flat"}}}},
            "give [64] (64 values) per image, but the graph input takes float32 values shaped [4]",
        ),
    ],
    ids=["label-count", "scores-not-float", "column-count", "image-size"],
)
def test_a_manifest_that_does_not_fit_the_graph_fails_the_load(
    tmp_path: Path, elem_type: int, shape: list[Any], manifest: dict[str, Any], says: str
) -> None:
    onnx_graphs.identity(tmp_path, "m", elem_type, shape, manifest=manifest)

    with pytest.raises(ManifestError) as raised:
        load(tmp_path, "m")

    assert says in raised.value.message
    assert raised.value.status == 503


def test_a_manifest_that_fits_still_loads(tmp_path: Path) -> None:
    manifest = {
        "labels": ["a", "b", "c"],
        "postprocess": {"kind": "top_k", "k": 5},  # (k over the class count: every class, ranked)
        "inputs": {"x": {"kind": "tabular", "columns": ["p", "q", "r"]}},
    }
    onnx_graphs.identity(tmp_path, "m", TensorProto.FLOAT, ["N", 3], manifest=manifest)

    prediction = load(tmp_path, "m").predict([{"p": 0.1, "q": 0.7, "r": 0.2}])[0]

    assert prediction["label"] == "b"
    assert [entry["label"] for entry in prediction["top_k"]] == ["b", "c", "a"]


def test_a_text_input_takes_strings_and_must_be_a_string_input(tmp_path: Path) -> None:
    # GIVEN a string input declared as text, and a float input wrongly declared so
    onnx_graphs.identity(
        tmp_path, "t", TensorProto.STRING, ["N", 1], manifest={"inputs": {"x": {"kind": "text"}}}
    )
    onnx_graphs.identity(
        tmp_path, "f", TensorProto.FLOAT, ["N", 1], manifest={"inputs": {"x": {"kind": "text"}}}
    )

    # THEN the text model takes bare strings, and the other fails its load naming the input
    assert load(tmp_path, "t").predict(["great product", ["awful"]]) == [["great product"], ["awful"]]
    with pytest.raises(ManifestError, match=r"inputs.x: kind 'text' needs a string input"):
        load(tmp_path, "f")
