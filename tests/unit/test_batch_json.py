"""A block's result lines written from the score table equal the lines of its predictions.

``codecs.outputs.postprocess_json`` writes post-processed predictions as JSON fragments picked
by numpy (``LoadedModel.predict_array_lines``), skipping the prediction dicts. The spec is the
general path: ``orjson.dumps`` of ``postprocess_batch``'s dicts, as ``prediction_lines`` writes
them. Everything is compared as bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sinfer.codecs.outputs import json_numbers, postprocess_batch, postprocess_json
from sinfer.inference.registry import ModelRegistry
from sinfer.model.manifest import Postprocess
from sinfer.model.store import LocalModelStore
from sinfer.records.types import _STRICT, fragment_lines, prediction_lines

MODELS = Path(__file__).resolve().parents[2] / "models"

RULES = st.one_of(
    st.builds(Postprocess, kind=st.sampled_from(["argmax", "probabilities"]), softmax=st.booleans()),
    st.builds(Postprocess, kind=st.just("top_k"), k=st.integers(1, 12), softmax=st.booleans()),
)
NAMES = st.one_of(st.text(max_size=6), st.integers(-(2**70), 2**70))
FLOAT32S = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _expected(rule: Postprocess, values: Any, labels: tuple[Any, ...] | None) -> list[bytes]:
    return [orjson.dumps(p, option=_STRICT) for p in postprocess_batch(rule, values, labels)]


def _rows(columns: list[Any]) -> list[bytes]:
    count = len(columns[0])  # the first column is always one fragment a row
    lists = [column if isinstance(column, list) else [column] * count for column in columns]
    return [b"".join(parts) for parts in zip(*lists, strict=True)]


def _check(rule: Postprocess, values: Any, labels: tuple[Any, ...] | None) -> bool:
    """Asserts the fragments (when given) equal the dicts' JSON; True if they were given."""
    columns = postprocess_json(rule, values, labels)
    if columns is None:
        return False
    assert _rows(columns) == _expected(rule, values, labels)
    return True


