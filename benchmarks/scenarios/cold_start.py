"""Scenario 2: cold start — a fresh process serving its first request.

* **handler**: a fresh ``python -c`` that imports functions/predict_api/app.py and serves one
  KServe v1 request for breast_cancer (model loaded from the store, sha256 checked, session
  built, the EMF metric written). The prediction takes predict_api's fast path, so Powertools,
  the X-Ray SDK and botocore are never imported (the child reports what was).
  The child runs a copy of the sinfer package and the handler with their bytecode compiled
  beforehand, as numpy's and onnxruntime's already are in the virtualenv: this machine sets
  PYTHONDONTWRITEBYTECODE, so the checkout itself would be compiled from source at every start
  (~35 ms), which no baseline pays. That case is measured too ("not precompiled"); a Lambda
  layer should ship bytecode for the same reason.
* **baseline**: a fresh ``python -c`` that imports numpy and onnxruntime, creates an
  ``InferenceSession`` for the same model.onnx and runs it once on the same instance.

Measured from just before the process is spawned to the moment the response exists (the
child prints ``time.monotonic()`` then, a clock shared by every process), so interpreter
start-up counts for both and interpreter tear-down for neither. Pairs run interleaved and the
medians are compared. One more handler run under ``python -X importtime`` gives the import
cost by top-level package, and each child reports which heavy packages were loaded after the
import and after the first request: what is lazy.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import (
    MODELS,
    PEAK_RSS_SOURCE,
    ROOT,
    Check,
    Config,
    Row,
    ScenarioResult,
    median,
    run_child,
)
from benchmarks.scenarios._shared import breast_cancer_rows

NAME = "cold_start"
TITLE = "2. Cold start (fresh process: import + first request)"
TARGET_RATIO = 1.2
# Packages whose presence after import / after the first request says what is lazy.
WATCHED = (
    "numpy",
    "orjson",
    "aws_lambda_powertools",
    "onnxruntime",
    "boto3",
    "botocore",
    "PIL",
    "aws_xray_sdk",
    "pydantic",
    "jmespath",
    "yaml",
    "sinfer.inference.model",
    "sinfer.jobs.api",
    "sinfer.batch",
    "sinfer.api.openapi",
)

HANDLER_CHILD = """
import json, os, sys, time
from functions.predict_api.app import lambda_handler
imported_at = time.monotonic()
after_import = sorted(m for m in WATCHED if m in sys.modules)
packages_at_import = sorted({m.split(".")[0] for m in sys.modules})
class Context:
    function_name = "sinfer-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sinfer-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 29000
response = lambda_handler(json.loads(os.environ["BENCH_EVENT"]), Context())
served_at = time.monotonic()
assert response["statusCode"] == 200, response
report = {
    "served_at": served_at,
    "sinfer_from": sys.modules["sinfer"].__file__,
    "peak_rss_mb": peak_rss_mb(),
    "imported_at": imported_at,
    "after_import": after_import,
    "after_request": sorted(m for m in WATCHED if m in sys.modules),
    "packages_at_import": packages_at_import,
    "packages_after_request": sorted({m.split(".")[0] for m in sys.modules}),
}
sys.stdout.write("\\n" + json.dumps(report) + "\\n")
"""

BASELINE_CHILD = """
import json, os, sys, time
import numpy as np
import onnxruntime as ort
imported_at = time.monotonic()
session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])
x = np.asarray(json.loads(os.environ["BENCH_INSTANCES"]), dtype=np.float32)
outputs = session.run(None, {session.get_inputs()[0].name: x})
served_at = time.monotonic()
report = {"served_at": served_at, "imported_at": imported_at, "peak_rss_mb": peak_rss_mb()}
sys.stdout.write("\\n" + json.dumps(report) + "\\n")
"""


def _child_env() -> dict[str, str]:
    from sinfer.local.apigw import rest_event

    instances = breast_cancer_rows(1)
    body = json.dumps({"instances": instances}).encode()
    event = rest_event("POST", "/v1/models/breast_cancer:predict", body, {"Content-Type": "application/json"})
    return {
        "BENCH_EVENT": json.dumps(event),
        "BENCH_INSTANCES": json.dumps(instances),
        "BENCH_MODEL": str(MODELS / "breast_cancer" / "1" / "model.onnx"),
    }


def _code(template: str) -> str:
    # The child's own time starts at its first line; the helpers it defines import nothing.
    return f"WATCHED = {WATCHED!r}\n{PEAK_RSS_SOURCE}\n" + template


def precompiled_copy(into: Path) -> Path:
    """sinfer and the predict_api handler copied under ``into`` with their bytecode compiled.

    A child started there (cwd first on ``sys.path``) imports these copies, not the checkout.
    """
    import compileall
    import shutil

    root = into / "predict_api_precompiled"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(ROOT / "layers" / "sinfer" / "sinfer", root / "sinfer")
    (root / "functions" / "predict_api").mkdir(parents=True)
    for rel in ("functions/__init__.py", "functions/predict_api/__init__.py", "functions/predict_api/app.py"):
        shutil.copyfile(ROOT / rel, root / rel)
    if not compileall.compile_dir(root, quiet=1):
        raise RuntimeError(f"could not compile {root}")
    return root


def _spawn(
    template: str, env: dict[str, str], extra: tuple[str, ...] = (), cwd: Path = ROOT
) -> dict[str, Any]:
    spawned_at = time.monotonic()
    child = run_child([sys.executable, *extra, "-c", _code(template)], env=env, cwd=cwd)
    report: dict[str, Any] = child.json()
    report["to_response_s"] = report["served_at"] - spawned_at
    report["to_import_s"] = report["imported_at"] - spawned_at
    report["wall_s"] = child.seconds
    report["stderr"] = child.stderr
    return report


_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def importtime_by_package(stderr: str) -> dict[str, float]:
    """Milliseconds of import time (self time summed) per top-level package."""
    totals: dict[str, float] = defaultdict(float)
    for match in _IMPORTTIME.finditer(stderr):
        totals[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return dict(sorted(totals.items(), key=lambda kv: kv[1], reverse=True))


def _in_process(env: dict[str, str]) -> None:
    """Tiny mode: run both children's code here, to prove it executes (no subprocess)."""
    import contextlib
    import io

    from benchmarks.scenarios._shared import patched_environ

    with patched_environ(env):
        for template in (HANDLER_CHILD, BASELINE_CHILD):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(_code(template), "<bench-child>", "exec"), {"__name__": "__bench__"})
            json.loads(out.getvalue().strip().splitlines()[-1])


