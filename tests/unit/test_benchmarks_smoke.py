"""The benchmark harness runs: every scenario in its tiny mode, the runner, `sinfer bench`.

No timing assertions, ever: numbers on a shared machine drift, and `make bench` reports them
as ratios against baselines measured in the same run. These tests only prove each scenario
executes end to end (tiny inputs; in-process where the real run spawns children) and that its
result serialises into results.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from benchmarks import common
from benchmarks import run as bench_run
from benchmarks.common import (
    Config,
    ScenarioResult,
    best_of,
    interleaved,
    percentile,
    rates_by_round,
    render_table,
)
from benchmarks.scenarios import SCENARIOS, throughput
from sinfer.cli import CliError
from sinfer.cli import bench as bench_cli


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_runs_in_tiny_mode(name: str, tmp_path: Path) -> None:
    # GIVEN the smallest inputs WHEN the scenario runs
    result = SCENARIOS[name].run(Config(mode="tiny", workdir=tmp_path, skip_build=True))

    # THEN it finishes, and what it reports serialises and prints
    assert isinstance(result, ScenarioResult)
    assert not result.details.get("failed")
    assert json.loads(json.dumps(result.to_json()))["title"] == SCENARIOS[name].TITLE
    assert result.title in render_table([result])


def test_runner_writes_results_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "results.json"

    code = bench_run.main(
        ["--tiny", "--only", "deployment_size", "--workdir", str(tmp_path), "--output", str(output)]
    )

    assert code == 0
    doc = json.loads(output.read_text())
    assert set(doc["scenarios"]) == {"deployment_size"}
    assert {"cpu", "cores", "python", "versions"} <= set(doc["machine"])
    assert "targets met" in capsys.readouterr().out


def test_interleaved_timing_gives_every_case_its_samples() -> None:
    samples = interleaved({"a": lambda: None, "b": lambda: sum(range(10))}, rounds=3, per_round=4, warmup=1)

    assert {name: len(values) for name, values in samples.items()} == {"a": 12, "b": 12}
    assert percentile([3, 1, 2], 50) == 2


def test_rates_by_round_interleaves_the_cases_rotating_their_order() -> None:
    # GIVEN three cases that record when they run
    order: list[str] = []
    cases = {name: (lambda name=name: order.append(name), 10.0) for name in ("a", "b", "c")}

    # WHEN they are measured over three rounds
    rounds = rates_by_round(cases, 3)

    # THEN every case ran once a round, the order rotating, and each round has every rate
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [list(measured) for measured in rounds] == [["a", "b", "c"]] * 3
    assert all(rate > 0 for measured in rounds for rate in measured.values())


def test_rates_by_round_keeps_every_rounds_rates_and_best_of_the_best_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a clock each case moves on by its own durations, round by round
    clock = [0.0]
    durations = {"a": [1.0, 4.0], "b": [2.0, 0.5]}
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])

    def case(name: str) -> None:
        clock[0] += durations[name].pop(0)

    cases = {"a": (lambda: case("a"), 10.0), "b": (lambda: case("b"), 10.0)}

    # WHEN they are measured over two rounds
    rounds = rates_by_round(cases, 2)

    # THEN each round has each case's amount over its duration, and best_of the higher of each
    assert rounds == [{"a": 10.0, "b": 5.0}, {"a": 2.5, "b": 20.0}]
    assert best_of(rounds) == {"a": 10.0, "b": 20.0}


def _rates(core: float, one_thread: float, parse: float, per_record: float) -> dict[tuple[str, str], float]:
    return {
        ("csv", throughput.CORE): core,
        ("csv", throughput.ONE_THREAD): one_thread,
        ("csv", "numpy"): parse,
        ("csv", "sinfer"): parse / 2,
        ("csv", throughput.PER_RECORD): per_record,
    }


def test_the_rounds_ratios_are_each_rounds_own_with_their_spread() -> None:
    # GIVEN three rounds of rates
    rounds = [_rates(90, 60, 100, 4), _rates(60, 50, 100, 4), _rates(70, 50, 100, 5)]

    # WHEN each round's ratios are taken, and their spread
    spreads = throughput._spreads({"CSV": throughput._round_ratios(rounds, "csv", ["numpy", "sinfer"])})

    # THEN each ratio is the round's core over its fastest parser, its per-record and its one
    # thread, with the lowest, median and highest of them
    parse_only = spreads["CSV"]["core / parse-only"]
    assert parse_only == {"per_round": [0.9, 0.6, 0.7], "lowest": 0.6, "median": 0.7, "highest": 0.9}
    assert spreads["CSV"]["core / per-record"]["per_round"] == [22.5, 15.0, 14.0]
    assert spreads["CSV"]["core / one thread"]["per_round"] == [1.5, 1.2, 1.4]
    (note,) = throughput._spread_notes(spreads)
    assert note == (
        "CSV, round by round: core / parse-only 0.60x-0.90x (median 0.70x), core / per-record "
        "14.0x-22.5x (median 15.0x), core / one thread 1.20x-1.50x (median 1.40x)"
    )


def test_the_overlap_note_says_what_the_second_thread_gave_and_what_the_targets_need() -> None:
    speedups = {
        "CSV": {
            "one_thread_records_per_s": 300_000,
            "two_threads_over_one": 1.3,
            "needed_for_parse_target": 1.36,
            "needed_for_per_record_target": 1.5,
        }
    }

    (note,) = throughput._overlap_notes(speedups)

    assert note == (
        "CSV: two threads run the pipeline at 1.30x its one-thread rate (300,000 rows/s, best of "
        "rounds); 0.8x of parse-only needs 1.36x, 20x per-record 1.50x"
    )


def test_sinfer_bench_finds_this_checkout_and_passes_options_through(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]

    assert bench_cli.find_checkout(root / "benchmarks" / "scenarios") == root
    args = argparse.Namespace(quick=True, only=["latency"], skip_build=True, output=None, checkout=None)
    assert bench_cli.runner_args(args) == ["--quick", "--only", "latency", "--skip-build"]


def test_sinfer_bench_outside_a_checkout_says_what_it_needs(tmp_path: Path) -> None:
    args = argparse.Namespace(quick=False, only=[], skip_build=False, output=None, checkout=tmp_path)

    with pytest.raises(CliError, match="source checkout"):
        bench_cli.run(args)


def test_the_readme_states_the_committed_run() -> None:
    # The README's Performance section is written by hand from benchmarks/results.json: its
    # count of targets met, their total, and the run's time must be the committed run's.
    root = Path(__file__).resolve().parents[2]
    results = json.loads((root / "benchmarks" / "results.json").read_text())
    readme = (root / "README.md").read_text()
    claim = re.search(
        r"\*\*(\d+) of (\d+) targets are met in the committed run\*\* \((\d{4}-\d\d-\d\d) (\d\d:\d\d) UTC",
        readme.replace("\n", " "),
    )
    assert claim, "README Performance must state the committed run's targets and time"
    met, total, day, clock = claim.groups()
    assert results["mode"] == "full"
    assert (int(met), int(total)) == (
        results["targets"]["met"],
        results["targets"]["met"] + results["targets"]["missed"],
    )
    assert results["generated"].startswith(f"{day}T{clock}")


def test_the_upload_overlap_ab_runs_and_puts_the_writer_back() -> None:
    # GIVEN the standalone A/B's smallest run (no simulated wait)
    from benchmarks import upload_overlap
    from sinfer.records.writer import S3JsonlWriter

    real = (S3JsonlWriter._upload_part, S3JsonlWriter.__init__)
    seconds = upload_overlap.measure(rows=300, rounds=2, latency_s=0.0, bytes_per_s=1e12)

    # THEN both sides ran each round (it checks every output's line count) and nothing stays patched
    assert [len(seconds[True]), len(seconds[False])] == [2, 2]
    assert all(value > 0 for values in seconds.values() for value in values)
    assert (S3JsonlWriter._upload_part, S3JsonlWriter.__init__) == real
