"""Loading is lazy, once per process and version, thread-safe; failures are typed errors."""

from __future__ import annotations

import importlib
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sinfer.aws.clients import reset_clients
from sinfer.errors import ModelIntegrityError, ModelNotFoundError, ModelNotReadyError
from sinfer.inference.registry import ModelRegistry, default_registry, reset_default_registry
from sinfer.model.session import create_session
from sinfer.model.store import LocalModelStore, open_store

MODELS = Path(__file__).resolve().parents[2] / "models"


class CountingFactory:
    """A session factory that counts loads (and can be slowed down to widen races)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.paths: list[Path] = []
        self._lock = threading.Lock()

    def __call__(self, path: str) -> Any:
        with self._lock:
            self.paths.append(Path(path))
        time.sleep(self.delay)
        return create_session(path, threads=1)


@pytest.fixture
def store(tmp_path: Path) -> LocalModelStore:
    """digits at versions 1 and 2, breast_cancer at 1."""
    for name, version in (("digits", "1"), ("digits", "2"), ("breast_cancer", "1")):
        shutil.copytree(MODELS / name / "1", tmp_path / name / version)
    return LocalModelStore(tmp_path)


def test_nothing_is_loaded_until_first_use(store: LocalModelStore) -> None:
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    assert not registry.is_loaded("digits")
    assert factory.paths == []

    registry.get("digits")
    assert registry.is_loaded("digits")
    assert registry.is_loaded("digits", "2")
    assert not registry.is_loaded("digits", "1")
    assert not registry.is_loaded("breast_cancer")
    assert registry.load_seconds[("digits", "2")] > 0


def test_many_gets_load_once(store: LocalModelStore) -> None:
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    first = registry.get("digits")
    for _ in range(50):
        assert registry.get("digits") is first
        assert registry.get("digits", "2") is first
    assert factory.paths == [store.root / "digits" / "2" / "model.onnx"]
    assert (first.name, first.version) == ("digits", "2")


def test_versions_load_separately_and_latest_is_highest(store: LocalModelStore) -> None:
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    latest = registry.get("digits")
    pinned = registry.get("digits", "1")
    assert (latest.version, pinned.version) == ("2", "1")
    assert latest is not pinned
    assert len(factory.paths) == 2


def test_a_version_published_later_reaches_files_at_once_and_the_api_when_pinned(
    store: LocalModelStore,
) -> None:
    # GIVEN an environment that has served digits' latest (2), then version 3 is published
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    assert registry.get("digits").version == "2"
    shutil.copytree(MODELS / "digits" / "1", store.root / "digits" / "3")

    # THEN the API's unversioned requests keep the version this environment resolved (README:
    # "The model package"), a pinned request gets the new one, and a file (the S3 and jobs
    # paths resolve through manifest()) resolves latest anew
    assert registry.get("digits").version == "2"
    assert registry.get("digits", "3").version == "3"
    assert registry.manifest("digits")[0] == "3"
    assert registry.get("digits").version == "2"
    assert len(factory.paths) == 2


def test_concurrent_first_requests_share_one_load(store: LocalModelStore) -> None:
    # GIVEN a slow load and 16 threads asking for the same model at the same moment
    factory = CountingFactory(delay=0.1)
    registry = ModelRegistry(store, session_factory=factory)
    start = threading.Barrier(16)
    got: list[Any] = []
    errors: list[BaseException] = []

    def worker(version: str | None) -> None:
        start.wait()
        try:
            got.append(registry.get("digits", version))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(None if i % 2 else "2",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # THEN the model was loaded once and every thread got the same object
    assert errors == []
    assert len(got) == 16
    assert len({id(model) for model in got}) == 1
    assert len(factory.paths) == 1


def test_unknown_model_or_version_loads_nothing(store: LocalModelStore) -> None:
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    with pytest.raises(ModelNotFoundError, match="'nope' not found"):
        registry.get("nope")
    with pytest.raises(ModelNotFoundError, match="available: 1, 2"):
        registry.get("digits", "3")
    with pytest.raises(ModelNotFoundError, match="invalid"):
        registry.get("../models/digits")
    with pytest.raises(ModelNotFoundError):
        registry.ready("nope")
    assert factory.paths == []


def test_invalid_onnx_file_is_not_ready_and_retried_later(tmp_path: Path) -> None:
    # GIVEN a model.onnx that is not an ONNX graph
    folder = tmp_path / "broken" / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"this is not protobuf")
    registry = ModelRegistry(LocalModelStore(tmp_path))

    # WHEN it is requested THEN it is a 503 naming the model, and ready() says False
    with pytest.raises(ModelNotReadyError, match="'broken' version '1' failed to load") as caught:
        registry.get("broken")
    assert caught.value.status == 503
    assert registry.ready("broken") is False
    assert not registry.is_loaded("broken", "1")

    # AND the failure is not cached: once fixed, the same registry loads it
    shutil.copyfile(MODELS / "digits" / "1" / "model.onnx", folder / "model.onnx")
    assert registry.ready("broken") is True


def test_tampered_model_is_not_ready(store: LocalModelStore) -> None:
    onnx_path = store.root / "digits" / "2" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:-1])
    factory = CountingFactory()
    registry = ModelRegistry(store, session_factory=factory)
    with pytest.raises(ModelIntegrityError):
        registry.get("digits")
    assert registry.ready("digits") is False
    assert registry.ready("digits", "1") is True
    assert factory.paths == [store.root / "digits" / "1" / "model.onnx"]  # never built a session on bad bytes


def test_default_registry_needs_model_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_STORE", raising=False)
    reset_default_registry()
    try:
        with pytest.raises(ModelNotReadyError, match=r"MODEL_STORE is not set.*s3://"):
            default_registry()
    finally:
        reset_default_registry()


def test_default_registry_is_one_lazy_registry_for_model_store(model_store: Path) -> None:
    registry = default_registry()
    assert registry is default_registry()
    assert isinstance(registry.store, LocalModelStore)
    assert registry.store.root == model_store.resolve()
    assert not registry.is_loaded("digits")
    reset_default_registry()
    assert default_registry() is not registry


def test_importing_the_api_loads_no_onnxruntime(model_store: Path) -> None:
    """Import the API and the registry in a fresh module graph where onnxruntime cannot be imported.

    If either touched onnxruntime (or built a session) at import time, the import would fail.
    The first ``get()`` is where onnxruntime is needed. sys.modules is restored afterwards so the
    freshly imported copies never mix with the rest of the test session.
    """
    saved = dict(sys.modules)
    try:
        for key in [k for k in sys.modules if k == "sinfer" or k.startswith("sinfer.")]:
            del sys.modules[key]
        sys.modules["onnxruntime"] = None  # type: ignore[assignment]

        importlib.import_module("sinfer.api.app")
        fresh = importlib.import_module("sinfer.inference.registry")
        registry = fresh.default_registry()
        assert not registry.is_loaded("digits")
        with pytest.raises(fresh.ModelNotReadyError, match="onnxruntime"):
            registry.get("digits")
    finally:
        for key in [k for k in sys.modules if k not in saved]:
            del sys.modules[key]
        sys.modules.update(saved)
        fresh_registry = sys.modules["sinfer.inference.registry"]
        assert fresh_registry.ModelRegistry is ModelRegistry  # restored


@pytest.fixture
def s3_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        reset_clients()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        for file in ("model.onnx", "model.json"):
            client.put_object(
                Bucket="models",
                Key=f"prod/digits/1/{file}",
                Body=(MODELS / "digits" / "1" / file).read_bytes(),
            )
        monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
        yield "s3://models/prod/"
        reset_clients()


def test_registry_serves_from_an_s3_store(s3_models: str, tmp_path: Path) -> None:
    # GIVEN MODEL_STORE-style text pointing at an S3 prefix
    registry = ModelRegistry(open_store(s3_models))

    # WHEN the model is requested and used
    model = registry.get("digits")
    [prediction] = model.predict([[0.0] * 64])

    # THEN it was downloaded into the cache and serves predictions
    assert (tmp_path / "cache" / "digits" / "1" / "model.onnx").is_file()
    assert prediction["label"] in [str(i) for i in range(10)]
    assert len(prediction["top_k"]) == 3
