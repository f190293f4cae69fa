"""Open Inference Protocol v2 (KServe v2 / Triton) REST inference, with binary tensor data.

The binary tensor data extension puts a JSON header first and raw tensor bytes after it; the
``Inference-Header-Content-Length`` HTTP header says where the JSON ends. Inputs carry
``parameters.binary_data_size``; outputs are returned as binary when the request asks for it
per output (``parameters.binary_data``) or for all (``parameters.binary_data_output``), which is
what ``tritonclient.http`` does by default. BYTES elements are 4-byte little-endian lengths
followed by the bytes, in both directions.

Outputs that are not tensors (skl2onnx ZipMap's ``seq(map)``) travel as BYTES tensors holding
one JSON document per batch item: the protocol has no map type, and this keeps them readable.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypeGuard

import numpy as np

from sinfer.codecs.arrays import cast
from sinfer.codecs.dtypes import V2_TO_NUMPY, v2_datatype
from sinfer.codecs.outputs import to_jsonable
from sinfer.errors import BadRequestError, InvalidInputError
from sinfer.protocols import jsonbody


# NamedTuples, not dataclasses: fast.py imports this module on every cold start, and Python 3.12
# compiles a dataclass's generated methods at import (~0.6 ms a class here).
class RequestedOutput(NamedTuple):
    name: str
    binary: bool | None  # its own binary_data, if it says (None: the request's default)


class InferRequest(NamedTuple):
    inputs: dict[str, np.ndarray[Any, Any]]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    binary_output: bool = False
    parameters: Mapping[str, Any] = MappingProxyType({})


def parse_header_length(value: str | None, body_length: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        length = int(value)
    except ValueError:
        raise BadRequestError("Inference-Header-Content-Length must be an integer") from None
    if not 0 < length <= body_length:
        raise BadRequestError(
            f"Inference-Header-Content-Length is {length}, but the body has {body_length} bytes"
        )
    return length


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    head = body if header_length is None else body[:header_length]
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    doc = jsonbody.parse(head, "request")
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadRequestError('expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    params = _params(doc.get("parameters"), "parameters")
    offset = 0
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for index, tensor in enumerate(doc["inputs"]):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict):
            raise BadRequestError(f"{where}: expected an object")
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise BadRequestError(f"{where}: 'name' must be a string")
        if not _valid_shape(shape):
            raise BadRequestError(
                f"{where} ({name}): 'shape' must be a list of at most {MAX_RANK} non-negative integers"
            )
        if datatype not in V2_TO_NUMPY:
            raise BadRequestError(
                f"{where} ({name}): unknown datatype {datatype!r}; expected one of {', '.join(V2_TO_NUMPY)}"
            )
        if name in inputs:
            raise BadRequestError(f"{where}: input {name!r} appears twice")
        size = _params(tensor.get("parameters"), f"{where}.parameters").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequestError(
                    f"{where} ({name}): binary_data_size {size} does not fit "
                    f"the {len(binary)} binary bytes sent"
                )
            inputs[name] = _from_binary(binary[offset : offset + size], shape, datatype, f"{where} ({name})")
            offset += size
        else:
            if "data" not in tensor:
                raise BadRequestError(f"{where} ({name}): needs 'data' or parameters.binary_data_size")
            inputs[name] = _from_json(tensor["data"], shape, datatype, f"{where} ({name})")
    if offset != len(binary):
        raise BadRequestError(f"{len(binary) - offset} binary bytes after the last declared input")
    outputs = None
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise BadRequestError("'outputs' must be a list")
        outputs = []
        for index, out in enumerate(doc["outputs"]):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadRequestError(f"outputs[{index}]: expected an object with a 'name'")
            out_params = _params(out.get("parameters"), f"outputs[{index}].parameters")
            asked = _flag(out_params.get("binary_data"), f"outputs[{index}].parameters.binary_data")
            outputs.append(RequestedOutput(out["name"], asked))
    request_id = doc.get("id")
    return InferRequest(
        inputs=inputs,
        id=str(request_id) if request_id is not None else None,
        outputs=outputs,
        binary_output=bool(_flag(params.get("binary_data_output"), "parameters.binary_data_output")),
        parameters=params,
    )


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{where} must be an object")
    return value


# numpy arrays have at most 64 axes (32 before numpy 2); no model input comes near either.
MAX_RANK = 32


def _valid_shape(shape: object) -> TypeGuard[list[int]]:
    # bool is an int to Python, but [true, 64] is not a shape; dimensions past 2**62 would
    # overflow numpy's index type before any size check could refuse them.
    return (
        isinstance(shape, list)
        and len(shape) <= MAX_RANK
        and all(type(d) is int and 0 <= d < 2**62 for d in shape)
    )


def _count(shape: list[int]) -> int:
    return math.prod(shape)  # exact: numpy's int64 product wraps for shapes like [10**11] * 3


def _reshape(array: np.ndarray[Any, Any], shape: list[int], where: str) -> np.ndarray[Any, Any]:
    try:
        return array.reshape(shape)
    except ValueError as exc:  # e.g. [2**61, 0]: no values, yet more than numpy can index
        raise InvalidInputError(f"{where}: shape {shape} cannot be used: {exc}") from None


def _from_json(data: Any, shape: list[int], datatype: str, where: str) -> np.ndarray[Any, Any]:
    dtype = V2_TO_NUMPY[datatype]
    try:
        array = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except (ValueError, TypeError):
        raise InvalidInputError(
            f"{where}: 'data' is ragged; expected {_count(shape)} {datatype} values"
        ) from None
    if datatype != "BYTES":
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(f"{where}: expected {datatype} numbers in 'data'")
        if array.size and (array.dtype.kind == "b") != (datatype == "BOOL"):  # (16 as BOOL: True)
            wanted = "true or false" if datatype == "BOOL" else f"{datatype} numbers, not true or false,"
            raise InvalidInputError(f"{where}: expected {wanted} in 'data'")
        array = cast(array, dtype, where)
    if array.size != _count(shape):
        raise InvalidInputError(
            f"{where}: shape {shape} needs {_count(shape)} values, 'data' has {array.size}"
        )
    return _reshape(array, shape, where)


def _flag(value: Any, where: str) -> bool | None:
    """A boolean parameter: true, false, or absent (None). "false" is no boolean: bool("false")
    would make it true."""
    if value is None or isinstance(value, bool):
        return value
    raise BadRequestError(f"{where} must be true or false, got {json.dumps(value)}")


def _is_utf8(item: bytes) -> bool:
    try:
        item.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _from_binary(raw: memoryview, shape: list[int], datatype: str, where: str) -> np.ndarray[Any, Any]:
    count = _count(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequestError(f"{where}: truncated BYTES element length")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise BadRequestError(f"{where}: BYTES element overruns the binary data")
            items.append(bytes(raw[pos : pos + length]))
            pos += length
        if len(items) != count:
            raise InvalidInputError(f"{where}: shape {shape} needs {count} BYTES elements, got {len(items)}")
        array = np.empty(count, dtype=object)
        try:
            array[:] = [item.decode("utf-8") for item in items]
        except UnicodeDecodeError:
            bad = next(i for i, item in enumerate(items) if not _is_utf8(item))
            raise InvalidInputError(
                f"{where}: BYTES element {bad} is not valid UTF-8; string tensors take UTF-8 text"
            ) from None
        return _reshape(array, shape, where)
    dtype = V2_TO_NUMPY[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"{where}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return _reshape(np.frombuffer(raw, dtype=dtype.newbyteorder("<")), shape, where)


def _as_tensor(value: Any) -> np.ndarray[Any, Any]:
    """ONNX Runtime output → an array; sequences/maps become one JSON string per item."""
    if isinstance(value, np.ndarray):
        return value
    items = value if isinstance(value, list) else [value]
    array = np.empty(len(items), dtype=object)
    array[:] = [json.dumps(to_jsonable(item), separators=(",", ":")) for item in items]
    return array


def _bytes_payload(array: np.ndarray[Any, Any]) -> bytes:
    parts = []
    for item in array.reshape(-1).tolist():
        data = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_response(
    model_name: str, model_version: str, output_names: list[str], values: list[Any], request: InferRequest
) -> tuple[bytes, int | None]:
    """JSON (or JSON + binary) response body, and the header length when binary follows."""
    wanted: list[tuple[int, bool]]
    if request.outputs is None:
        wanted = [(i, request.binary_output) for i in range(len(output_names))]
    else:
        index = {name: i for i, name in enumerate(output_names)}
        unknown = [o.name for o in request.outputs if o.name not in index]
        if unknown:
            raise InvalidInputError(f"unknown outputs {unknown}; the model's outputs are {output_names}")
        # An output's own binary_data overrides binary_data_output, which is only the default.
        wanted = [
            (index[o.name], request.binary_output if o.binary is None else o.binary) for o in request.outputs
        ]
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for i, binary in wanted:
        array = _as_tensor(values[i])
        datatype = v2_datatype(array.dtype)
        entry: dict[str, Any] = {"name": output_names[i], "datatype": datatype, "shape": list(array.shape)}
        if binary:
            if datatype == "BYTES":
                blob = _bytes_payload(array)
            else:
                blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = to_jsonable(array.reshape(-1))
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    head = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
