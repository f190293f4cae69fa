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
    render_table,
)
from benchmarks.scenarios import SCENARIOS
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