# --- the numbers --------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.binary(min_size=8, max_size=8 * 64))
def test_float64_numbers_are_written_as_orjson_writes_python_floats(raw: bytes) -> None:
    values = np.frombuffer(raw[: len(raw) // 8 * 8], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return
    assert json_numbers(values) == [orjson.dumps(v) for v in values.tolist()]


def test_float64_numbers_at_every_exponent() -> None:
    rng = np.random.default_rng(0)
    exponents = np.arange(-1074, 1024)
    mantissas = rng.random((len(exponents), 4)) + 1.0
    values = np.ldexp(mantissas, exponents[:, None])
    values = np.concatenate([values.ravel(), -values.ravel(), [0.0, -0.0, 5e-324, 1.7976931348623157e308]])
    values = values[np.isfinite(values)]
    assert json_numbers(values) == [orjson.dumps(v) for v in values.tolist()]


@settings(max_examples=200)
@given(hnp.arrays(np.float32, st.integers(1, 40), elements=FLOAT32S))
def test_float32_numbers_are_written_as_their_float64_values(values: np.ndarray) -> None:
    # tolist widens a float32 score to float64 (0.1f → 0.10000000149011612), and so must the text
    assert json_numbers(values) == [orjson.dumps(v) for v in values.tolist()]
    assert json_numbers(np.array([0.1], np.float32)) == [b"0.10000000149011612"]


def test_integer_numbers() -> None:
    values = np.array([0, -1, 2**62, -(2**63)], np.int64)
    assert json_numbers(values) == [b"0", b"-1", str(2**62).encode(), str(-(2**63)).encode()]


# --- whole predictions --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    RULES,
    st.integers(1, 9).flatmap(
        lambda classes: st.tuples(
            hnp.arrays(
                st.sampled_from([np.float32, np.float64, np.float16, np.int64]),
                st.tuples(st.integers(1, 12), st.just(classes)),
                elements={"min_value": -1e4, "max_value": 1e4, "allow_nan": False, "allow_infinity": False},
            ),
            st.one_of(st.none(), st.tuples(*[st.text(max_size=5)] * classes)),
        )
    ),
)
@example(Postprocess("argmax"), (np.array([[0.5, 0.5], [0.1, 0.9]], np.float32), ("a", "b")))  # ties
@example(Postprocess("probabilities"), (np.array([[0.2, 0.8]]), ("a", "a")))  # keys repeat: a dict keeps one
@example(Postprocess("top_k", k=3), (np.array([[1.0, 2.0]]), ("\ud800", "b")))  # orjson refuses the name
@example(Postprocess("argmax"), (np.array([[1.0, math.nan]]), None))  # NaN: argmax and the sort disagree
@example(Postprocess("top_k", k=2), (np.array([[math.inf, 1.0]]), None))  # non-finite scores are null
@example(Postprocess("probabilities", softmax=True), (np.array([[1000.0, -1000.0, 0.0]]), None))
def test_score_tables(rule: Postprocess, table: tuple[np.ndarray, tuple[str, ...] | None]) -> None:
    values, labels = table
    given_columns = _check(rule, values, labels)
    names_ok = labels is None or all("\ud800" not in name for name in labels)
    distinct = labels is None or len(set(labels)) == len(labels) or rule.kind != "probabilities"
    finite = bool(np.isfinite(values.astype(np.float64)).all())
    # Declined only for what it cannot write exactly, never for an ordinary table.
    assert given_columns == (names_ok and distinct and finite)


@settings(max_examples=200, deadline=None)
@given(
    RULES,
    st.lists(NAMES, min_size=1, max_size=6, unique=True).flatmap(
        lambda keys: st.lists(
            st.lists(st.floats(0, 1, width=32), min_size=len(keys), max_size=len(keys)).map(
                lambda scores: dict(zip(keys, scores, strict=True))
            ),
            min_size=1,
            max_size=6,
        )
    ),
    st.one_of(st.none(), st.just(("zero", "one", "two"))),
)
def test_zipmap_dicts(
    rule: Postprocess, values: list[dict[Any, float]], labels: tuple[str, ...] | None
) -> None:
    # ZipMap keys: ints index into the labels, names beyond 64 bits are declined (orjson refuses them)
    took = _check(rule, values, labels)
    huge = any(isinstance(k, int) and not -(2**63) <= k < 2**64 for k in values[0])
    if huge:
        assert not took


def test_name_subclasses_write_what_the_dicts_write() -> None:
    # (orjson leaves subclasses to json, which writes their value; declined or not, the same text)
    class Name(str):
        pass

    values = np.array([[0.1, 0.9], [0.7, 0.3]])
    for rule in (Postprocess("argmax"), Postprocess("top_k", k=2), Postprocess("probabilities")):
        _check(rule, values, (Name("a"), Name("b")))
        _check(rule, [{Name("x"): 0.25, Name("y"): 0.75}], None)


def test_lines_join_ids_and_fragments() -> None:
    columns = postprocess_json(Postprocess("top_k", k=2), np.array([[0.25, 0.75], [0.5, 0.5]]), ("no", "yes"))
    assert columns is not None
    assert fragment_lines(7, 2, columns) == (
        b'{"id":7,"prediction":{"label":"yes","score":0.75,"top_k":[{"label":"yes","score":0.75},'
        b'{"label":"no","score":0.25}]}}\n'
        b'{"id":8,"prediction":{"label":"no","score":0.5,"top_k":[{"label":"no","score":0.5},'
        b'{"label":"yes","score":0.5}]}}\n'
    )


# --- the committed models -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(LocalModelStore(MODELS))


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_model_block_lines_equal_prediction_lines(registry: ModelRegistry, name: str) -> None:
    model = registry.get(name)
    width = model.inputs[0].shape[-1]
    assert isinstance(width, int)
    rng = np.random.default_rng(3)
    rows = (rng.random((model.max_batch + 37, width)) * 16).astype(np.float32)
    for count in (1, 3, 5, len(rows)):  # the small-batch formatting, one chunk, two chunks
        block = rows[:count]
        assert model.predict_array_lines(block, 100) == prediction_lines(100, model.predict_array(block))


def test_model_block_lines_take_the_fragments(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not vacuous: the committed digits model's lines come from the fragments, not the dicts."""
    model = registry.get("digits")
    rows = np.zeros((4, 64), np.float32)
    expected = prediction_lines(0, model.predict_array(rows))
    monkeypatch.setattr(model, "_format", lambda columns: pytest.fail("formatted the dicts"))
    assert model.predict_array_lines(rows, 0) == expected