def run(config: Config) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    env = _child_env()
    if config.tiny:
        from benchmarks.scenarios._shared import bench_env

        with bench_env():
            _in_process(env)
        result.notes.append("tiny mode: child code ran in-process; nothing timed")
        return result
    pairs = config.pick(15, 5, 1)
    layer = precompiled_copy(config.workdir)
    _spawn(BASELINE_CHILD, env)  # warm the page cache for every child, so the first round is not special
    _spawn(HANDLER_CHILD, env, cwd=layer)
    _spawn(HANDLER_CHILD, env)
    handler: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    source: list[dict[str, Any]] = []
    for i in range(pairs):
        order = [
            (HANDLER_CHILD, handler, layer),
            (BASELINE_CHILD, baseline, ROOT),
            (HANDLER_CHILD, source, ROOT),
        ]
        for template, into, cwd in order if i % 2 == 0 else reversed(order):
            into.append(_spawn(template, env, cwd=cwd))
    assert str(handler[0]["sinfer_from"]).startswith(str(layer)), handler[0]["sinfer_from"]
    h = median([r["to_response_s"] for r in handler]) * 1000
    b = median([r["to_response_s"] for r in baseline]) * 1000
    src = median([r["to_response_s"] for r in source]) * 1000
    h_import = median([r["to_import_s"] for r in handler]) * 1000
    b_import = median([r["to_import_s"] for r in baseline]) * 1000
    ratio = h / b
    result.rows += [
        Row("spawn -> first response", "median", h, "ms", "ort baseline", b, ratio),
        Row("spawn -> imports done", "median", h_import, "ms", "ort baseline", b_import, h_import / b_import),
        Row(
            "first request after import",
            "median",
            h - h_import,
            "ms",
            "session+run",
            b - b_import,
            (h - h_import) / (b - b_import),
        ),
        Row(
            "spawn -> first response, sinfer not precompiled", "median", src, "ms", "ort baseline", b, src / b
        ),
        Row(
            "peak RSS",
            "median",
            median([r["peak_rss_mb"] for r in handler]),
            "MB",
            "ort baseline",
            median([r["peak_rss_mb"] for r in baseline]),
        ),
    ]
    result.checks.append(
        Check(
            "cold start handler / onnxruntime baseline",
            ratio,
            f"<= {TARGET_RATIO}",
            ratio <= TARGET_RATIO,
            "x",
        )
    )
    profiled = _spawn(HANDLER_CHILD, env, ("-X", "importtime"), cwd=layer)
    by_package = importtime_by_package(profiled["stderr"])
    first = handler[0]
    lazy = sorted(set(first["after_request"]) - set(first["after_import"]))
    lazy_packages = sorted(set(first["packages_after_request"]) - set(first["packages_at_import"]))
    result.details = {
        "pairs": pairs,
        "handler_to_response_ms": [round(r["to_response_s"] * 1000, 1) for r in handler],
        "baseline_to_response_ms": [round(r["to_response_s"] * 1000, 1) for r in baseline],
        "not_precompiled_to_response_ms": [round(r["to_response_s"] * 1000, 1) for r in source],
        "median_ms": {
            "handler": round(h, 1),
            "baseline": round(b, 1),
            "handler_not_precompiled": round(src, 1),
        },
        "imports_done_median_ms": {"handler": round(h_import, 1), "baseline": round(b_import, 1)},
        "importtime_ms_by_package": {k: round(v, 1) for k, v in list(by_package.items())[:15]},
        "loaded_after_import": first["after_import"],
        "loaded_only_by_first_request": lazy,
        "packages_loaded_by_first_request": lazy_packages,
        "packages_loaded_by_a_prediction": first["packages_after_request"],
        "never_loaded": sorted(set(WATCHED) - set(first["after_request"])),
    }
    top = ", ".join(f"{k} {v:.0f} ms" for k, v in list(by_package.items())[:8])
    result.notes.append(f"import time by package (-X importtime, self time summed): {top}")
    result.notes.append(f"lazy (loaded by the first request, not the import): {', '.join(lazy) or 'none'}")
    result.notes.append(f"never loaded by a predict request: {', '.join(result.details['never_loaded'])}")
    result.notes.append(
        f"sinfer compiled from source at start (PYTHONDONTWRITEBYTECODE, no bytecode): {src:.0f} ms "
        f"({src / b:.2f}x); ship the layer with bytecode"
    )
    return result
