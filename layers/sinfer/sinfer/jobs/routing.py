"""Small or large: does a file run inside this Lambda invocation, or go to a batch backend?

The decision is made before the first byte is read, from what is known: the object's size, a
record count estimated from the bytes-per-record seen so far, the configured thresholds, and
the time left in this invocation against the model's measured throughput (bytes per second,
learned from previous files in this execution environment; a conservative default before).
A file that would not finish in time is never started here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sinfer.config import Settings

_lock = threading.Lock()
_bytes_per_second: dict[str, float] = {}
_bytes_per_record: dict[str, float] = {}
DEFAULT_BYTES_PER_RECORD = 256.0
SMOOTHING = 0.5
# Throughput is learned only from files big enough to measure it: a file of a few KB spends its
# time on fixed costs (first batch, thread start), and its bytes/second would send every later
# file of more than a few hundred KB to a batch backend.
MIN_THROUGHPUT_SAMPLE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Route:
    backend: str  # "lambda" or a batch backend name
    reason: str
    estimated_seconds: float
    estimated_records: int


def observe(model: str, size_bytes: int, records: int, seconds: float) -> None:
    """Learn throughput from a finished file (exponentially smoothed)."""
    if size_bytes <= 0 or seconds <= 0 or records <= 0:
        return
    samples = [(_bytes_per_record, size_bytes / records)]
    if size_bytes >= MIN_THROUGHPUT_SAMPLE_BYTES:
        samples.append((_bytes_per_second, size_bytes / seconds))
    with _lock:
        for table, value in samples:
            old = table.get(model)
            table[model] = value if old is None else SMOOTHING * value + (1 - SMOOTHING) * old


def throughput(model: str, settings: Settings) -> float:
    return _bytes_per_second.get(model, settings.assumed_bytes_per_second)


def decide(
    model: str,
    size_bytes: int,
    remaining_ms: int,
    settings: Settings,
    *,
    requested_backend: str = "",
    batch_backend: str | None = None,
) -> Route:
    batch = batch_backend or settings.default_batch_backend
    per_record = _bytes_per_record.get(model, DEFAULT_BYTES_PER_RECORD)
    records = int(size_bytes / per_record) if size_bytes > 0 else 0
    seconds = size_bytes / throughput(model, settings) if size_bytes > 0 else 0.0
    budget = (remaining_ms - settings.time_safety_ms) / 1000
    if requested_backend and requested_backend != "lambda":
        return Route(
            requested_backend, f"the job asked for the {requested_backend} backend", seconds, records
        )
    if requested_backend == "lambda":
        return Route("lambda", "the job asked for lambda", seconds, records)
    if size_bytes > settings.max_inline_bytes:
        return Route(
            batch,
            f"{size_bytes:,} bytes is over MAX_INLINE_BYTES ({settings.max_inline_bytes:,})",
            seconds,
            records,
        )
    if records > settings.max_inline_records:
        return Route(
            batch,
            f"about {records:,} records is over MAX_INLINE_RECORDS ({settings.max_inline_records:,})",
            seconds,
            records,
        )
    if seconds > budget:
        return Route(
            batch,
            f"estimated {seconds:.1f}s at {throughput(model, settings) / 1e6:.1f} MB/s exceeds the "
            f"{max(budget, 0):.1f}s left in this invocation",
            seconds,
            records,
        )
    return Route("lambda", "fits this invocation's time and size budget", seconds, records)
