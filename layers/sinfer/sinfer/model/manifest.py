"""The optional ``model.json`` manifest that sits beside ``model.onnx``.

A model serves without one: everything needed to run it comes from the ONNX graph. The
manifest only refines that: labels, how to read an input (tabular columns, image
preprocessing), how to post-process an output, the sha256 that pins the file, batch limits and
which batch backend takes large jobs. Parsing is strict, so a typo in a manifest fails the
model's load with a message naming the field, rather than being silently ignored.

The parsed records are ``NamedTuple`` classes, not dataclasses: immutable and typed alike, but
Python 3.12 compiles every method a frozen dataclass generates when the module is imported
(~1 ms a class), and these four sit on every cold start's path. A ``NamedTuple`` costs ~0.3 ms.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, cast

from sinfer.errors import ManifestError

InputKind = Literal["tensor", "tabular", "image", "text"]
PostprocessKind = Literal["argmax", "top_k", "probabilities"]
Layout = Literal["NCHW", "NHWC", "flat"]
ColorMode = Literal["L", "RGB", "BGR"]

# "text": a string input, whose instances are strings (or lists of them); read as "tensor" is,
# but the load checks that the graph input does take strings.
_INPUT_KINDS = ("tensor", "tabular", "image", "text")
_POSTPROCESS_KINDS = ("argmax", "top_k", "probabilities")


class ImageSpec(NamedTuple):
    """How an encoded image (PNG/JPEG bytes) becomes the model's input tensor.

    Steps, in order: decode → colour mode → resize (width, height) → centre crop → float →
    optional inversion (255 - x, for models trained on light-on-dark images) → ``* scale`` →
    ``(x - mean) / std`` per channel → layout.
    """

    color_mode: ColorMode = "RGB"
    resize: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Layout = "NCHW"
    invert: bool = False


class InputDecl(NamedTuple):
    """What the manifest says about one graph input."""

    kind: InputKind = "tensor"
    columns: tuple[str, ...] | None = None
    image: ImageSpec | None = None


class Postprocess(NamedTuple):
    """Turn a scores/probabilities output into a label (and scores)."""

    kind: PostprocessKind
    output: str | None = None
    k: int = 5
    softmax: bool = False


class Manifest(NamedTuple):
    """A parsed model.json; ``Manifest.empty()`` for a model without one."""

    name: str | None = None
    version: str | None = None
    description: str = ""
    sha256: str | None = None
    labels: tuple[str, ...] | None = None
    inputs: Mapping[str, InputDecl] = MappingProxyType({})
    postprocess: Postprocess | None = None
    max_batch_size: int | None = None
    batch_backend: str | None = None
    extra: Mapping[str, Any] = MappingProxyType({})

    @classmethod
    def empty(cls) -> Manifest:
        return cls()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.loads(handle.read())
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: object, source: str = "model.json") -> Manifest:
        if not isinstance(raw, dict):
            raise ManifestError(f"{source}: expected a JSON object")
        known = {
            "name", "version", "description", "sha256", "labels", "inputs",
            "postprocess", "batch", "batch_backend",
        }  # fmt: skip
        if raw.get("kind") != "bedrock":
            # An ONNX model's manifest is closed, top level included: a misspelled "sha_256"
            # would otherwise turn pinning off without a word, and "postproces" would serve raw
            # scores. (A Bedrock entry's own fields are kept in ``extra`` for its parser, which
            # checks them.) "metadata" holds whatever else an owner wants to keep here.
            _reject_unknown(raw, (*sorted(known), "metadata"), source)
        sha = raw.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
            raise ManifestError(f"{source}: sha256 must be 64 hex characters")
        labels = raw.get("labels")
        if labels is not None and (not isinstance(labels, list) or not labels):
            raise ManifestError(f"{source}: labels must be a non-empty list")
        if labels and len({str(label) for label in labels}) != len(labels):
            # (probabilities are keyed by label: two equal ones would lose a class's score)
            raise ManifestError(f"{source}: labels must be distinct; {_repeated(labels)} repeat")
        inputs_raw = raw.get("inputs", {})
        if not isinstance(inputs_raw, dict):
            raise ManifestError(f"{source}: inputs must be an object keyed by graph input name")
        batch = raw.get("batch") or {}
        if not isinstance(batch, dict):
            raise ManifestError(f"{source}: batch must be an object")
        _reject_unknown(batch, ("max_batch_size",), f"{source}: batch")
        max_batch = batch.get("max_batch_size")
        if max_batch is not None and (type(max_batch) is not int or max_batch < 1):
            raise ManifestError(f"{source}: batch.max_batch_size must be a positive integer")
        return cls(
            name=_opt_str(raw.get("name")),
            version=_opt_str(raw.get("version")),
            description=str(raw.get("description", "")),
            sha256=sha.lower() if isinstance(sha, str) else None,
            labels=tuple(str(label) for label in labels) if labels else None,
            inputs={str(k): _input_decl(v, f"{source}: inputs.{k}") for k, v in inputs_raw.items()},
            postprocess=_postprocess(raw.get("postprocess"), source),
            max_batch_size=max_batch,
            batch_backend=_opt_str(raw.get("batch_backend")),
            extra={k: v for k, v in raw.items() if k not in known},
        )


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _repeated(labels: list[Any]) -> list[str]:
    names = [str(x) for x in labels]
    return sorted({name for name in names if names.count(name) > 1})


def _flag(raw: dict[str, Any], name: str, where: str) -> bool:
    """A true/false field: JSON true or false only ("false" as a string would be truthy)."""
    value = raw.get(name, False)
    if type(value) is not bool:
        raise ManifestError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _reject_unknown(raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    # Top-level keys may carry backend settings (kept in ``extra``); nested objects are closed,
    # so a typo such as "resise" fails the load instead of silently changing preprocessing.
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}; expected some of {list(allowed)}")


def _input_decl(raw: object, where: str) -> InputDecl:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object")
    _reject_unknown(raw, ("kind", "columns", "image"), where)
    kind = raw.get("kind", "tensor")
    if kind not in _INPUT_KINDS:
        raise ManifestError(f"{where}.kind: expected one of {', '.join(_INPUT_KINDS)}, got {kind!r}")
    columns = raw.get("columns")
    if columns is not None and (not isinstance(columns, list) or not columns):
        raise ManifestError(f"{where}.columns: expected a non-empty list of column names")
    if kind == "tabular" and columns is None:
        raise ManifestError(f"{where}: a tabular input needs 'columns'")
    if "image" in raw and kind != "image":
        raise ManifestError(f"{where}: 'image' options need kind 'image' (this input's kind is {kind!r})")
    image = _image_spec(raw.get("image", {}), f"{where}.image") if kind == "image" else None
    return InputDecl(
        kind=cast(InputKind, kind),
        columns=tuple(str(c) for c in columns) if columns else None,
        image=image,
    )


def _pair(value: object, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if type(value) is int and value > 0:
        return (value, value)
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int and v > 0 for v in value):
        return (value[0], value[1])
    raise ManifestError(f"{where}: expected [width, height] or a single size, in positive whole pixels")


def _floats(value: object, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if type(value) in (int, float):
        return (float(cast(float, value)),)
    if isinstance(value, list) and value and all(type(v) in (int, float) for v in value):
        return tuple(float(v) for v in value)
    raise ManifestError(f"{where}: expected a number or a list of numbers")


def _image_spec(raw: object, where: str) -> ImageSpec:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object")
    _reject_unknown(raw, ("color_mode", "resize", "crop", "scale", "mean", "std", "layout", "invert"), where)
    mode = raw.get("color_mode", "RGB")
    if mode not in ("L", "RGB", "BGR"):
        raise ManifestError(f"{where}.color_mode: expected L, RGB or BGR, got {mode!r}")
    layout = raw.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC", "flat"):
        raise ManifestError(f"{where}.layout: expected NCHW, NHWC or flat, got {layout!r}")
    scale = raw.get("scale", 1.0 / 255.0)
    if type(scale) not in (int, float):
        raise ManifestError(f"{where}.scale: expected a number")
    resize, crop = _pair(raw.get("resize"), f"{where}.resize"), _pair(raw.get("crop"), f"{where}.crop")
    if crop is not None and resize is not None and (crop[0] > resize[0] or crop[1] > resize[1]):
        raise ManifestError(f"{where}.crop: {list(crop)} is larger than the resized image {list(resize)}")
    channels = 1 if mode == "L" else 3
    mean, std = _floats(raw.get("mean"), f"{where}.mean"), _floats(raw.get("std"), f"{where}.std")
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, channels):
            raise ManifestError(
                f"{where}.{name}: {len(values)} values for {mode}'s {channels} channel(s); "
                f"give one, or one per channel"
            )
    if std is not None and not all(v != 0 for v in std):
        raise ManifestError(f"{where}.std: must not be 0 (it divides)")
    return ImageSpec(
        color_mode=cast(ColorMode, mode),
        resize=resize,
        crop=crop,
        scale=float(scale),
        mean=mean,
        std=std,
        layout=cast(Layout, layout),
        invert=_flag(raw, "invert", where),
    )


def _postprocess(raw: object, source: str) -> Postprocess | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: postprocess must be an object")
    _reject_unknown(raw, ("kind", "output", "k", "softmax"), f"{source}: postprocess")
    kind = raw.get("kind")
    if kind not in _POSTPROCESS_KINDS:
        raise ManifestError(
            f"{source}: postprocess.kind: expected one of {', '.join(_POSTPROCESS_KINDS)}, got {kind!r}"
        )
    k = raw.get("k", 5)
    if type(k) is not int or k < 1:
        raise ManifestError(f"{source}: postprocess.k must be a positive integer")
    return Postprocess(
        kind=cast(PostprocessKind, kind),
        output=_opt_str(raw.get("output")),
        k=k,
        softmax=_flag(raw, "softmax", f"{source}: postprocess"),
    )
