"""The benchmark harness runs: every scenario in its tiny mode, the runner, `sinfer bench`.

No timing assertions, ever: numbers on a shared machine drift, and `make bench` reports them
as ratios against baselines measured in the same run. These tests only prove each scenario
executes end to end (tiny inputs; in-process where the real run spawns children) and that its
result serialises into results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import run as bench_run
from benchmarks.common import (
    Config,
    ScenarioResult,
    best_rates,
    interleaved,
    parallel_capacity,
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


def test_best_rates_interleaves_the_cases_and_keeps_each_ones_best() -> None:
    # GIVEN three cases that record when they run
    order: list[str] = []
    cases = {name: (lambda name=name: order.append(name), 10.0) for name in ("a", "b", "c")}

    # WHEN they are measured over three rounds
    rates = best_rates(cases, 3)

    # THEN every case ran once a round, the order rotating, and each has a positive rate
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert set(rates) == {"a", "b", "c"}
    assert all(rate > 0 for rate in rates.values())


def test_rates_by_round_probes_before_each_round_and_keeps_every_rounds_rates() -> None:
    # GIVEN two cases and a probe, all recording when they run
    order: list[str] = []
    cases = {name: (lambda name=name: order.append(name), 10.0) for name in ("a", "b")}

    # WHEN they are measured over three rounds
    rounds = rates_by_round(cases, 3, lambda: order.append("probe"))

    # THEN the probe ran before each round, and each round has every case's rate
    assert order == ["probe", "a", "b", "probe", "b", "a", "probe", "a", "b"]
    assert [set(measured) for measured in rounds] == [{"a", "b"}] * 3
    assert all(rate > 0 for measured in rounds for rate in measured.values())


def test_the_rounds_are_paired_with_the_probe_reading_taken_before_each() -> None:
    # GIVEN four rounds' rates, and the probe's readings before them
    def measured(core: float, parse: float, per_record: float) -> dict[tuple[str, str], float]:
        return {
            ("csv", throughput.CORE): core,
            ("csv", "numpy"): parse,
            ("csv", "sinfer"): parse / 2,
            ("csv", throughput.PER_RECORD): per_record,
        }

    rounds = [measured(90, 100, 4), measured(60, 100, 4), measured(70, 100, 5), measured(95, 100, 5)]
    capacity = [1.9, 1.1, 1.3, 2.0]

    # WHEN the rounds' ratios are paired with the readings
    ratios = {"CSV": throughput._round_ratios(rounds, "csv", ["numpy", "sinfer"])}
    paired = throughput._capacity_pairing(capacity, ratios)

    # THEN each round's ratio is its own core over its fastest parser, spread and median are
    # given (the median by nearest rank), and the ratio rises with the reading: rank correlation +1
    parse_only = paired["CSV"]["core / parse-only"]
    assert parse_only["per_round"] == [0.9, 0.6, 0.7, 0.95]
    assert (parse_only["lowest"], parse_only["median"], parse_only["highest"]) == (0.6, 0.9, 0.95)
    assert parse_only["rank_correlation"] == 1.0
    per_record = paired["CSV"]["core / per-record"]
    assert per_record["per_round"] == [22.5, 15.0, 14.0, 19.0]
    assert per_record["rank_correlation"] == 0.6
    (note,) = throughput._pairing_notes(paired)
    assert note == (
        "CSV, round by round: core / parse-only 0.60x-0.95x (median 0.90x), core / per-record "
        "14.0x-22.5x (median 19.0x); rank correlation with the probe's reading +1.00 and +0.60"
    )


def test_rank_correlation_takes_ties_and_flat_inputs() -> None:
    assert throughput._spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == -1.0
    assert throughput._spearman([1.0, 1.0, 2.0], [5.0, 5.0, 9.0]) == pytest.approx(1.0)
    assert throughput._spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_the_parallel_capacity_probe_gives_a_share_per_round() -> None:
    # (no timing bound: only that each round measured two children against one)
    capacity = parallel_capacity(rounds=2, spins=20_000)
    assert len(capacity) == 2
    assert all(isinstance(c, float) and c > 0 for c in capacity)


def test_sinfer_bench_finds_this_checkout_and_passes_options_through(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]

    assert bench_cli.find_checkout(root / "benchmarks" / "scenarios") == root
    args = argparse.Namespace(quick=True, only=["latency"], skip_build=True, output=None, checkout=None)
    assert bench_cli.runner_args(args) == ["--quick", "--only", "latency", "--skip-build"]


def test_sinfer_bench_outside_a_checkout_says_what_it_needs(tmp_path: Path) -> None:
    args = argparse.Namespace(quick=False, only=[], skip_build=False, output=None, checkout=tmp_path)

    with pytest.raises(CliError, match="source checkout"):
        bench_cli.run(args)
