"""Records → predictions or errors, micro-batched, in input order, nothing dropped.

:func:`process_records` (an input file → its result lines) is the one loop s3_ingest,
``sinfer predict`` and the benchmarks run, so a file gives the same lines wherever it runs;
:func:`predict_records` (records → outcomes) is its per-record core, which the SageMaker
container uses directly. Parsing the next units of work (up to :data:`AHEAD` of them)
overlaps with inference and formatting of the current one wherever either releases the GIL:
ONNX Runtime while it runs, and ``np.fromstring``, which parses integer CSV and JSONL blocks
(digits CSV: 2.9 us a row inline, 2.0 with one unit ahead, 1.5 with two, measured). Where both
sides hold the GIL (json records, Pillow, formatting) the hand-offs cost more than the overlap
wins (8x8 images: 57-78 us each overlapped, 48-55 inline), so the first unit runs inline and
decides (:func:`_overlapped`); a file of one unit (one image, a small file) runs inline too.

Two lanes, one result. For a model that takes one numeric array, CSV/TSV and JSONL files are
read in numeric blocks (:func:`sinfer.records.read_blocks`): a block is parsed at C speed, run
as one array (``LoadedModel.predict_array_lines``) and written as one run of lines. Anything a block
cannot do exactly as records would (see read_blocks) arrives as records, and a block the model
refuses as a whole is re-read as its records; both take the per-record lane, so the output is
the same line for line.

Guarantee: every record yields exactly one outcome, a prediction or an error. A record that
does not parse, or does not fit the model, is an error on its own; if the model fails on a
whole micro-batch, the batch is re-run one record at a time so only the culprit fails.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any, Final, Protocol, TypeVar

import numpy as np

from sinfer.codecs.instances import BadImageError, Sample, is_b64_object
from sinfer.errors import SinferError
from sinfer.inference.model import LoadedModel
from sinfer.records.readers import ByteStream, RecordBlock, detect_format, read_blocks, read_records
from sinfer.records.types import Record, RecordError, error_line, prediction_line

# Blocks run in units of about this many rows (whole micro-batches), so that a slow model
# still reports progress (and s3_ingest checks its remaining time) every few thousand records.
BLOCK_UNIT_ROWS: Final = 2048
_BLOCK_KINDS: Final = ("csv", "tsv", "jsonl")


@dataclass(slots=True)
class Outcome:
    record: Record
    prediction: Any = None
    error: RecordError | None = None


class LineWriter(Protocol):
    def write_lines(self, data: bytes, lines: int, /) -> None: ...


def process_records(
    model: LoadedModel,
    stream: ByteStream,
    name: str,
    writer: LineWriter,
    *,
    content_type: str | None = None,
    counts: dict[str, int] | None = None,
    batch_size: int | None = None,
    max_decompressed_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    overlap: bool = True,
) -> dict[str, int]:
    """Read one input file, predict every record and write its result lines, in input order.

    Returns ``counts`` (records, predictions, errors), updated as lines are written.
    ``progress(n)`` is called after each run of ``n`` records is written; an exception it
    raises (s3_ingest running out of time) stops the file. The format is checked before
    anything is read; the writer is neither closed nor aborted here.
    """
    fmt = detect_format(name, content_type)
    counts = counts if counts is not None else {"records": 0, "predictions": 0, "errors": 0}
    size = batch_size or _default_batch_size(model)
    units: Iterable[Callable[[], _Lines]]
    if model.takes_arrays and fmt.kind in _BLOCK_KINDS:
        items = read_blocks(
            stream,
            name,
            content_type,
            columns_ok=partial(block_columns_ok, model),
            max_decompressed_bytes=max_decompressed_bytes,
        )
        units = _cell_units(model, items, size)
    else:
        records = read_records(stream, name, content_type, max_decompressed_bytes=max_decompressed_bytes)
        units = (partial(_batch_lines, model, o, s) for o, s in _batches(model, records, size))
    for lines in _overlapped(units, overlap, lambda: model.run_seconds):
        writer.write_lines(lines.data, lines.records)
        counts["records"] += lines.records
        counts["predictions"] += lines.predictions
        counts["errors"] += lines.errors
        if progress is not None:
            progress(lines.records)
    return counts


@dataclass(slots=True)
class _Lines:
    """A run of result lines, ready to write, and what they count."""

    data: bytes
    records: int
    predictions: int
    errors: int
    # Its rows were parsed as a numeric block (np.fromstring/loadtxt), which releases the GIL.
    block: bool = False

    @classmethod
    def joined(cls, parts: list[_Lines]) -> _Lines:
        """Consecutive runs of lines as one (not a block: they were records)."""
        data = b"".join(part.data for part in parts)
        records = predictions = errors = 0
        for part in parts:
            records += part.records
            predictions += part.predictions
            errors += part.errors
        return cls(data, records, predictions, errors)


def _default_batch_size(model: LoadedModel) -> int:
    return 64 if model.loops else max(1, min(model.max_batch, 1024))


@dataclass(slots=True)
class _Rows:
    """Rows ``lo:hi`` of a block."""

    block: RecordBlock
    lo: int
    hi: int

    @property
    def array(self) -> np.ndarray[Any, Any]:
        return self.block.array[self.lo : self.hi]

    def records(self) -> list[Record]:
        return self.block.records()[self.lo : self.hi]


def _cell_units(
    model: LoadedModel, items: Iterable[RecordBlock | list[Record]], size: int
) -> Iterator[Callable[[], _Lines]]:
    """Units of work over the per-record lane's micro-batches ("cells" of ``size`` records).

    The per-record lane runs records ``k*size`` to ``(k+1)*size`` as one batch, and ONNX
    Runtime's results can depend on the batch a row runs in (a batch of one takes another
    kernel: the last bits of a score differ). So every unit here covers whole cells, and a
    cell runs as one array whatever chunks its rows came from: the same batches, the same
    bits. Several cells go in one unit only when ``predict_array_lines`` splits them back into the
    same batches (its chunks of ``max_batch`` rows fall on cell boundaries).
    """
    several = size % model.max_batch == 0
    per_unit = max(size, BLOCK_UNIT_ROWS // size * size)
    cell: list[_Rows | list[Record]] = []
    filled = 0
    for item in items:
        count = len(item.array) if isinstance(item, RecordBlock) else len(item)
        lo = 0
        while lo < count:
            if isinstance(item, RecordBlock) and not filled and several and count - lo >= size:
                hi = lo + min(per_unit, (count - lo) // size * size)
                yield partial(_cell_lines, model, [_Rows(item, lo, hi)], size)
                lo = hi
                continue
            hi = lo + min(size - filled, count - lo)
            cell.append(_Rows(item, lo, hi) if isinstance(item, RecordBlock) else item[lo:hi])
            filled += hi - lo
            lo = hi
            if filled == size:
                yield partial(_cell_lines, model, cell, size)
                cell, filled = [], 0
    if cell:
        yield partial(_cell_lines, model, cell, size)


def _cell_lines(model: LoadedModel, pieces: list[_Rows | list[Record]], size: int) -> _Lines:
    """The lines of consecutive records that start a cell: one array if they can, else records."""
    rows = [piece for piece in pieces if isinstance(piece, _Rows)]
    # Mixed JSON types (bool, int64, float64 blocks) would be promoted together where each
    # record keeps its own, and blocks of different widths do not stack: those cells take the
    # per-record lane.
    kinds = {(piece.block.array.dtype, piece.block.array.shape[1:]) for piece in rows}
    if len(rows) == len(pieces) and len(kinds) == 1:
        arrays = [piece.array for piece in rows]
        array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        lines = _array_lines(model, array, rows[0].block.start + rows[0].lo, block=True)
        if lines is not None:
            return lines
    records = [r for piece in pieces for r in (piece.records() if isinstance(piece, _Rows) else piece)]
    return _Lines.joined(
        [_batch_lines(model, outcomes, samples) for outcomes, samples in _batches(model, records, size)]
    )


def _batch_lines(model: LoadedModel, outcomes: list[Outcome], samples: list[Sample | None]) -> _Lines:
    block = _sample_block(model, outcomes, samples)
    if block is not None:
        written = _array_lines(model, block, outcomes[0].record.index, block=False)
        if written is not None:
            return written
    lines = [outcome_line(outcome) for outcome in _infer(model, outcomes, samples)]
    errors = sum(1 for outcome in outcomes if outcome.error is not None)
    return _Lines(b"".join(lines), len(outcomes), len(outcomes) - errors, errors)


def _array_lines(
    model: LoadedModel, array: np.ndarray[Any, Any], start: int, *, block: bool
) -> _Lines | None:
    """Rows ``start``... of ``array`` run and written as one block (every one a prediction), or
    None where the model refuses them as a whole: the caller then takes them record by record,
    which names the culprit. ``block`` says whether the rows were parsed as a numeric block."""
    try:
        data = model.predict_array_lines(array, start)
    except SinferError:
        return None
    return _Lines(data, len(array), len(array), 0, block=block)


# The smallest micro-batch _sample_block makes a block of: measured on digits images, the block
# writer overtakes the dicts between 32 rows (243 vs 216 us) and 48 (277 vs 284).
SAMPLE_BLOCK_ROWS: Final = 64


def _sample_block(
    model: LoadedModel, outcomes: list[Outcome], samples: list[Sample | None]
) -> np.ndarray[Any, Any] | None:
    """A micro-batch's samples stacked into one array, where its lines can come from the block
    lane's writer; else None.

    Records that are not numeric blocks (images as ``{"b64"}`` JSON, CSV rows read one by one)
    are still prepared one by one, but where every one of them was, and their ids are their
    indices (what ``predict_array_lines`` writes), the batch is run and written as a block is:
    the same samples stacked and run in the same chunks as ``predict_samples`` would, its lines
    written from the score table (~1 us a row) instead of from each prediction's dicts (~4).
    Only from SAMPLE_BLOCK_ROWS records: the block writer's numpy calls cost ~100 us a batch
    whatever its size, so a smaller batch (one image object, a small file) is faster through
    the dicts. tests/unit/test_batch_sample_block.py compares the two routes' bytes.
    """
    if not model.takes_arrays or len(outcomes) < SAMPLE_BLOCK_ROWS:
        return None
    name = model.input_names[0]
    start = outcomes[0].record.index
    arrays = []
    for offset, (outcome, sample) in enumerate(zip(outcomes, samples, strict=True)):
        record = outcome.record
        if (
            sample is None
            or record.index != start + offset
            or type(record.id) is not int
            or record.id != record.index
        ):
            return None
        arrays.append(sample[name])
    try:
        return np.stack(arrays)
    except ValueError:  # samples of different shapes (a dynamic sample axis): record by record
        return None


def outcome_line(outcome: Outcome) -> bytes:
    """An outcome's result line: its prediction, or its error."""
    if outcome.error is None:
        return prediction_line(outcome.record.id, outcome.prediction)
    return error_line(outcome.record.id, outcome.error.code, outcome.error.message)


