"""Model outputs → JSON-ready values, for every output type ONNX Runtime returns.

ONNX Runtime hands back numpy arrays for tensors (any element type, including float16 and
strings), Python lists of dicts for ``seq(map(...))`` (skl2onnx's ZipMap), and lists for
other sequences. Everything becomes plain lists, numbers, strings and dicts with string keys.
Non-finite floats become ``null``: JSON has no NaN, and a caller's parser should not choke.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sinfer.model.manifest import Postprocess


def to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            if not np.isfinite(value).all():
                return _finite(value.tolist())
            return value.tolist()
        if value.dtype.kind == "S":
            return (
                [to_jsonable(v) for v in value.tolist()]
                if value.ndim
                else value.item().decode("utf-8", "replace")
            )
        if value.dtype.kind == "O":
            return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
        return value.tolist()
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scores(value: Any, labels: tuple[str, ...] | None) -> tuple[list[Any], np.ndarray[Any, Any]]:
    """Class names and scores from a per-instance vector or a ZipMap dict."""
    if isinstance(value, dict):
        keys = list(value.keys())
        scores = np.asarray([value[k] for k in keys], dtype=np.float64)
        names: list[Any] = [
            labels[k] if labels is not None and isinstance(k, int) and 0 <= k < len(labels) else k
            for k in keys
        ]
        return names, scores
    scores = np.asarray(value, dtype=np.float64).reshape(-1)
    if labels is not None and len(labels) == scores.size:
        return list(labels), scores
    return list(range(scores.size)), scores


def postprocess(rule: Postprocess, value: Any, labels: tuple[str, ...] | None) -> dict[str, Any]:
    """Apply a manifest post-processing rule to one instance's scores."""
    names, scores = _scores(value, labels)
    if rule.softmax:
        shifted = np.exp(scores - scores.max())
        scores = shifted / shifted.sum()
    best = int(np.argmax(scores))
    result: dict[str, Any] = {"label": to_jsonable(names[best]), "score": to_jsonable(float(scores[best]))}
    if rule.kind == "top_k":
        order = np.argsort(-scores, kind="stable")[: rule.k]
        result["top_k"] = [
            {"label": to_jsonable(names[i]), "score": to_jsonable(float(scores[i]))} for i in order
        ]
    elif rule.kind == "probabilities":
        result["probabilities"] = {
            str(to_jsonable(n)): to_jsonable(float(s)) for n, s in zip(names, scores, strict=True)
        }
    return result
