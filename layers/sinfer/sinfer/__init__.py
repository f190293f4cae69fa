"""sinfer: serverless ONNX inference on AWS Lambda, batch backends, and the same core offline.

``sinfer.load`` is the way in for an application that embeds a model (an edge device, a
notebook, a service of your own); importing ``sinfer`` itself loads nothing else.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sinfer.inference.model import LoadedModel

__version__ = "0.1.0"

# ONNX Runtime's telemetry looks up a Microsoft events host every few seconds once a model runs
# (ORT 1.32 on Linux, under strace). It reads this when onnxruntime is imported, so it is set on
# importing sinfer, before any of its code imports onnxruntime; a caller may set it to "0", and
# an application that imports onnxruntime before sinfer must set it itself.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def load(name: str, version: str | None = None, store: str | os.PathLike[str] = "models") -> LoadedModel:
    """A model of a store, loaded as the functions load it: ``model.json`` applied, the sha256
    pin checked, one ONNX Runtime session built for the CPUs this process may use.

    ``store`` is a folder laid out ``<name>/<version>/model.onnx`` (what ``sinfer models
    pull`` fills) or an ``s3://bucket/prefix/``; ``version`` defaults to the highest. The
    model's ``predict(instances)`` gives what the API's ``:predict`` gives, ``run(feeds)``
    the graph's raw outputs. Unknown models raise ``sinfer.errors.ModelNotFoundError``, ones
    that cannot load ``ModelNotReadyError`` (or ``ModelIntegrityError`` for a pin mismatch).
    """
    from sinfer.errors import ModelNotFoundError, ModelNotReadyError
    from sinfer.inference.registry import ModelRegistry
    from sinfer.model.store import LocalModelStore, open_store

    opened = open_store(store)
    if isinstance(opened, LocalModelStore) and not os.path.isdir(opened.uri):
        # (a relative store is relative to the working directory, which an app may not expect)
        raise ModelNotReadyError(f"model store folder {os.path.abspath(opened.uri)} does not exist")
    try:
        return ModelRegistry(opened).get(name, version)
    except ModelNotFoundError as exc:  # (the API's 404 names no store; an application's error may)
        raise ModelNotFoundError(f"{exc.message} in the store {opened.uri}") from None


__all__ = ["__version__", "load"]
