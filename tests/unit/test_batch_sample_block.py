"""A micro-batch of prepared records written as a block gives the lines the records would.

``inference.batch._batch_lines`` runs a micro-batch whose records all prepared, and whose ids
are their indices, through ``LoadedModel.predict_array_lines`` (lines from the score table)
instead of ``_infer`` and ``outcome_line`` (each prediction's dicts). The spec is the second
route; both are compared as bytes, and anything the block route cannot write takes the second.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sinfer.errors import InvalidInputError
from sinfer.inference.batch import (
    SAMPLE_BLOCK_ROWS,
    _batch_lines,
    _infer,
    _prepare,
    _sample_block,
    outcome_line,
)
from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import ModelRegistry
from sinfer.model.store import LocalModelStore
from sinfer.records.types import Record
from tests.conftest import MODELS


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(LocalModelStore(MODELS))


def _png(pixels: np.ndarray[Any, Any]) -> str:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _both_routes(model: LoadedModel, records: list[Record]) -> tuple[bytes, bytes, bool]:
    """(lines of _batch_lines, lines of the per-record route, whether a block was made)."""
    prepared = [_prepare(model, record) for record in records]
    outcomes = [outcome for outcome, _ in prepared]
    samples = [sample for _, sample in prepared]
    blocked = _sample_block(model, outcomes, samples) is not None
    lines = _batch_lines(model, outcomes, samples)
    again = [_prepare(model, record) for record in records]  # fresh outcomes: _infer fills them in
    expected = b"".join(outcome_line(o) for o in _infer(model, [o for o, _ in again], [s for _, s in again]))
    assert lines.records == len(records)
    assert lines.predictions + lines.errors == len(records)
    return lines.data, expected, blocked


def test_b64_images_are_written_as_a_block_with_the_records_bytes(registry: ModelRegistry) -> None:
    # GIVEN 70 digit images as {"b64"} records, ids their indices, starting mid-file
    model = registry.get("digits")
    rng = np.random.default_rng(7)
    records = [Record(100 + i, 100 + i, {"b64": _png(rng.integers(0, 256, (8, 8)))}) for i in range(70)]

    # WHEN the micro-batch is written
    data, expected, blocked = _both_routes(model, records)

    # THEN it went as a block, and its lines are the per-record route's, byte for byte
    assert blocked
    assert data == expected
    assert data.count(b"\n") == 70
    assert data.startswith(b'{"id":100,"prediction":{"label":')


def test_numeric_records_without_a_postprocess_rule_too(registry: ModelRegistry) -> None:
    # breast_cancer's rows as lists (what a CSV with an id column, or mixed JSON, reads as)
    model = registry.get("breast_cancer")
    rng = np.random.default_rng(3)
    records = [Record(i, i, rng.normal(10, 5, 30).tolist()) for i in range(SAMPLE_BLOCK_ROWS)]

    data, expected, blocked = _both_routes(model, records)

    assert blocked
    assert data == expected


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda rs: rs.__setitem__(3, Record(3, 3, {"b64": "not base64!"})), id="a bad image"),
        pytest.param(lambda rs: rs.__setitem__(2, Record(2, "two", rs[2].value)), id="an id of its own"),
        pytest.param(lambda rs: rs.__setitem__(1, Record(1, True, rs[1].value)), id="an id equal to 1"),
        pytest.param(lambda rs: rs.__setitem__(4, Record(5, 5, rs[4].value)), id="indices with a gap"),
    ],
)
def test_a_batch_the_block_cannot_write_takes_the_per_record_route(
    registry: ModelRegistry, spoil: Any
) -> None:
    # GIVEN a batch with one record the block lines could not say exactly
    model = registry.get("digits")
    rng = np.random.default_rng(11)
    records = [Record(i, i, {"b64": _png(rng.integers(0, 256, (8, 8)))}) for i in range(SAMPLE_BLOCK_ROWS)]
    spoil(records)

    # WHEN it is written THEN no block was made, and the lines are the per-record route's
    data, expected, blocked = _both_routes(model, records)
    assert not blocked
    assert data == expected


def test_a_block_the_model_refuses_is_run_record_by_record(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a model that refuses the batch as a whole (as a graph may, for one bad row)
    model = registry.get("breast_cancer")
    records = [Record(i, i, [float(i)] * 30) for i in range(SAMPLE_BLOCK_ROWS)]
    prepared = [_prepare(model, record) for record in records]

    def refuse(array: Any, start: int) -> bytes:
        raise InvalidInputError("the model could not run on this input")

    monkeypatch.setattr(model, "predict_array_lines", refuse)

    # WHEN the batch is written THEN each record still gets its own prediction line
    lines = _batch_lines(model, [o for o, _ in prepared], [s for _, s in prepared])
    assert lines.predictions == SAMPLE_BLOCK_ROWS
    assert lines.data.count(b'"prediction"') == SAMPLE_BLOCK_ROWS


def test_a_batch_smaller_than_a_block_is_written_through_the_dicts(registry: ModelRegistry) -> None:
    # (one image object, a small file: the block writer's fixed cost would outweigh its rows)
    model = registry.get("digits")
    rng = np.random.default_rng(5)
    records = [
        Record(i, i, {"b64": _png(rng.integers(0, 256, (8, 8)))}) for i in range(SAMPLE_BLOCK_ROWS - 1)
    ]

    data, expected, blocked = _both_routes(model, records)

    assert not blocked
    assert data == expected
