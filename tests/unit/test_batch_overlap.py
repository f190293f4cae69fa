"""process_records' and predict_records' overlap: units are parsed ahead of the inference
thread, results come in order.

``batch._overlapped`` runs the first unit inline; where that unit shows overlap can pay (its
rows were a numeric block, or ONNX Runtime's runs took a large enough share of it), it runs
each further unit (inference and formatting) on one worker thread while the main thread
parses the next ones, keeping at most ``AHEAD`` parsed units waiting. These tests drive it with
units that record when they were made, where and in what order they ran, so the ordering, the
bound and the choice are checked directly rather than through timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from sinfer.errors import InvalidInputError
from sinfer.inference import batch
from sinfer.inference.batch import _Lines, _overlapped
from sinfer.records.types import Record


class Recorder:
    def __init__(
        self, count: int, gate: threading.Event | None = None, block: bool = True, run: float = 0.0
    ) -> None:
        self.count = count
        self.gate = gate  # holds every unit but the first (which runs inline)
        self.block = block  # what the units say of their rows
        self.run = run  # seconds of "ONNX Runtime" each unit adds to run_seconds
        self.run_seconds = 0.0
        self.made: list[int] = []
        self.ran: list[int] = []
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def units(self) -> Iterator[Callable[[], _Lines]]:
        for i in range(self.count):
            with self.lock:
                self.made.append(i)
            yield self._unit(i)

    def _unit(self, i: int) -> Callable[[], _Lines]:
        def run() -> _Lines:
            if self.gate is not None and i:
                self.gate.wait(5)
            with self.lock:
                self.ran.append(i)
                self.threads.append(threading.current_thread().name)
            self.run_seconds += self.run
            return _Lines(b"%d\n" % i, 1, 1, 0, block=self.block)

        return run


@pytest.mark.parametrize("ahead", [1, 2, 3])
@pytest.mark.parametrize("overlap", [True, False])
def test_results_come_in_order_whatever_the_lookahead(
    monkeypatch: pytest.MonkeyPatch, ahead: int, overlap: bool
) -> None:
    monkeypatch.setattr(batch, "AHEAD", ahead)
    recorder = Recorder(40)
    results = [lines.data for lines in _overlapped(recorder.units(), overlap)]
    assert results == [b"%d\n" % i for i in range(40)]
    assert recorder.ran == list(range(40))
    # the first inline; the rest on the inference thread when overlapping
    main = threading.current_thread().name
    assert recorder.threads[0] == main
    assert all((name != main) == overlap for name in recorder.threads[1:])


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_the_main_thread_parses_at_most_ahead_units_past_the_running_one(
    monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    # GIVEN an inference thread held on its first unit (the file's second: the first runs inline)
    monkeypatch.setattr(batch, "AHEAD", ahead)
    gate = threading.Event()
    recorder = Recorder(20, gate)
    results = _overlapped(recorder.units(), True)
    assert next(results).data == b"0\n"
    waiting = threading.Thread(target=lambda: next(results))
    waiting.start()
    # WHEN the main thread has parsed all it may (it then waits for the oldest unit)
    waiting.join(0.5)
    made_while_blocked = len(recorder.made)
    gate.set()
    waiting.join(5)
    rest = list(results)
    # THEN it had made the inline unit, the running one, AHEAD waiting ones and the one it
    # submitted last
    assert made_while_blocked == ahead + 2
    assert len(rest) == 18


@pytest.mark.parametrize(
    ("block", "run", "threaded"),
    [
        pytest.param(True, 0.0, True, id="numeric blocks: parsing releases the GIL"),
        pytest.param(False, 0.0, False, id="records, a model that costs nothing: both sides hold the GIL"),
        pytest.param(False, 1.0, True, id="records, a model that takes most of a unit"),
    ],
)
def test_the_first_unit_decides_whether_the_rest_overlap(block: bool, run: float, threaded: bool) -> None:
    # GIVEN units that say how they were parsed and how long "ONNX Runtime" ran in each
    recorder = Recorder(6, block=block, run=run)

    # WHEN they go through the loop
    results = [lines.data for lines in _overlapped(recorder.units(), True, lambda: recorder.run_seconds)]

    # THEN every result comes in order, and units after the first ran on a second thread
    # only where the first showed that overlapping pays
    assert results == [b"%d\n" % i for i in range(6)]
    main = threading.current_thread().name
    assert recorder.threads[0] == main
    assert {name != main for name in recorder.threads[1:]} == {threaded}


def test_a_file_of_one_unit_starts_no_thread() -> None:
    recorder = Recorder(1)
    assert [lines.data for lines in _overlapped(recorder.units(), True)] == [b"0\n"]
    assert recorder.threads == [threading.current_thread().name]


# --- predict_records (the SageMaker container's loop) takes the same decisions ---------------


class _Model:
    """The little of a LoadedModel that _batches and _infer use, with "ONNX Runtime" taking
    ``run`` seconds a micro-batch (summed into run_seconds, as LoadedModel does)."""

    takes_arrays = False
    loops = False
    max_batch = 4

    def __init__(self, run: float, fail_on: int | None = None) -> None:
        self.run = run
        self.fail_on = fail_on
        self.run_seconds = 0.0
        self.threads: list[str] = []

    def quick_sample(self, instance: object) -> None:
        return None

    def to_sample(self, instance: int, where: str) -> dict[str, int]:
        if instance == self.fail_on:
            raise InvalidInputError(f"{where}: not this one")
        return {"x": instance}

    def predict_samples(self, samples: list[dict[str, int]]) -> list[int]:
        self.threads.append(threading.current_thread().name)
        self.run_seconds += self.run
        return [sample["x"] * 10 for sample in samples]


@pytest.mark.parametrize(("run", "threaded"), [(0.0, False), (1.0, True)], ids=["cheap", "costly"])
def test_predict_records_overlaps_only_where_the_first_batch_pays(run: float, threaded: bool) -> None:
    # GIVEN 10 records in micro-batches of 4, the sixth one bad
    model = _Model(run, fail_on=5)
    records = [Record(i, f"r{i}", i) for i in range(10)]

    # WHEN they are predicted
    outcomes = list(batch.predict_records(model, records, batch_size=4))  # type: ignore[arg-type]

    # THEN every record has its outcome, in order, the bad one an error; and micro-batches after
    # the first ran on a second thread only where ONNX Runtime took most of the first
    assert [o.record.id for o in outcomes] == [f"r{i}" for i in range(10)]
    assert [o.prediction for o in outcomes] == [i * 10 if i != 5 else None for i in range(10)]
    assert outcomes[5].error is not None
    assert "not this one" in outcomes[5].error.message
    main = threading.current_thread().name
    assert model.threads[0] == main
    assert {name != main for name in model.threads[1:]} == {threaded}
