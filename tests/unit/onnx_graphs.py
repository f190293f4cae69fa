"""Small ONNX graphs built with ``onnx.helper``, written into a model store folder.

Each builder writes ``<store>/<name>/<version>/model.onnx`` (no manifest unless asked), so a
test can point a :class:`~sinfer.model.store.LocalModelStore` at ``tmp_path`` and serve the
graph exactly as a user's model would be served. The graphs cover what "any valid ONNX model"
means in DESIGN.md: several inputs of different element types, float16/int64/string/bool
outputs, inputs without a batch axis, a fixed non-batch first dimension, sequence inputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from sinfer.inference.model import LoadedModel
from sinfer.model.session import create_session
from sinfer.model.store import LocalModelStore

OPSET = 17
IR_VERSION = 8
LIGHT_MODELS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

Shape = list[int | str | None]


def tensor(name: str, elem_type: int, shape: Shape | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def write_model(
    store: Path,
    name: str,
    graph: onnx.GraphProto,
    *,
    version: str = "1",
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Check the graph, save it as a store entry and return the model.onnx path."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    folder = store / name / version
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, path)
    if manifest is not None:
        (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def load(store: Path, name: str, version: str = "1") -> LoadedModel:
    """Fetch from a local store and build the session the way the registry does."""
    files = LocalModelStore(store).fetch(name, version)
    return LoadedModel(files, create_session(files.onnx_path, threads=1))


def identity(
    store: Path, name: str, elem_type: int, shape: Shape, *, manifest: dict[str, Any] | None = None
) -> Path:
    """``y = Identity(x)``: the smallest graph with one input of a given type and shape."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        name,
        [tensor("x", elem_type, shape)],
        [tensor("y", elem_type, shape)],
    )
    return write_model(store, name, graph, manifest=manifest)


def multi_io(store: Path, name: str = "multi") -> Path:
    """Four inputs (float, int64, bool, string), four outputs (float16, int64, string, bool).

    * ``x_half  = Cast(x, float16)``          float16[N, 3]
    * ``ids_sum = ReduceSum(ids, axis=1)``    int64[N]
    * ``name_out = Identity(name)``           string[N]
    * ``flag_not = Not(flag)``                bool[N]
    """
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["x_half"], to=TensorProto.FLOAT16),
            helper.make_node("ReduceSum", ["ids", "axes"], ["ids_sum"], keepdims=0),
            helper.make_node("Identity", ["name"], ["name_out"]),
            helper.make_node("Not", ["flag"], ["flag_not"]),
        ],
        name,
        [
            tensor("x", TensorProto.FLOAT, ["N", 3]),
            tensor("ids", TensorProto.INT64, ["N", 2]),
            tensor("flag", TensorProto.BOOL, ["N"]),
            tensor("name", TensorProto.STRING, ["N"]),
        ],
        [
            tensor("x_half", TensorProto.FLOAT16, ["N", 3]),
            tensor("ids_sum", TensorProto.INT64, ["N"]),
            tensor("name_out", TensorProto.STRING, ["N"]),
            tensor("flag_not", TensorProto.BOOL, ["N"]),
        ],
        initializer=[axes],
    )
    return write_model(store, name, graph)


def no_batch_axis(store: Path, name: str = "vector3") -> Path:
    """Input ``x: float[3]`` with no batch axis; ``doubled = 2x`` and ``total = sum(x)`` shaped [1]."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["doubled"]),
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=1),
        ],
        name,
        [tensor("x", TensorProto.FLOAT, [3])],
        [tensor("doubled", TensorProto.FLOAT, [3]), tensor("total", TensorProto.FLOAT, [1])],
        initializer=[two],
    )
    return write_model(store, name, graph)


def scalar_input(store: Path, name: str = "scalar") -> Path:
    """A rank-0 input: ``y = x * x`` for ``x: float[]``."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        name,
        [tensor("x", TensorProto.FLOAT, [])],
        [tensor("y", TensorProto.FLOAT, [])],
    )
    return write_model(store, name, graph)


def fixed_four(store: Path, name: str = "four") -> Path:
    """Input ``x: float[4, 2]`` (first dim fixed at 4, so not a batch axis); ``row_sum: float[4]``."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["row_sum"], keepdims=0)],
        name,
        [tensor("x", TensorProto.FLOAT, [4, 2])],
        [tensor("row_sum", TensorProto.FLOAT, [4])],
        initializer=[axes],
    )
    return write_model(store, name, graph)


def sequence_input(store: Path, name: str = "seq") -> Path:
    """An input JSON cannot carry as one tensor: ``seq(tensor(float))``; output its length."""
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["xs"], ["n"])],
        name,
        [helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, ["N"])],
        [tensor("n", TensorProto.INT64, [])],
    )
    return write_model(store, name, graph)


def iris_zipmap(store: Path, name: str = "iris") -> tuple[Any, np.ndarray[Any, Any]]:
    """A skl2onnx LogisticRegression with default options (ZipMap on): seq(map(int64, float)).

    Returns the fitted sklearn classifier and the iris features (float32) to compare with.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    features = data.data.astype(np.float32)
    classifier = LogisticRegression(max_iter=1000).fit(features, data.target)
    onnx_model = convert_sklearn(
        classifier, initial_types=[("features", FloatTensorType([None, 4]))], target_opset=OPSET
    )
    folder = store / name / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return classifier, features


def copy_light_model(store: Path, light_name: str, name: str) -> Path:
    """Copy one of the onnx package's fixed-batch-1 image graphs into the store (no manifest)."""
    folder = store / name / "1"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    shutil.copyfile(LIGHT_MODELS / f"{light_name}.onnx", path)
    return path
