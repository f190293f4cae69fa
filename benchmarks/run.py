"""`make bench`: every scenario against its baselines, a table, and benchmarks/results.json.

Usage::

    python benchmarks/run.py                 # full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick         # smaller inputs and fewer repeats
    python benchmarks/run.py --only latency --only cold_start
    python benchmarks/run.py --skip-build    # deployment size: do not run `make build`

A full run of every scenario writes benchmarks/results.json; partial or quick runs write it
only when given ``--output``. See benchmarks/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

# Run as a script (`python benchmarks/run.py`), the repo root is not on sys.path, and the
# scenarios import the handlers (functions/...) and scripts/ from it, as the tests do.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, Config, Mode, ScenarioResult, machine, render_table  # noqa: E402
from benchmarks.scenarios import SCENARIOS  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats (a smoke run)")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # what the unit test runs
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=list(SCENARIOS),
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--skip-build", action="store_true", help="never run `make build` for the size check")
    parser.add_argument(
        "--output", type=Path, help="write results here (default: results.json on a full run)"
    )
    parser.add_argument("--workdir", type=Path, help="where to generate input files (default: a temp dir)")
    return parser.parse_args(argv)


def run_scenarios(names: Sequence[str], config: Config) -> list[ScenarioResult]:
    results = []
    for name in names:
        module = SCENARIOS[name]
        print(f"-- {module.TITLE} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result: ScenarioResult = module.run(config)
        except Exception as exc:
            traceback.print_exc()
            result = ScenarioResult(name, module.TITLE, notes=[f"FAILED: {type(exc).__name__}: {exc}"])
            result.details["failed"] = True
        result.seconds = time.perf_counter() - start
        print(f"   done in {result.seconds:.0f}s", file=sys.stderr, flush=True)
        results.append(result)
    return results


def report(results: Sequence[ScenarioResult], config: Config) -> dict[str, object]:
    checks = [{"scenario": r.name, **{k: v for k, v in vars(c).items()}} for r in results for c in r.checks]
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": config.mode,
        "machine": machine(),
        "seconds": round(sum(r.seconds for r in results), 1),
        "targets": {"met": sum(c["met"] for c in checks), "missed": sum(not c["met"] for c in checks)},
        "checks": checks,
        "scenarios": {r.name: r.to_json() for r in results},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode: Mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    names = args.only or list(SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="sinfer-bench-") as tmp:
        config = Config(mode=mode, workdir=args.workdir or Path(tmp), skip_build=args.skip_build)
        config.workdir.mkdir(parents=True, exist_ok=True)
        info = machine()
        print(
            f"sinfer benchmarks ({mode}) on {info['cpu']}, {info['usable_cores']} cores, "
            f"Python {info['python']}, onnxruntime {info['versions'].get('onnxruntime')}",
            file=sys.stderr,
        )
        results = run_scenarios(names, config)
    doc = report(results, config)
    print(render_table(results))
    print()
    targets = doc["targets"]
    assert isinstance(targets, dict)
    print(f"targets met: {targets['met']}, missed: {targets['missed']}; total {doc['seconds']}s")
    output = args.output or (RESULTS if mode == "full" and not args.only else None)
    if output is not None:
        output.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {output}")
    failed = any(r.details.get("failed") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
