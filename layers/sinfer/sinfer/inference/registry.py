"""Load each model once per execution environment, lazily, and keep it.

A Lambda execution environment serves many requests; the first request for a model pays for
the download (S3 store), the sha256 check and session creation, and every later request reuses
the session. Nothing is loaded at import time, so a cold start pays only for what it serves.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sinfer.errors import ModelNotFoundError, ModelNotReadyError, SinferError
from sinfer.inference.model import LoadedModel
from sinfer.model.session import create_session
from sinfer.model.store import ModelStore, open_store

SessionFactory = Callable[[str], Any]  # the model.onnx path


class ModelRegistry:
    def __init__(self, store: ModelStore, session_factory: SessionFactory = create_session) -> None:
        self.store = store
        self._session_factory = session_factory
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._latest: dict[str, str] = {}
        self._manifests: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[tuple[str, str], float] = {}

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded model; ``version=None`` means the highest version (resolved once)."""
        if version is None:
            version = self._latest.get(name)
        if version is not None:
            found = self._models.get((name, version))
            if found is not None:
                return found
        with self._lock:
            resolved = self.store.resolve_version(name, version)
            key = (name, resolved)
            found = self._models.get(key)
            if found is None:
                found = self._load(name, resolved)
                self._models[key] = found
            if version is None:
                self._latest[name] = resolved
            return found

    def _load(self, name: str, version: str) -> LoadedModel:
        started = time.perf_counter()
        files = self.store.fetch(name, version)
        try:
            session = self._session_factory(os.fspath(files.onnx_file))
        except Exception as exc:  # an invalid graph: the model exists but cannot serve
            raise ModelNotReadyError(f"model {name!r} version {version!r} failed to load: {exc}") from None
        model = LoadedModel(files, session)
        self.load_seconds[(name, version)] = time.perf_counter() - started
        return model

    def manifest(self, name: str, version: str | None = None) -> tuple[str, dict[str, Any] | None]:
        """Resolved version and raw model.json, without loading the model (cached)."""
        resolved = self.store.resolve_version(name, version)
        key = (name, resolved)
        if key not in self._manifests:
            self._manifests[key] = self.store.read_manifest(name, resolved)
        return resolved, self._manifests[key]

    def is_loaded(self, name: str, version: str | None = None) -> bool:
        if version is None:
            version = self._latest.get(name)
        return version is not None and (name, version) in self._models

    def ready(self, name: str, version: str | None = None) -> bool:
        """Loads the model if needed; False when it exists but cannot load."""
        try:
            self.get(name, version)
        except ModelNotFoundError:
            raise
        except SinferError:
            return False
        return True


@functools.cache
def default_registry() -> ModelRegistry:
    """The registry for ``MODEL_STORE`` (an ``s3://`` prefix or a folder)."""
    uri = os.environ.get("MODEL_STORE")
    if not uri:
        raise ModelNotReadyError("MODEL_STORE is not set: point it at an s3://bucket/prefix/ or a folder")
    return ModelRegistry(open_store(uri))


def reset_default_registry() -> None:
    default_registry.cache_clear()
