"""What loading a model from a local store costs a cold process, and the records it builds.

The store, the manifest and the signature sit on every cold start's path, so they avoid two
costs that nothing else a prediction does pays: importing pathlib (the store works in os.path
strings) and compiling frozen dataclasses' methods (the records are NamedTuples). These tests
pin that, and that the records keep the behaviour the dataclasses had: immutable, with
defaults that cannot be shared by mutation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sinfer.model.manifest import InputDecl, Manifest, Postprocess
from sinfer.model.store import LocalModelStore, ModelFiles, open_store

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"

CHILD = """
import json, sys
from sinfer.model.store import open_store
store = open_store(sys.argv[1])
files = store.fetch("breast_cancer", store.resolve_version("breast_cancer", None))
print(json.dumps({
    "pathlib": "pathlib" in sys.modules,
    "dataclasses": "dataclasses" in sys.modules,
    "pinned": files.manifest.sha256,
    "onnx_file": files.onnx_file,
}))
"""


def test_fetching_a_local_model_imports_no_pathlib() -> None:
    # GIVEN a fresh interpreter, WHEN it fetches (and sha256-checks) a model from a folder store
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "sinfer")}
    out = subprocess.check_output([sys.executable, "-c", CHILD, str(MODELS)], env=env, text=True, timeout=60)
    report = json.loads(out.strip().splitlines()[-1])
    # THEN neither pathlib nor dataclasses was imported, and the pinned hash was checked
    assert report["pathlib"] is False
    assert report["dataclasses"] is False
    assert report["pinned"] is not None
    assert report["onnx_file"] == os.path.realpath(MODELS / "breast_cancer" / "1" / "model.onnx")


def test_the_store_takes_str_or_path_and_still_hands_out_paths(tmp_path: Path) -> None:
    for root in (MODELS, str(MODELS)):
        store = LocalModelStore(root)
        assert store.root == MODELS
        files = store.fetch("breast_cancer", "1")
        assert isinstance(files.onnx_path, Path)
        assert files.onnx_path == MODELS / "breast_cancer" / "1" / "model.onnx"
    assert open_store(str(tmp_path / ".." / tmp_path.name)).root == tmp_path.resolve()
    assert open_store(tmp_path).list_models() == []
    assert open_store(tmp_path / "absent").list_models() == []


def test_records_are_immutable() -> None:
    manifest = Manifest.from_dict({"inputs": {"x": {"kind": "tabular", "columns": ["a"]}}})
    files = ModelFiles("m", "1", "/nowhere/model.onnx", manifest)
    for record, field in ((manifest, "sha256"), (manifest.inputs["x"], "kind"), (files, "name")):
        with pytest.raises(AttributeError):
            setattr(record, field, "changed")


def test_empty_defaults_cannot_be_shared_by_mutation() -> None:
    # A NamedTuple's defaults are one object for every instance: the empty mappings are read-only.
    with pytest.raises(TypeError):
        Manifest.empty().inputs["x"] = InputDecl()  # type: ignore[index]
    with pytest.raises(TypeError):
        Manifest().extra["kind"] = "bedrock"  # type: ignore[index]
    assert Manifest.empty().inputs == {}
    assert Manifest.empty().extra == {}


def test_records_compare_and_print_by_value() -> None:
    assert Postprocess(kind="top_k", k=3) == Postprocess("top_k", None, 3, False)
    assert Postprocess(kind="top_k", k=3) != Postprocess(kind="top_k", k=4)
    assert repr(InputDecl()) == "InputDecl(kind='tensor', columns=None, image=None)"
    assert Manifest.from_dict({"labels": ["a"]}) == Manifest(labels=("a",))
