"""Output serialisation for every type ONNX Runtime returns, and manifest post-processing."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from sinfer.codecs.outputs import nested_deeper_than, postprocess, postprocess_batch, to_jsonable
from sinfer.model.manifest import Postprocess


def roundtrip(value: Any) -> Any:
    """What a client sees: strict JSON (no NaN) parsed back."""
    return json.loads(json.dumps(to_jsonable(value), allow_nan=False))


def test_float16_becomes_plain_floats() -> None:
    out = roundtrip(np.array([[0.5, 1.25], [-2.0, 65504.0]], np.float16))
    assert out == [[0.5, 1.25], [-2.0, 65504.0]]
    assert roundtrip(np.float16(0.25)) == 0.25


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_floats_become_null(dtype: Any) -> None:
    values = np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype)
    assert roundtrip(values) == [[1.0, None], [None, None]]
    assert roundtrip(dtype(np.nan)) is None
    assert roundtrip(np.array(np.inf, dtype)) is None
    assert roundtrip(float("nan")) is None


def test_integers_and_booleans_keep_their_values() -> None:
    big = 2**62 + 1  # beyond float precision: must stay an exact integer
    assert roundtrip(np.array([big, -3], np.int64)) == [big, -3]
    assert roundtrip(np.uint8(255)) == 255
    assert roundtrip(np.array([True, False])) == [True, False]
    assert roundtrip(np.bool_(True)) is True


def test_strings_and_bytes_become_text() -> None:
    assert roundtrip(np.array(["a", "é"], dtype=object)) == ["a", "é"]
    assert roundtrip(np.array([b"x", b"y"], dtype="S1")) == ["x", "y"]
    assert roundtrip(np.array(b"raw", dtype="S3")) == "raw"
    assert roundtrip(np.array([b"\xff\xfe", "ok"], dtype=object)) == ["\ufffd\ufffd", "ok"]
    assert roundtrip(b"plain") == "plain"
    assert roundtrip(np.array("one", dtype=object)) == "one"


def test_zipmap_sequences_of_maps_get_string_keys() -> None:
    # skl2onnx's ZipMap: a list of {class: probability} dicts with int64 or string keys
    value = [{0: np.float32(0.25), 1: np.float32(0.75)}, {"cat": 1.0, "dog": float("nan")}]
    assert roundtrip(value) == [{"0": 0.25, "1": 0.75}, {"cat": 1.0, "dog": None}]


def test_nested_containers_are_converted_all_the_way_down() -> None:
    value = {"a": (np.int64(1), [np.float32(2.5)]), 3: {"b": np.array([1], np.int32)}}
    assert roundtrip(value) == {"a": [1, [2.5]], "3": {"b": [1]}}


LABELS = ("cat", "dog", "bird")


def test_argmax_with_labels() -> None:
    result = postprocess(Postprocess(kind="argmax"), np.array([0.1, 0.7, 0.2], np.float32), LABELS)
    assert result["label"] == "dog"
    assert result["score"] == pytest.approx(0.7)
    assert set(result) == {"label", "score"}


def test_argmax_without_labels_or_with_a_mismatched_count_uses_indices() -> None:
    assert postprocess(Postprocess(kind="argmax"), [1.0, 3.0], None)["label"] == 1
    assert postprocess(Postprocess(kind="argmax"), [1.0, 3.0], LABELS)["label"] == 1


def test_top_k_is_ordered_by_score() -> None:
    result = postprocess(Postprocess(kind="top_k", k=2), np.array([[0.2, 0.5, 0.3]]), LABELS)
    assert [entry["label"] for entry in result["top_k"]] == ["dog", "bird"]
    assert [entry["score"] for entry in result["top_k"]] == pytest.approx([0.5, 0.3])
    assert result["label"] == "dog"
    json.dumps(result, allow_nan=False)


def test_probabilities_with_softmax() -> None:
    logits = np.array([1.0, 2.0, 3.0], np.float32)
    result = postprocess(Postprocess(kind="probabilities", softmax=True), logits, LABELS)
    expected = np.exp(logits) / np.exp(logits).sum()
    assert list(result["probabilities"]) == list(LABELS)
    assert list(result["probabilities"].values()) == pytest.approx(expected.tolist())
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["label"] == "bird"
    assert result["score"] == pytest.approx(float(expected[2]))


def test_softmax_is_stable_for_large_logits() -> None:
    result = postprocess(Postprocess(kind="probabilities", softmax=True), [1000.0, 1001.0], None)
    assert all(math.isfinite(p) for p in result["probabilities"].values())
    assert result["probabilities"]["1"] == pytest.approx(1 / (1 + math.exp(-1)))


def test_zipmap_dict_scores_are_named_by_labels() -> None:
    # int64 class keys index into the manifest's labels; string keys stay as they are
    result = postprocess(Postprocess(kind="probabilities"), {0: 0.2, 1: 0.8}, ("malignant", "benign"))
    assert result == {
        "label": "benign",
        "score": pytest.approx(0.8),
        "probabilities": {"malignant": pytest.approx(0.2), "benign": pytest.approx(0.8)},
    }
    named = postprocess(Postprocess(kind="top_k", k=1), {"spam": 0.9, "ham": 0.1}, None)
    assert named["top_k"] == [{"label": "spam", "score": pytest.approx(0.9)}]


@pytest.mark.parametrize("kind", ["argmax", "top_k", "probabilities"])
def test_no_class_wins_a_row_of_nan_but_infinity_still_does(kind: str) -> None:
    # A NaN input gives NaN scores: argmax picks the first NaN, which labelled such a row with
    # its first class. Its label is null now, as its scores are; +inf still wins its row.
    rule = Postprocess(kind=kind, k=2) if kind == "top_k" else Postprocess(kind=kind)
    scores = np.array([[np.nan, np.nan, np.nan], [0.2, np.nan, 0.3], [0.1, np.inf, 0.2], [0.2, 0.5, 0.3]])
    alone = [postprocess(rule, row, LABELS) for row in scores]
    for results in (alone, postprocess_batch(rule, scores, LABELS)):
        assert results[0]["label"] is None
        assert results[0]["score"] is None
        assert results[1]["label"] is None  # (a NaN among the scores: argmax's pick is the NaN)
        assert [r["label"] for r in results[2:]] == ["dog", "dog"]
        assert results[2]["score"] is None  # (inf is not JSON)
        json.dumps(results, allow_nan=False)


def test_nested_deeper_than_counts_lists_and_objects_without_recursing() -> None:
    assert not nested_deeper_than(5, 0)
    assert not nested_deeper_than("text", 0)
    assert nested_deeper_than([], 0)
    assert not nested_deeper_than([], 1)
    assert not nested_deeper_than({"a": [1, {"b": 2}]}, 3)
    assert nested_deeper_than({"a": [1, {"b": []}]}, 3)
    value: Any = 0
    for _ in range(100_000):  # far past the interpreter's recursion limit
        value = {"k": [value]}
    assert nested_deeper_than(value, 199_999)
    assert not nested_deeper_than(value, 200_000)
