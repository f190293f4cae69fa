"""The scenarios of `make bench`, in the order they run: one module per scenario.

Each module has ``NAME``, ``TITLE`` and ``run(config) -> ScenarioResult``. Scenarios that need
a fresh process (cold start, peak memory) spawn children, except in the ``tiny`` mode the unit
test uses, where they run the same code in-process to prove it executes.
"""

from __future__ import annotations

from types import ModuleType

from benchmarks.scenarios import batch_prep, cold_start, deployment_size, latency, memory, throughput

SCENARIOS: dict[str, ModuleType] = {
    module.NAME: module for module in (latency, cold_start, throughput, memory, batch_prep, deployment_size)
}

__all__ = ["SCENARIOS"]
