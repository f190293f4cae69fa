"""process_records pauses the cyclic GC while it parses and runs units, and always restores it.

The pause is a speed measure (see ``sinfer.inference.batch._GcPause``); what matters for
correctness is that the collector's state after a file is the state before it, however the
file ends, and that nested or concurrent pauses re-enable it only once all have left.
"""

from __future__ import annotations

import gc
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from onnx import TensorProto

from sinfer.errors import UnreadableInputError
from sinfer.inference.batch import _GcPause, process_records
from sinfer.inference.model import LoadedModel
from sinfer.records import readers as readers_module
from tests.unit.onnx_graphs import identity, load

CSV = b"a,b,c\n" + b"".join(b"%d,%d,%d\n" % (i, i + 1, i + 2) for i in range(300))
JSONL = b"".join(b'{"id": "r%d", "instance": [%d, 1, 2]}\n' % (i, i) for i in range(300))


class Sink:
    def __init__(self) -> None:
        self.lines = 0
        self.collector_on: list[bool] = []

    def write_lines(self, data: bytes, lines: int) -> None:
        self.lines += lines
        self.collector_on.append(gc.isenabled())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    folder: Path = tmp_path_factory.mktemp("store")
    identity(folder, "float3", TensorProto.FLOAT, ["N", 3])
    return load(folder, "float3")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers_module, "BLOCK_BYTES", 256)  # many blocks, many units


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize(("data", "name"), [(CSV, "x.csv"), (JSONL, "x.jsonl")])
def test_the_collector_is_on_again_after_a_file(
    model: LoadedModel, data: bytes, name: str, overlap: bool
) -> None:
    # GIVEN the collector on, WHEN a file of many units (block or record lane) is processed
    gc.enable()
    sink = Sink()
    counts = process_records(model, io.BytesIO(data), name, sink, batch_size=16, overlap=overlap)
    # THEN every record is written and the collector is on again
    assert counts["records"] == sink.lines == 300
    assert gc.isenabled()
    if not overlap:  # nothing else runs while lines are written: the collector is on for it
        assert all(sink.collector_on)


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("overlap", [True, False])
def test_a_collector_that_was_off_stays_off(model: LoadedModel, overlap: bool) -> None:
    gc.disable()
    process_records(model, io.BytesIO(CSV), "x.csv", Sink(), batch_size=16, overlap=overlap)
    assert not gc.isenabled()


@pytest.mark.parametrize("overlap", [True, False])
def test_the_collector_is_on_again_when_progress_stops_the_file(model: LoadedModel, overlap: bool) -> None:
    gc.enable()

    def out_of_time(records: int) -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        process_records(
            model, io.BytesIO(CSV), "x.csv", Sink(), batch_size=16, overlap=overlap, progress=out_of_time
        )
    assert gc.isenabled()


@pytest.mark.parametrize("overlap", [True, False])
def test_the_collector_is_on_again_when_reading_fails(model: LoadedModel, overlap: bool) -> None:
    import gzip

    gc.enable()
    truncated = gzip.compress(CSV)[:-40]
    with pytest.raises(UnreadableInputError):
        process_records(model, io.BytesIO(truncated), "x.csv.gz", Sink(), batch_size=16, overlap=overlap)
    assert gc.isenabled()


def test_pauses_nest_across_threads() -> None:
    gc.enable()
    pause = _GcPause()
    inside, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with pause:
            inside.set()
            release.wait(5)

    with pause:
        assert not gc.isenabled()
        worker = threading.Thread(target=other_thread)
        worker.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread is still inside
    release.set()
    worker.join(5)
    assert gc.isenabled()


@pytest.mark.parametrize("overlap", [True, False])
def test_units_run_with_the_collector_paused(
    model: LoadedModel, overlap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.enable()
    seen: list[bool] = []
    predict_array_lines = model.predict_array_lines

    def spy(array: object, start: int) -> bytes:
        seen.append(gc.isenabled())
        return predict_array_lines(array, start)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "predict_array_lines", spy)
    process_records(model, io.BytesIO(CSV), "x.csv", Sink(), batch_size=16, overlap=overlap)
    assert seen
    assert not any(seen)
    assert gc.isenabled()
