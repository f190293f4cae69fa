"""Records → predictions or errors, micro-batched, in input order, nothing dropped.

Shared by s3_ingest, ``sinfer predict`` and the SageMaker container, so a file gives the same
lines wherever it runs. Parsing the next micro-batch overlaps with inference on the current
one (ONNX Runtime releases the GIL while it runs), which is most of the win for small models
whose cost is dominated by parsing.

Guarantee: every record yields exactly one outcome, a prediction or an error. A record that
does not parse, or does not fit the model, is an error on its own; if the model fails on a
whole micro-batch, the batch is re-run one record at a time so only the culprit fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sinfer.codecs.instances import Sample
from sinfer.errors import SinferError
from sinfer.inference.model import LoadedModel
from sinfer.records.types import Record, RecordError


@dataclass(slots=True)
class Outcome:
    record: Record
    prediction: Any = None
    error: RecordError | None = None


class LineWriter(Protocol):
    def write(self, line: bytes) -> None: ...


def write_outcome(writer: LineWriter, outcome: Outcome, counts: dict[str, int]) -> None:
    """One outcome as its output line (prediction or error), counted into records/predictions/errors.

    The one place a result line is written, for s3_ingest, ``sinfer predict`` and the benchmarks.
    """
    from sinfer.records import error_line, prediction_line

    counts["records"] += 1
    if outcome.error is None:
        counts["predictions"] += 1
        writer.write(prediction_line(outcome.record.id, outcome.prediction))
    else:
        counts["errors"] += 1
        writer.write(error_line(outcome.record.id, outcome.error.code, outcome.error.message))


def record_instance(model: LoadedModel, value: Any) -> Any:
    """A record's value as an instance for this model.

    A CSV row (or a JSON object of features) for a single-input model that declares no column
    names is read as its values in file order, e.g. 64 pixel columns for ``digits``.
    """
    if not isinstance(value, dict) or len(model.inputs) != 1:
        return value
    spec = model.inputs[0]
    if spec.decl.columns is not None or spec.name in value or set(value) == {"b64"}:
        return value
    return list(value.values())


def _prepare(model: LoadedModel, record: Record) -> tuple[Outcome, Sample | None]:
    if record.error is not None:
        return Outcome(record, error=record.error), None
    try:
        sample = model.to_sample(record_instance(model, record.value), f"record {record.id!r}")
    except SinferError as exc:
        return Outcome(record, error=RecordError(exc.code, exc.message)), None
    return Outcome(record), sample


def _infer(model: LoadedModel, outcomes: list[Outcome], samples: list[Sample | None]) -> list[Outcome]:
    ready = [(o, s) for o, s in zip(outcomes, samples, strict=True) if s is not None]
    if not ready:
        return outcomes
    try:
        predictions = model.predict_samples([s for _, s in ready])
    except SinferError:
        predictions = []
        for outcome, sample in ready:  # isolate the record the model cannot run on
            try:
                outcome.prediction = model.predict_samples([sample])[0]
            except SinferError as exc:
                outcome.error = RecordError(exc.code, exc.message)
        return outcomes
    for (outcome, _), prediction in zip(ready, predictions, strict=True):
        outcome.prediction = prediction
    return outcomes


def _batches(
    model: LoadedModel, records: Iterable[Record], size: int
) -> Iterator[tuple[list[Outcome], list[Sample | None]]]:
    outcomes: list[Outcome] = []
    samples: list[Sample | None] = []
    for record in records:
        outcome, sample = _prepare(model, record)
        outcomes.append(outcome)
        samples.append(sample)
        if len(outcomes) >= size:
            yield outcomes, samples
            outcomes, samples = [], []
    if outcomes:
        yield outcomes, samples


def predict_records(
    model: LoadedModel, records: Iterable[Record], *, batch_size: int | None = None, overlap: bool = True
) -> Iterator[Outcome]:
    """One :class:`Outcome` per record, in input order."""
    size = batch_size or (64 if model.loops else max(1, min(model.max_batch, 1024)))
    if not overlap:
        for outcomes, samples in _batches(model, records, size):
            yield from _infer(model, outcomes, samples)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinfer-infer") as pool:
        pending: Future[list[Outcome]] | None = None
        for outcomes, samples in _batches(model, records, size):
            submitted = pool.submit(_infer, model, outcomes, samples)
            if pending is not None:
                yield from pending.result()
            pending = submitted
        if pending is not None:
            yield from pending.result()
