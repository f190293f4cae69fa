"""Element types: ONNX type strings, numpy dtypes and the Open Inference Protocol's names."""

from __future__ import annotations

import numpy as np

# ONNX Runtime reports tensor types as 'tensor(<elem>)'.
ONNX_TO_NUMPY: dict[str, np.dtype[np.generic]] = {
    "float": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "double": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
}

NUMPY_TO_V2: dict[str, str] = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
    "object": "BYTES",
}
V2_TO_NUMPY: dict[str, np.dtype[np.generic]] = {v: np.dtype(k) for k, v in NUMPY_TO_V2.items()}


def tensor_elem(onnx_type: str) -> str | None:
    """'tensor(float)' -> 'float'; None for sequences, maps and optionals."""
    if onnx_type.startswith("tensor(") and onnx_type.endswith(")"):
        return onnx_type[len("tensor(") : -1]
    return None


def numpy_dtype(onnx_type: str) -> np.dtype[np.generic] | None:
    elem = tensor_elem(onnx_type)
    return ONNX_TO_NUMPY.get(elem) if elem else None


def v2_datatype(dtype: np.dtype[np.generic] | None) -> str:
    """Open Inference Protocol datatype; non-tensor values travel as BYTES (JSON text)."""
    if dtype is None:
        return "BYTES"
    if dtype.kind in "USO":
        return "BYTES"
    return NUMPY_TO_V2.get(dtype.name, "BYTES")


def friendly(dtype: np.dtype[np.generic] | None) -> str:
    if dtype is None:
        return "non-tensor"
    return "string" if dtype.kind in "USO" else dtype.name