# How many parsed units may wait for the inference thread. One is not enough: a file's chunks
# and its units do not line up (a 256 KiB chunk of digits CSV is ~1,800 rows, a unit 1,024), so
# the main thread alternates long parses with none, and with one unit ahead each side waited
# for the other in turn.
AHEAD = max(1, int(os.environ.get("SINFER_UNITS_AHEAD", "2")))


# The least share of a record unit's time that ONNX Runtime's runs must take for overlap to
# pay (see _overlapped). Measured on 8x8 digits images (runs ~2% of a unit): overlapped, each
# image took 57-78 us; inline, 48-55.
OVERLAP_MIN_RUN_SHARE: Final = 0.25


class _Unit(Protocol):
    """What a unit of work returns: whether its rows were parsed as a numeric block."""

    @property
    def block(self) -> bool: ...


_U = TypeVar("_U", bound=_Unit)


def _overlapped(
    units: Iterable[Callable[[], _U]], overlap: bool, run_seconds: Callable[[], float] = lambda: 0.0
) -> Iterator[_U]:
    """Each unit's result in order; where it pays, the next units are parsed while one runs.

    The first unit runs inline, and says whether a thread would pay: it does when the two
    sides can run at once, that is when parsing releases the GIL (numeric blocks:
    ``np.fromstring``) or when ONNX Runtime's runs (``run_seconds``, which the model sums) take
    at least OVERLAP_MIN_RUN_SHARE of the unit. Otherwise both sides hold the GIL (json, csv,
    Pillow, formatting), and handing it to and fro costs more than the overlap wins: such a
    file runs inline, as does a file of one unit (one image object, a small file), whose
    cost would mostly be starting the thread. Parsing and running units pause the cyclic GC
    (see :class:`_GcPause`); writing their lines does not.
    """
    iterator = _paused_iteration(units)
    first = next(iterator, None)
    if first is None:
        return
    started, ran = perf_counter(), run_seconds()
    lines = _GC_PAUSE.call(first)
    share = (run_seconds() - ran) / max(perf_counter() - started, 1e-9)
    yield lines
    second = next(iterator, None)
    if second is None:
        return
    if not (overlap and (lines.block or share >= OVERLAP_MIN_RUN_SHARE)):
        yield _GC_PAUSE.call(second)
        for unit in iterator:
            yield _GC_PAUSE.call(unit)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinfer-infer") as pool:
        pending: deque[Future[_U]] = deque([pool.submit(_GC_PAUSE.call, second)])
        for unit in iterator:
            pending.append(pool.submit(_GC_PAUSE.call, unit))
            # Yield what is done, in order; wait only when AHEAD units are already queued.
            while pending and (pending[0].done() or len(pending) > AHEAD):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _paused_iteration(units: Iterable[Callable[[], _U]]) -> Iterator[Callable[[], _U]]:
    """``units``, each made (its records read and parsed) with the cyclic GC paused."""
    iterator = iter(units)
    while True:
        with _GC_PAUSE:
            unit = next(iterator, None)
        if unit is None:
            return
        yield unit


