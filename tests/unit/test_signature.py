"""Signatures read from the graph: dtypes, dynamic dimensions, the batch axis, text for errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto

from sinfer.errors import ManifestError
from sinfer.model.manifest import InputDecl, Manifest
from sinfer.model.session import create_session
from sinfer.model.signature import TensorSpec, read_signature
from tests.unit import onnx_graphs


def spec(shape: tuple[int | None, ...] | None, dtype: Any = np.float32) -> TensorSpec:
    return TensorSpec("x", "tensor(float)", np.dtype(dtype), shape, InputDecl())


@pytest.mark.parametrize(
    ("shape", "batch", "fixed_one", "sample", "text"),
    [
        ((None, 3), True, False, (3,), "float32[N, 3]"),
        ((1, 3, 224, 224), True, True, (3, 224, 224), "float32[N, 3, 224, 224]"),
        ((None, None), True, False, (None,), "float32[N, ?]"),
        ((4, 2), False, False, (4, 2), "float32[4, 2]"),
        ((3,), False, False, (3,), "float32[3]"),
        ((), False, False, (), "float32[]"),
        (None, False, False, None, "float32 (any shape)"),
    ],
)
def test_batch_axis_is_a_leading_symbolic_or_unit_dimension(
    shape: tuple[int | None, ...] | None, batch: bool, fixed_one: bool, sample: Any, text: str
) -> None:
    tensor = spec(shape)
    assert tensor.has_batch_axis is batch
    assert tensor.fixed_batch_one is fixed_one
    assert tensor.sample_shape == sample
    assert tensor.describe() == text


def test_sample_descriptions_say_dtype_and_shape() -> None:
    assert spec((None, 8, 8)).describe_sample() == "float32 values shaped [8, 8]"
    assert spec((None,), np.int64).describe_sample() == "a single int64 value"
    assert spec((None, None), object).describe_sample() == "string values shaped [?]"
    assert spec(None).describe_sample() == "float32 values of any shape"


def test_v2_metadata_uses_minus_one_for_dynamic_dims() -> None:
    assert spec((None, 3)).v2_shape() == [-1, 3]
    assert spec((None, 3)).v2_datatype == "FP32"
    assert spec((None,), object).v2_datatype == "BYTES"
    assert spec((None,), np.float16).v2_datatype == "FP16"


def test_read_signature_from_a_real_multi_input_graph(tmp_path: Path) -> None:
    # GIVEN a graph with symbolic batch dims and four element types
    session = create_session(onnx_graphs.multi_io(tmp_path), threads=1)

    # WHEN the signature is read without a manifest
    inputs, outputs = read_signature(session, Manifest.empty())

    # THEN names, dtypes and shapes come from the graph
    assert [(s.name, s.dtype, s.shape) for s in inputs] == [
        ("x", np.dtype(np.float32), (None, 3)),
        ("ids", np.dtype(np.int64), (None, 2)),
        ("flag", np.dtype(np.bool_), (None,)),
        ("name", np.dtype(object), (None,)),
    ]
    assert [(s.name, s.dtype) for s in outputs] == [
        ("x_half", np.dtype(np.float16)),
        ("ids_sum", np.dtype(np.int64)),
        ("name_out", np.dtype(object)),
        ("flag_not", np.dtype(np.bool_)),
    ]
    assert all(s.decl == InputDecl() for s in inputs)


def test_non_tensor_outputs_have_no_dtype(tmp_path: Path) -> None:
    onnx_graphs.iris_zipmap(tmp_path)
    session = create_session(tmp_path / "iris" / "1" / "model.onnx", threads=1)
    _, outputs = read_signature(session, Manifest.empty())
    probabilities = outputs[1]
    assert probabilities.onnx_type.startswith("seq(map(int64")
    assert probabilities.dtype is None
    assert probabilities.shape is None
    assert probabilities.v2_datatype == "BYTES"


@dataclass
class _Arg:
    name: str
    type: str
    shape: Any


class _FakeSession:
    def get_inputs(self) -> list[_Arg]:
        return [_Arg("pixels", "tensor(float)", ["batch", 64]), _Arg("mask", "tensor(uint8)", [-1, None])]

    def get_outputs(self) -> list[_Arg]:
        return [_Arg("y", "tensor(double)", [None])]


def test_manifest_declarations_attach_by_name_and_unknown_ones_fail() -> None:
    manifest = Manifest.from_dict({"inputs": {"pixels": {"kind": "image"}}})
    inputs, outputs = read_signature(_FakeSession(), manifest)
    assert inputs[0].decl.kind == "image"
    assert inputs[0].shape == (None, 64)
    assert inputs[1].shape == (None, None)  # negative and missing dims are dynamic
    assert outputs[0].dtype == np.dtype(np.float64)

    with pytest.raises(ManifestError, match=r"\['pixel'\].*pixels"):
        read_signature(_FakeSession(), Manifest.from_dict({"inputs": {"pixel": {"kind": "image"}}}))


def test_identity_graph_keeps_fixed_dims(tmp_path: Path) -> None:
    path = onnx_graphs.identity(tmp_path, "fixed", TensorProto.INT64, [4, 2])
    inputs, _ = read_signature(create_session(path, threads=1), Manifest.empty())
    assert inputs[0].shape == (4, 2)
    assert not inputs[0].has_batch_axis
