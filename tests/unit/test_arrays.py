"""JSON values → validated arrays: dtype coercion, shape checks, and errors that say what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinfer.codecs.arrays import check_batch_shape, check_sample_shape, coerce
from sinfer.errors import InvalidInputError
from sinfer.model.manifest import InputDecl
from sinfer.model.signature import TensorSpec

ONNX_TYPES = {np.float32: "float", np.int64: "int64", np.bool_: "bool", object: "string", np.uint8: "uint8"}


def spec(shape: tuple[int | None, ...] | None, dtype: Any = np.float32, name: str = "x") -> TensorSpec:
    return TensorSpec(name, f"tensor({ONNX_TYPES[dtype]})", np.dtype(dtype), shape, InputDecl())


def test_numbers_become_the_graph_dtype() -> None:
    out = coerce(spec((None, 3)), [1, 2.5, True])
    assert out.dtype == np.float32
    assert out.tolist() == [1.0, 2.5, 1.0]
    assert coerce(spec((None, 2), np.int64), [3.0, -4.0]).tolist() == [3, -4]  # whole floats are fine
    assert coerce(spec((None,), np.bool_), True).item() is True


def test_strings_become_object_arrays_and_numbers_become_text() -> None:
    out = coerce(spec((None,), object), "héllo")
    assert out.dtype == object
    assert out.item() == "héllo"
    assert coerce(spec((None, 2), object), np.array(["a", "b"])).dtype == object


@pytest.mark.parametrize(
    ("dtype", "value", "fragment"),
    [
        (np.float32, ["a", "b"], "got text"),
        (np.float32, "1.5", "got text"),
        (np.float32, None, "non-numeric"),
        (np.float32, [{"a": 1}], "non-numeric"),
        (np.int64, [1.5, 2.0], "fractional"),
        (np.int64, [float("nan")], "fractional"),
        (np.int64, [2**70], "non-numeric"),
        (np.uint8, [300], "out of range for uint8"),
        (np.uint8, [-1], "out of range for uint8"),
        (np.bool_, [0, 1], "got integers"),
    ],
)
def test_wrong_dtypes_are_rejected_with_the_expected_type(dtype: Any, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment) as caught:
        coerce(spec((None, 2), dtype, name="feature"), value)
    assert "'feature'" in caught.value.message
    assert caught.value.status == 422


def test_ragged_lists_are_an_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="ragged") as caught:
        coerce(spec((None, 2, 2)), [[1, 2], [3]])
    assert "float32 values shaped [2, 2]" in caught.value.message


def test_non_tensor_input_cannot_be_fed_from_json() -> None:
    sequence = TensorSpec("xs", "seq(tensor(float))", None, None, InputDecl())
    with pytest.raises(InvalidInputError, match=r"seq\(tensor\(float\)\)"):
        coerce(sequence, [1.0])


def test_sample_shape_accepts_matching_and_flat_values() -> None:
    image = spec((None, 3, 2, 2))
    assert check_sample_shape(image, np.zeros((3, 2, 2))).shape == (3, 2, 2)
    # a flat vector of the right size is reshaped (raw pixels arrive flattened)
    assert check_sample_shape(image, np.arange(12.0)).shape == (3, 2, 2)
    assert check_sample_shape(spec((None, None)), np.zeros(7)).shape == (7,)
    assert check_sample_shape(spec(None), np.zeros((2, 9))).shape == (2, 9)


def test_wrong_sample_shape_names_input_dtype_and_shape() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_sample_shape(spec((None, 64), name="pixels"), np.zeros(3, np.float32))
    message = caught.value.message
    assert "'pixels'" in message
    assert "float32" in message
    assert "[64]" in message
    assert "got shape [3]" in message


def test_batch_shape_checks_the_whole_tensor() -> None:
    check_batch_shape(spec((None, 3)), np.zeros((5, 3)))
    # a fixed-batch-1 graph takes bigger batches: the model loops over them
    check_batch_shape(spec((1, 3, 4, 4)), np.zeros((3, 3, 4, 4)))
    with pytest.raises(InvalidInputError, match=r"input 'x': expected shape float32\[N, 3\], got \[5, 4\]"):
        check_batch_shape(spec((None, 3)), np.zeros((5, 4)))
    with pytest.raises(InvalidInputError, match=r"float32\[4, 2\]"):
        check_batch_shape(spec((4, 2)), np.zeros((3, 4, 2)))


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=1, max_size=16))
def test_integers_round_trip_into_int64(values: list[int]) -> None:
    assert coerce(spec((None, None), np.int64), values).tolist() == values


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(
            lambda v: v != int(v)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_fractional_value_is_refused_by_integer_inputs(values: list[float]) -> None:
    with pytest.raises(InvalidInputError, match="fractional"):
        coerce(spec((None, None), np.int64), values)
