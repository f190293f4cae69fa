"""process_records' overlap: units are parsed ahead of the inference thread, results come in order.

``batch._overlapped`` runs each unit (inference and formatting) on one worker thread while the
main thread parses the next ones, keeping at most ``AHEAD`` parsed units waiting. These tests
drive it with units that record when they were made and run, so the ordering and the bound
are checked directly rather than through timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from sinfer.inference import batch
from sinfer.inference.batch import _Lines, _overlapped


class Recorder:
    def __init__(self, count: int, gate: threading.Event | None = None) -> None:
        self.count = count
        self.gate = gate
        self.made: list[int] = []
        self.ran: list[int] = []
        self.lock = threading.Lock()

    def units(self) -> Iterator[Callable[[], _Lines]]:
        for i in range(self.count):
            with self.lock:
                self.made.append(i)
            yield self._unit(i)

    def _unit(self, i: int) -> Callable[[], _Lines]:
        def run() -> _Lines:
            if self.gate is not None:
                self.gate.wait(5)
            with self.lock:
                self.ran.append(i)
            return _Lines(b"%d\n" % i, 1, 1, 0)

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


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_the_main_thread_parses_at_most_ahead_units_past_the_running_one(
    monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    # GIVEN an inference thread held on its first unit
    monkeypatch.setattr(batch, "AHEAD", ahead)
    gate = threading.Event()
    recorder = Recorder(20, gate)
    results = _overlapped(recorder.units(), True)
    waiting = threading.Thread(target=lambda: next(results))
    waiting.start()
    # WHEN the main thread has parsed all it may (it then waits for the oldest unit)
    waiting.join(0.5)
    made_while_blocked = len(recorder.made)
    gate.set()
    waiting.join(5)
    rest = list(results)
    # THEN it had made the running unit, AHEAD waiting ones and the one it submitted last
    assert made_while_blocked == ahead + 1
    assert len(rest) == 19
