"""One instance (a JSON value, an image, a CSV row) → the arrays for each graph input.

The same conversion serves KServe v1 ``instances``, S3 records and the CLI, so an instance
means the same thing everywhere:

* single-input model: the instance *is* the input value — nested numbers, a ``{"b64": ...}``
  image, raw image bytes, or a ``{column: value}`` object for a tabular input;
* multi-input model: an object with one key per graph input.
"""

from __future__ import annotations

import binascii
from typing import Any

import numpy as np

from sinfer.codecs import images
from sinfer.codecs.arrays import check_sample_shape, coerce
from sinfer.errors import InvalidInputError
from sinfer.model.manifest import ImageSpec
from sinfer.model.signature import TensorSpec

Sample = dict[str, np.ndarray[Any, Any]]
_BYTES = (bytes, bytearray, memoryview)  # (a tuple: `bytes | ...` would build a union every call)


def implied_image_spec(spec: TensorSpec) -> ImageSpec | None:
    """Image preprocessing for an undeclared input that is plainly an image tensor.

    A float input shaped [N, C, H, W] or [N, H, W, C] with C in (1, 3) and fixed H, W takes
    images without a manifest: resized to H x W, scaled to [0, 1].
    """
    if spec.decl.image is not None:
        return spec.decl.image
    shape = spec.sample_shape
    if spec.dtype is None or spec.dtype.kind != "f" or shape is None or len(shape) != 3:
        return None
    if shape[0] in (1, 3) and shape[1] and shape[2]:
        return ImageSpec(
            color_mode="L" if shape[0] == 1 else "RGB", resize=(shape[2], shape[1]), layout="NCHW"
        )
    if shape[2] in (1, 3) and shape[0] and shape[1]:
        return ImageSpec(
            color_mode="L" if shape[2] == 1 else "RGB", resize=(shape[1], shape[0]), layout="NHWC"
        )
    return None


def is_b64_object(value: dict[Any, Any]) -> bool:
    """Whether an object is an image instance, ``{"b64": ...}`` and nothing else."""
    return len(value) == 1 and "b64" in value  # (~0.3 us less than set(value) == {"b64"})


def decode_b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: 'b64' must be a base64 string")
    try:
        # What base64.b64decode(value, validate=True) does, minus its wrapper: a non-ASCII
        # string raises ValueError there as here, and anything off the alphabet binascii.Error.
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{where}: 'b64' is not valid base64") from None


class QuickImage:
    """:func:`to_sample`'s answer for the usual image instance, without its general route.

    A single-input image model's instance is nearly always ``{"b64": "<a PNG or JPEG>"}`` (or,
    for an image object, its bytes), and there ``to_sample`` and the record pipeline spent ~8 us
    of Python around each decode (the error texts' ``where`` strings, the instance checks, the
    dtype and shape checks) against ~32 us for decoding 8x8 digits; this route takes ~4.5 us of
    it off. :meth:`sample` takes exactly that instance, decoded to exactly the input's dtype and
    sample shape, and answers what ``to_sample`` answers for it. An image the decoder refuses
    raises :class:`BadImageError`, which the caller turns into ``to_sample``'s error by naming the
    instance (so a bad image is decoded once, not once here and again by ``to_sample``);
    anything else (bad base64, another shape of instance) is None, and the caller then asks
    ``to_sample``, which gives the result or the error with its words.
    tests/unit/test_instances_quick.py compares the two.
    """

    __slots__ = ("_dtype", "_image", "_name", "_shape")

    def __init__(self, spec: TensorSpec, image: ImageSpec) -> None:
        self._name, self._image, self._dtype, self._shape = spec.name, image, spec.dtype, spec.sample_shape

    @classmethod
    def of(cls, inputs: list[TensorSpec]) -> QuickImage | None:
        """The route for a model with one image input (declared, or implied by its shape) whose
        dtype and sample shape are what the decoder gives every image: float32, and the fixed
        shape of its resize or crop. Other image inputs (float16, a dynamic size, a shape the
        pixels are reshaped to) have none, so their images are not decoded twice."""
        if len(inputs) != 1 or inputs[0].name == "b64":  # ({"b64": x} is then that input's x)
            return None
        spec = inputs[0]
        image = implied_image_spec(spec)
        if image is None or spec.dtype != np.float32 or images.decoded_shape(image) != spec.sample_shape:
            return None
        return cls(spec, image)

    def sample(self, instance: Any) -> Sample | None:
        if instance.__class__ is bytes:  # an image object's bytes, as its record holds them
            data = instance
        else:
            if instance.__class__ is not dict or len(instance) != 1:
                return None
            text = instance.get("b64")
            if text.__class__ is not str:
                return None
            try:
                data = binascii.a2b_base64(text, strict_mode=True)
            except (binascii.Error, ValueError):  # (to_sample's words for it: decode_b64's)
                return None
        try:
            pixels = images.decode(data, self._image)
        except InvalidInputError as exc:
            raise BadImageError(self._name, exc.message) from None
        if pixels.dtype != self._dtype or pixels.shape != self._shape:
            return None
        return {self._name: pixels}


