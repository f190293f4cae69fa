"""Build the demo models from data sets that scikit-learn ships (nothing is downloaded).

    python models/build_models.py            # writes models/<name>/1/{model.onnx,model.json}
    python models/build_models.py --check    # exits 1 if a rebuild would change the committed files

The bytes are reproducible: the same scikit-learn, skl2onnx and onnx give the same files, and
so the same ``sha256`` in ``model.json``. One thing in the breast_cancer conversion follows
Python's hash seed (a rebuild gave one of two files), so the script runs itself with
``PYTHONHASHSEED=1``, the seed of the committed files.

* ``digits``: 8x8 handwritten digits (sklearn.datasets.load_digits). Takes 64 raw values in
  0..16, or a PNG/JPEG that the manifest's preprocessing turns into them (grey scale, resized
  to 8x8, scaled by 16/255). Post-processing returns the top 3 classes.
* ``breast_cancer``: tabular classifier over the 30 named columns of the Wisconsin breast
  cancer data set; skl2onnx's ZipMap gives per-class probabilities, labelled by the manifest.

Training is deterministic (fixed split and solver), so tests call :func:`train_digits` and
:func:`train_breast_cancer` to get scikit-learn's own predictions on the held-out rows and
compare them with what the served ONNX model returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent
TARGET_OPSET = 17
SEED = 0


def train_digits() -> tuple[Pipeline, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The digits classifier and its held-out rows (float32, values 0..16)."""
    data = load_digits()
    x_train, x_test, y_train, _ = train_test_split(
        data.data.astype(np.float32), data.target, test_size=0.2, random_state=SEED, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    return model, x_test, model.predict(x_test)


def train_breast_cancer() -> tuple[
    Pipeline, np.ndarray[Any, Any], np.ndarray[Any, Any], list[str], list[str]
]:
    """The breast cancer classifier, held-out rows, predictions, column names, class names."""
    data = load_breast_cancer()
    x_train, x_test, y_train, _ = train_test_split(
        data.data.astype(np.float32), data.target, test_size=0.2, random_state=SEED, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    return model, x_test, model.predict(x_test), list(data.feature_names), list(data.target_names)


HASH_SEED = "1"


def _write(name: str, onnx_bytes: bytes, manifest: dict[str, Any], root: Path) -> Path:
    folder = root / name / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_bytes)
    manifest = {"name": name, "version": "1", **manifest, "sha256": hashlib.sha256(onnx_bytes).hexdigest()}
    (folder / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def build_digits(root: Path = ROOT) -> Path:
    model, _, _ = train_digits()
    onnx_model = convert_sklearn(
        model,
        name="digits",
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={LogisticRegression: {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return _write(
        "digits",
        onnx_model.SerializeToString(),
        {
            "description": "Handwritten digit classifier (sklearn digits, 8x8, values 0..16).",
            "labels": [str(i) for i in range(10)],
            "inputs": {
                "pixels": {
                    "kind": "image",
                    "image": {"color_mode": "L", "resize": [8, 8], "scale": 16 / 255, "layout": "flat"},
                }
            },
            "postprocess": {"kind": "top_k", "output": "probabilities", "k": 3},
            "batch": {"max_batch_size": 1024},
            "batch_backend": "sagemaker",
        },
        root,
    )


def build_breast_cancer(root: Path = ROOT) -> Path:
    model, _, _, columns, classes = train_breast_cancer()
    onnx_model = convert_sklearn(
        model,
        name="breast_cancer",
        initial_types=[("features", FloatTensorType([None, len(columns)]))],
        target_opset=TARGET_OPSET,
    )
    return _write(
        "breast_cancer",
        onnx_model.SerializeToString(),
        {
            "description": "Breast cancer diagnosis from 30 tabular measurements (sklearn, Wisconsin).",
            "labels": classes,
            "inputs": {"features": {"kind": "tabular", "columns": columns}},
            "postprocess": {"kind": "probabilities", "output": "output_probability"},
            "batch": {"max_batch_size": 4096},
            "batch_backend": "sagemaker",
        },
        root,
    )


def main(argv: list[str]) -> int:
    # (see the module's docstring; under -E or -I the interpreter ignored the variable)
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED or sys.flags.ignore_environment:
        env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
        os.execve(sys.executable, [sys.executable, __file__, *argv], env)
    if argv == ["--check"]:
        with tempfile.TemporaryDirectory() as scratch:
            stale = []
            for build in (build_digits, build_breast_cancer):
                folder = build(Path(scratch))
                for file in sorted(folder.iterdir()):
                    committed = ROOT / folder.relative_to(scratch) / file.name
                    if not committed.is_file() or committed.read_bytes() != file.read_bytes():
                        stale.append(str(committed.relative_to(ROOT.parent)))
        for path in stale:
            print(f"differs from a rebuild: {path}", file=sys.stderr)
        return 1 if stale else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for build in (build_digits, build_breast_cancer):
        folder = build()
        print(f"wrote {folder.relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
