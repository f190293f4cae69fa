"""Logger, Tracer and Metrics, created once per process on first use, and a tiny EMF writer.

Powertools objects read their settings (service name, namespace, log level) from the
environment that template.yaml's Globals set, so nothing here is configuration.

They are built lazily (module ``__getattr__``): ``from sinfer.observability import logger``
builds the Logger, but importing this module builds nothing, and the Tracer — which imports the
X-Ray SDK and botocore, ~230 ms, even with tracing disabled — is only built for code that uses
it. predict_api's fast path (:mod:`sinfer.api.fast`) imports no Powertools at all: it writes
its one metric with :func:`emit_metric`, the same CloudWatch EMF document ``Metrics.log_metrics``
would flush (tests compare the two).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

    logger: Logger
    tracer: Tracer
    metrics: Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "sinfer")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "sinfer")

__all__ = [
    "NAMESPACE",
    "SERVICE",
    "count",
    "count_file",
    "emit_metric",
    "logger",
    "metrics",
    "tracer",
    "was_warm",
]

# Routes such as health checks publish no metric; Powertools warns on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def _logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE)


def _tracer() -> Any:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def _metrics() -> Any:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=NAMESPACE, service=SERVICE)


_FACTORIES: dict[str, Callable[[], Any]] = {"logger": _logger, "tracer": _tracer, "metrics": _metrics}
_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """Build ``logger``, ``tracer`` or ``metrics`` on first access, then keep it as a global."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if name not in globals():
            globals()[name] = factory()
    return globals()[name]


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to this invocation's Count metric ``name`` (the handler's ``log_metrics``
    writes it); Powertools' Metrics are built on first use, not when a module imports this."""
    from aws_lambda_powertools.metrics import MetricUnit

    __getattr__("metrics").add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_file(outcome: str, counts: Mapping[str, int] | None = None) -> None:
    """A file's outcome as the metric ``Files<Outcome>`` (``FilesCompleted``, ``FilesFailed``,
    ...) and, for a completed file, its lines (``Predictions``, ``RecordErrors``), added to the
    invocation's metrics: s3_ingest and the batch path count files alike, each under its own
    ``service``. A failed run's lines are not counted: they were not published."""
    count(f"Files{outcome.capitalize()}")
    if outcome == "completed" and counts:
        count("RecordErrors", counts.get("errors", 0))
        count("Predictions", counts.get("predictions", 0))


def was_warm() -> None:
    """Tell Powertools this execution environment has already served a request.

    Its Logger (the ``cold_start`` log key) and Tracer (the ``ColdStart`` annotation) each
    mark the first invocation they wrap as the cold start, with a flag of their own module.
    predict_api's fast path answers requests without them, so the first one they see may be
    the hundredth of the environment: its handler calls this before wrapping one. A Powertools
    release without these flags is left as it is (the key is then wrong, as before).
    """
    import aws_lambda_powertools.logging.logger as logger_module
    import aws_lambda_powertools.tracing.tracer as tracer_module

    for module in (logger_module, tracer_module):
        if hasattr(module, "is_cold_start"):
            setattr(module, "is_cold_start", False)  # noqa: B010 (a module's global, not typed)


# --- CloudWatch embedded metric format, without Powertools ---------------------------------

_TRUE = ("1", "y", "yes", "t", "true", "on")


@functools.cache
def metrics_disabled() -> bool:
    """Powertools' rule (``is_metrics_disabled``): POWERTOOLS_METRICS_DISABLED, or dev mode unless
    metrics are explicitly enabled.

    Read once per process (``metrics_disabled.cache_clear()`` to re-read): Powertools reads the
    environment on every flush, but two ``os.environ`` misses cost ~2.5 us a request.
    """
    disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    if disabled is not None:
        return disabled.strip().lower() in _TRUE
    return os.environ.get("POWERTOOLS_DEV", "false").strip().lower() in _TRUE


_templates: dict[tuple[str, str], tuple[str, str]] = {}


def _template(name: str, unit: str) -> tuple[str, str]:
    """The text before the timestamp and between it and the value, built once per metric."""
    found = _templates.get((name, unit))
    if found is None:
        dimensions = {"service": SERVICE} if SERVICE else {}
        aws = json.dumps(
            {
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ]
            },
            separators=(",", ":"),
        )[1:-1]
        dims = json.dumps(dimensions, separators=(",", ":"))[1:-1]
        found = ('{"_aws":{"Timestamp":', f",{aws}}},{dims + ',' if dims else ''}{json.dumps(name)}:[")
        _templates[(name, unit)] = found
    return found


def emf_line(name: str, unit: str, value: float, timestamp_ms: int | None = None) -> str:
    """One EMF document holding one metric with the ``service`` dimension: what
    ``Metrics.log_metrics`` prints after one ``add_metric`` (same keys, order and separators)."""
    head, middle = _template(name, unit)
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000  # (no float: ~0.3 us less than time.time() * 1000)
    # A count (a plain int) is written as repr(float(value)) writes it, without the float: the
    # same text below 10**15 ("3.0"), ~1 us less on a request's path.
    text = f"{value}.0" if type(value) is int and -(10**15) < value < 10**15 else repr(float(value))
    return f"{head}{timestamp_ms}{middle}{text}]}}"


def emit_metric(name: str, unit: str, value: float) -> None:
    """Write one metric to stdout as CloudWatch EMF (Lambda ships stdout to CloudWatch Logs).

    One ``write`` rather than ``print``: Lambda's runtime flushes stdout after every write, and
    print writes the newline separately. Under that runtime the line's bytes go straight to
    file descriptor 1 (see :func:`lambda_stdout`); elsewhere through ``sys.stdout``.
    """
    if metrics_disabled():
        return
    line = emf_line(name, unit, value) + "\n"
    if lambda_stdout():
        data = line.encode()
        while data:  # (a pipe takes a line this short whole; the loop is for the odd signal)
            data = data[os.write(1, data) :]
    else:
        sys.stdout.write(line)


@functools.cache
def lambda_stdout() -> bool:
    """Whether this process runs under Lambda's Python runtime, read once per process
    (``lambda_stdout.cache_clear()`` to re-read).

    There, ``sys.stdout`` is file descriptor 1 wrapped to flush after every write
    (awslambdaric's ``bootstrap.Unbuffered``; ``sam local invoke`` runs the same runtime), so
    nothing waits in its buffer and writing a line's bytes to descriptor 1 is what writing it
    to ``sys.stdout`` does, without the wrapper, the text layer and the buffer: measured in the
    handler, ~2.5 us of a ~43 us request, most of it those layers' effect on the code after
    them. Anywhere else (the CLI, tests, sinfer's local stack) ``sys.stdout`` may be replaced
    or buffered, and is used as it is. The runtime sets AWS_LAMBDA_RUNTIME_API for itself.
    """
    return bool(os.environ.get("AWS_LAMBDA_RUNTIME_API"))