class BadImageError(Exception):
    """:meth:`QuickImage.sample`'s image that the decoder refused: :meth:`at` gives the error
    ``to_sample(inputs, instance, where)`` raises for it."""

    def __init__(self, input_name: str, message: str) -> None:
        super().__init__(message)
        self.input_name, self.message = input_name, message

    def at(self, where: str) -> InvalidInputError:
        # to_sample names a single input's value "<where> (input '<name>')", and encode_value
        # puts that before the decoder's message.
        return InvalidInputError(f"{where} (input {self.input_name!r}): {self.message}")


def encode_value(spec: TensorSpec, value: Any, where: str) -> np.ndarray[Any, Any]:
    """One input's value for one instance, validated against the graph."""
    decl = spec.decl
    if isinstance(value, dict):
        if is_b64_object(value):
            value = decode_b64(value["b64"], where)
        elif decl.columns is not None:
            missing = [c for c in decl.columns if c not in value]
            unknown = [k for k in value if k not in decl.columns]
            if missing or unknown:
                detail = []
                if missing:
                    detail.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
                if unknown:
                    detail.append(f"unknown {unknown[:5]}")
                raise InvalidInputError(
                    f"{where}: expected columns {list(decl.columns)}; {'; '.join(detail)}"
                )
            value = [value[c] for c in decl.columns]
        else:
            raise InvalidInputError(
                f"{where}: got an object with keys {sorted(value)[:5]}; expected {spec.describe_sample()}"
                + (' (or {"b64": ...} for an image)' if implied_image_spec(spec) else "")
            )
    if isinstance(value, _BYTES):
        image_spec = implied_image_spec(spec)
        if image_spec is None:
            raise InvalidInputError(
                f"{where}: got image bytes, but input {spec.name!r} is not an image input "
                f"(it expects {spec.describe_sample()}; declare kind 'image' in model.json)"
            )
        try:
            pixels = images.decode(bytes(value), image_spec)
        except InvalidInputError as exc:  # say which instance and input the bad image was
            raise InvalidInputError(f"{where}: {exc.message}") from None
        if pixels.dtype == spec.dtype and pixels.shape == spec.sample_shape:
            # What coerce and check_sample_shape return for the decoder's own array of the
            # input's dtype and shape: that array itself (~2 us of an image's Python around them).
            return pixels
        value = pixels
    try:
        array = coerce(spec, value, where=where)
    except InvalidInputError as exc:
        named = _bad_columns(spec, value)
        if named:
            raise InvalidInputError(f"{exc.message}; {named}") from None
        raise
    return check_sample_shape(spec, array, where=where)


def _bad_columns(spec: TensorSpec, value: Any) -> str:
    """For a tabular numeric input, which columns held text (the usual CSV mistake)."""
    columns = spec.decl.columns
    if columns is None or spec.dtype is None or spec.dtype.kind not in "biuf" or not isinstance(value, list):
        return ""
    bad = [
        f"{name!r} = {cell!r}" for name, cell in zip(columns, value, strict=False) if isinstance(cell, str)
    ]
    if not bad:
        return ""
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    return "not numbers: " + ", ".join(bad[:3]) + more


def to_sample(inputs: list[TensorSpec], instance: Any, where: str) -> Sample:
    if len(inputs) == 1:
        spec = inputs[0]
        if isinstance(instance, dict) and len(instance) == 1 and spec.name in instance:
            instance = instance[spec.name]
        # Name the input in errors even though the instance is the bare value.
        return {spec.name: encode_value(spec, instance, f"{where} (input {spec.name!r})")}
    names = [spec.name for spec in inputs]
    if not isinstance(instance, dict):
        raise InvalidInputError(
            f"{where}: this model has inputs {names}; send an object with one key per input"
        )
    missing = [n for n in names if n not in instance]
    unknown = [k for k in instance if k not in names]
    if missing or unknown:
        raise InvalidInputError(f"{where}: expected keys {names}; missing {missing}, unknown {unknown}")
    return {spec.name: encode_value(spec, instance[spec.name], f"{where}.{spec.name}") for spec in inputs}
