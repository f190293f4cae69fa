"""Scenario 6: unzipped size of the built layer and each function against Lambda's 250 MB.

The measuring is scripts/deployment_size.py's (the same code `make build` reports with); this
scenario only makes sure a build exists (`make build` when .aws-sam/build is missing, unless
``--skip-build``) and turns the report into rows and checks. In the tiny mode it measures a
synthetic build directory, to prove the wiring without running sam.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks.common import ROOT, Check, Config, Row, ScenarioResult
from scripts import deployment_size as size

NAME = "deployment_size"
TITLE = "6. Deployment size (sam build, unzipped, vs Lambda's 250 MB)"
BUILD_DIR = ROOT / ".aws-sam" / "build"


def _fake_build(root: Path) -> Path:
    """A build directory shaped like sam's: one layer (python/) and one function."""
    (root / "SinferLayer" / "python" / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "SinferLayer" / "python" / "pkg" / "blob.bin").write_bytes(b"\0" * 4096)
    (root / "PredictApiFunction").mkdir(exist_ok=True)
    (root / "PredictApiFunction" / "app.py").write_text("def lambda_handler(e, c): ...\n")
    return root


def run(config: Config) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    if config.tiny:
        build_dir = _fake_build(config.workdir / "fake-build")
        result.notes.append("tiny mode: a synthetic build directory, not sam's output")
    else:
        build_dir = BUILD_DIR
        if not build_dir.is_dir():
            if config.skip_build:
                result.notes.append(f"{build_dir} is missing and --skip-build was given: nothing measured")
                return result
            # `make build` bootstraps the sam venv and pins Python 3.12 (pyenv), as CI does.
            subprocess.run(["make", "build"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    artifacts = size.scan_build_dir(build_dir)
    budgets = size.function_budgets(artifacts, size.LAMBDA_UNZIPPED_LIMIT_BYTES)
    mb = size.MB
    limit_mb = size.LAMBDA_UNZIPPED_LIMIT_BYTES / mb
    for artifact in artifacts:
        result.rows.append(Row(f"{artifact.kind} {artifact.name}", "unzipped", artifact.bytes / mb, "MB"))
    for budget in budgets:
        total_mb = budget.total_bytes / mb
        result.rows.append(
            Row(
                f"function {budget.name} + layers",
                "unzipped",
                total_mb,
                "MB",
                "limit",
                limit_mb,
                total_mb / limit_mb,
            )
        )
        result.checks.append(
            Check(f"{budget.name} + layers", total_mb, f"<= {limit_mb:.0f} MB", budget.ok, "MB")
        )
    layers = [a for a in artifacts if a.kind == "layer"]
    result.details = {
        "build_dir": str(build_dir),
        "artifacts": {a.name: {"kind": a.kind, "bytes": a.bytes} for a in artifacts},
        "functions": {b.name: {"total_bytes": b.total_bytes, "ok": b.ok} for b in budgets},
        "largest_layer_packages": {
            a.name: [
                {"name": n, "mb": round(s / mb, 1)} for n, s in size.largest_entries(build_dir / a.name, 8)
            ]
            for a in layers
        },
        "limit_bytes": size.LAMBDA_UNZIPPED_LIMIT_BYTES,
    }
    for layer, entries in result.details["largest_layer_packages"].items():
        result.notes.append(
            f"largest in {layer}: " + ", ".join(f"{e['name']} {e['mb']} MB" for e in entries[:5])
        )
    return result
