"""How batch collection reads one line of the SageMaker container's answer (orchestrator).

The container writes ``{"prediction": ...}`` or ``{"error": {"code", "message"}}`` per line;
anything else is no answer (its record counts as missing, and is retried). The join around it
is tested in tests/reliability/test_faults_batch.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from sinfer.batch.orchestrator import _container_outcome


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        (b'{"prediction": {"label": "3"}}', ({"label": "3"}, None)),
        (b'{"prediction": null}', (None, None)),
        (
            b'{"error": {"code": "invalid_input", "message": "short row"}}',
            (None, {"code": "invalid_input", "message": "short row"}),
        ),
        # shapes the container does not write, read as well as they can be: never "None"
        (b'{"error": {"code": null}}', (None, {"code": "error", "message": "the container gave no reason"})),
        (b'{"error": "plain text"}', (None, {"code": "error", "message": "plain text"})),
        (b'{"error": ["a", "b"]}', (None, {"code": "error", "message": "['a', 'b']"})),
        (b'{"error": null}', (None, {"code": "error", "message": "the container gave no reason"})),
    ],
)
def test_answer_lines(line: bytes, outcome: Any) -> None:
    assert _container_outcome(line) == outcome


@pytest.mark.parametrize(
    "line",
    [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"label": "3"}', b'{"prediction": ' + b"[" * 100_000],
)
def test_lines_that_are_no_answer(line: bytes) -> None:
    assert _container_outcome(line) is None


def test_an_answer_nested_past_200_levels_is_an_error() -> None:
    deep = b'{"prediction": ' + b"[" * 201 + b"]" * 201 + b"}"
    assert _container_outcome(deep) == (
        None,
        {"code": "invalid_model_output", "message": "the model's output is nested more than 200 levels deep"},
    )
    at_the_limit = b'{"prediction": ' + b"[" * 200 + b"]" * 200 + b"}"
    assert _container_outcome(at_the_limit) is not None
    assert _container_outcome(at_the_limit)[1] is None  # type: ignore[index]