class _GcPause:
    """Pauses Python's cyclic garbage collector while any thread is inside it.

    Why: a unit of a thousand records makes several thousand container objects (parsed JSON
    lists, prediction dicts and their top-k lists) that live until its lines are written.
    With the collector on, they outlive a couple of young-generation collections, are
    promoted to the oldest generation, and every few units that triggers a full collection,
    which walks every object in the process: about 3 us per record for the digits model,
    more than inference and formatting together. None of these objects form reference
    cycles (reference counting frees them as soon as a unit is done), so pausing the
    collector loses nothing; a cycle made meanwhile is merely collected after the pause.
    The pause covers parsing and running units, not writing their lines (the S3 client's
    work, which runs paused only while the inference thread is inside a unit), and nests
    across the two threads: the collector is re-enabled when the last one leaves, and only
    if it was enabled when the first one entered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()

    def call(self, unit: Callable[[], _U]) -> _U:
        with self:
            return unit()


_GC_PAUSE: Final = _GcPause()


def block_columns_ok(model: LoadedModel, header: list[str]) -> bool:
    """Whether CSV rows with this header reach the model as their values in file order.

    The block lane's side of :func:`record_instance`: it must accept a header only where
    ``record_instance`` and ``to_sample`` turn each row into its values in column order.
    """
    spec = model.inputs[0]
    if spec.name in header or header == ["b64"]:
        return False
    return spec.decl.columns is None or tuple(header) == spec.decl.columns


def record_instance(model: LoadedModel, value: Any) -> Any:
    """A record's value as an instance for this model.

    A CSV row (or a JSON object of features) for a single-input model that declares no column
    names is read as its values in file order, e.g. 64 pixel columns for ``digits``.
    """
    if not isinstance(value, dict) or len(model.inputs) != 1:
        return value
    spec = model.inputs[0]
    if spec.decl.columns is not None or spec.name in value or is_b64_object(value):
        return value
    return list(value.values())


def _prepare(model: LoadedModel, record: Record) -> tuple[Outcome, Sample | None]:
    if record.error is not None:
        return Outcome(record, error=record.error), None
    try:
        sample = model.quick_sample(record.value)  # (a b64 image: ~4.5 us less than to_sample)
    except BadImageError as exc:  # (to_sample's error, without decoding the image again)
        error = exc.at(f"record {record.id!r}")
        return Outcome(record, error=RecordError(error.code, error.message)), None
    if sample is not None:
        return Outcome(record), sample
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
    """One :class:`Outcome` per record, in input order.

    Micro-batches are prepared and run as :func:`process_records`' units are (:func:`_overlapped`):
    the first inline, the rest overlapped with preparing the next only where the first showed
    that it pays.
    """
    size = batch_size or _default_batch_size(model)
    units = (partial(_infer_unit, model, o, s) for o, s in _batches(model, records, size))
    for ran in _overlapped(units, overlap, lambda: model.run_seconds):
        yield from ran.outcomes


@dataclass(slots=True)
class _Outcomes:
    """A micro-batch's outcomes: predict_records' unit of work."""

    outcomes: list[Outcome]
    block: bool = False  # (records, never a numeric block)


def _infer_unit(model: LoadedModel, outcomes: list[Outcome], samples: list[Sample | None]) -> _Outcomes:
    return _Outcomes(_infer(model, outcomes, samples))
