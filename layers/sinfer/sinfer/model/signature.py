"""A model's signature: its inputs and outputs as the graph declares them, refined by the manifest.

Nothing here needs a manifest. Names, element types and shapes come from the session; the
batch axis is inferred (a leading dimension that is symbolic, or fixed at 1), and the manifest
only adds meaning (tabular column names, image preprocessing).

``TensorSpec`` is a ``NamedTuple`` rather than a frozen dataclass for the reason the manifest's
records are (see :mod:`sinfer.model.manifest`): it is defined on every cold start's path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sinfer.codecs.dtypes import friendly, numpy_dtype, v2_datatype
from sinfer.model.manifest import InputDecl, Manifest

Dim = int | None


class TensorSpec(NamedTuple):
    name: str
    onnx_type: str
    dtype: np.dtype[np.generic] | None
    shape: tuple[Dim, ...] | None
    decl: InputDecl

    @property
    def has_batch_axis(self) -> bool:
        return bool(self.shape) and (self.shape[0] is None or self.shape[0] == 1)  # type: ignore[index]

    @property
    def fixed_batch_one(self) -> bool:
        return bool(self.shape) and self.shape[0] == 1  # type: ignore[index]

    @property
    def sample_shape(self) -> tuple[Dim, ...] | None:
        """Shape of one instance: the graph shape without its batch axis."""
        if self.shape is None:
            return None
        return self.shape[1:] if self.has_batch_axis else self.shape

    @property
    def is_tensor(self) -> bool:
        return self.dtype is not None

    @property
    def v2_datatype(self) -> str:
        return v2_datatype(self.dtype)

    def v2_shape(self) -> list[int]:
        """Shape for OIP metadata: -1 for dynamic dimensions. A sequence (skl2onnx's ZipMap)
        travels as a BYTES tensor of one item per instance: ``[-1]``."""
        if self.shape is None and self.onnx_type.startswith("seq("):
            return [-1]
        return [-1 if d is None else d for d in (self.shape or ())]

    def describe(self) -> str:
        """Human text for error messages, e.g. ``float32[N, 64]``."""
        if self.shape is None:
            return f"{friendly(self.dtype)} (any shape)"
        dims = ["N" if (i == 0 and self.has_batch_axis) else ("?" if d is None else str(d))
                for i, d in enumerate(self.shape)]  # fmt: skip
        return f"{friendly(self.dtype)}[{', '.join(dims)}]"

    def describe_sample(self) -> str:
        sample = self.sample_shape
        if sample is None:
            return f"{friendly(self.dtype)} values of any shape"
        if not sample:
            return f"a single {friendly(self.dtype)} value"
        dims = ", ".join("?" if d is None else str(d) for d in sample)
        return f"{friendly(self.dtype)} values shaped [{dims}]"


def _dims(shape: Any) -> tuple[Dim, ...] | None:
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _check_declaration(spec: TensorSpec) -> None:
    """A declared input that cannot fit the graph's fails the load, naming both, instead of
    every request failing (or, for columns, being read into the wrong features)."""
    from math import prod

    from sinfer.errors import ManifestError

    decl, sample = spec.decl, spec.sample_shape
    where = f"model.json inputs.{spec.name}"
    if decl.kind == "text" and (spec.dtype is None or spec.dtype.kind not in "OUS"):
        raise ManifestError(
            f"{where}: kind 'text' needs a string input; the graph input takes {spec.describe()}"
        )
    if sample is None or None in sample:  # (a free dimension: any count may fit)
        return
    size = prod(int(d) for d in sample if d is not None)
    if decl.columns is not None and len(decl.columns) != size:
        raise ManifestError(
            f"{where}: {len(decl.columns)} columns, but the graph input takes {spec.describe_sample()}"
        )
    if decl.image is not None:
        from sinfer.codecs.images import decoded_shape

        decoded = decoded_shape(decl.image)
        if decoded is not None and prod(decoded) != size:
            raise ManifestError(
                f"{where}: its image options give {list(decoded)} ({prod(decoded)} values) per image, "
                f"but the graph input takes {spec.describe_sample()}"
            )


def read_signature(session: Any, manifest: Manifest) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a session; manifest declarations attach to inputs by name."""
    inputs = [
        TensorSpec(
            name=arg.name,
            onnx_type=arg.type,
            dtype=numpy_dtype(arg.type),
            shape=_dims(arg.shape),
            decl=manifest.inputs.get(arg.name, InputDecl()),
        )
        for arg in session.get_inputs()
    ]
    unknown = set(manifest.inputs) - {spec.name for spec in inputs}
    if unknown:
        from sinfer.errors import ManifestError

        raise ManifestError(
            f"model.json declares inputs {sorted(unknown)} that the graph does not have; "
            f"graph inputs are {[spec.name for spec in inputs]}"
        )
    for spec in inputs:
        _check_declaration(spec)
    outputs = [
        TensorSpec(
            name=arg.name,
            onnx_type=arg.type,
            dtype=numpy_dtype(arg.type),
            shape=_dims(arg.shape) if numpy_dtype(arg.type) is not None else None,
            decl=InputDecl(),
        )
        for arg in session.get_outputs()
    ]
    return inputs, outputs
