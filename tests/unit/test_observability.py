"""sinfer.observability: lazy Powertools objects, and an EMF writer equal to Powertools' own flush."""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from hypothesis import example, given
from hypothesis import strategies as st

from sinfer import observability
from sinfer.observability import NAMESPACE, SERVICE, emf_line, emit_metric, lambda_stdout, metrics_disabled


@pytest.mark.parametrize(
    ("name", "unit", "value"),
    [
        ("Predictions", MetricUnit.Count, 1),
        ("Predictions", MetricUnit.Count, 32),
        ("InferRequests", "Count", 1),
    ],
)
def test_emf_line_is_what_powertools_metrics_would_flush(
    name: str, unit: MetricUnit | str, value: int
) -> None:
    # GIVEN Powertools' Metrics configured as sinfer's, holding the one metric a request adds
    powertools = Metrics(namespace=NAMESPACE, service=SERVICE)
    powertools.add_metric(name=name, unit=unit, value=value)
    expected = powertools.serialize_metric_set()
    powertools.clear_metrics()
    # WHEN sinfer writes the same metric itself
    unit_name = unit.value if isinstance(unit, MetricUnit) else unit
    line = emf_line(name, unit_name, value, timestamp_ms=expected["_aws"]["Timestamp"])
    # THEN the document is the same, down to the text Powertools prints (json.dumps, compact)
    assert json.loads(line) == expected
    assert line == json.dumps(expected, separators=(",", ":"))


@given(
    st.one_of(st.integers(-(10**17), 10**17), st.floats(allow_nan=False, allow_infinity=False), st.booleans())
)
@example(10**15 - 1)
@example(10**15)
@example(-(10**15))
@example(0)
def test_emf_value_text_is_the_floats_repr(value: float) -> None:
    # (ints are written without a float where that gives the same text: the check of that shortcut)
    line = emf_line("Predictions", "Count", value, timestamp_ms=5)
    assert line.endswith(f":[{float(value)!r}]}}")


def test_emf_timestamp_is_now_in_milliseconds() -> None:
    before = int(time.time() * 1000)
    stamp = json.loads(emf_line("Predictions", "Count", 1))["_aws"]["Timestamp"]
    assert isinstance(stamp, int)
    assert before - 1 <= stamp <= int(time.time() * 1000) + 1


def test_emit_metric_writes_one_line_unless_metrics_are_disabled(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_disabled.cache_clear()
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    emit_metric("Predictions", "Count", 2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["Predictions"] == [2.0]

    for env, disabled in [({"POWERTOOLS_METRICS_DISABLED": "true"}, True), ({"POWERTOOLS_DEV": "1"}, True)]:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        metrics_disabled.cache_clear()
        emit_metric("Predictions", "Count", 2)
        assert (capsys.readouterr().out == "") is disabled
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # explicit, even in dev mode
    metrics_disabled.cache_clear()
    emit_metric("Predictions", "Count", 2)
    assert capsys.readouterr().out
    metrics_disabled.cache_clear()


def test_under_lambdas_runtime_the_line_goes_straight_to_file_descriptor_1(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN metrics on, and sys.stdout replaced (as a test or a CLI may do)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    metrics_disabled.cache_clear()
    replaced = io.StringIO()
    try:
        # WHEN the process runs under Lambda's runtime (which sets AWS_LAMBDA_RUNTIME_API)
        monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
        lambda_stdout.cache_clear()
        with contextlib.redirect_stdout(replaced):
            emit_metric("Predictions", "Count", 3)
        # THEN the line went to descriptor 1 itself, whole, and not through sys.stdout
        assert replaced.getvalue() == ""
        [line] = capfd.readouterr().out.splitlines()
        assert json.loads(line)["Predictions"] == [3.0]

        # and elsewhere it goes through sys.stdout, whatever that is
        monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API")
        lambda_stdout.cache_clear()
        with contextlib.redirect_stdout(replaced):
            emit_metric("Predictions", "Count", 4)
        assert json.loads(replaced.getvalue())["Predictions"] == [4.0]
        assert capfd.readouterr().out == ""
    finally:
        lambda_stdout.cache_clear()
        metrics_disabled.cache_clear()


def test_powertools_objects_are_built_on_first_use_and_kept() -> None:
    from aws_lambda_powertools import Logger

    logger = observability.logger
    assert isinstance(logger, Logger)
    assert observability.logger is logger
    with pytest.raises(AttributeError):
        _ = observability.no_such_thing
