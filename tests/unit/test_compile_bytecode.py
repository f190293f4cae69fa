"""`make build`'s bytecode step: every built artifact gets .pyc files Lambda will use as they are."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts import compile_bytecode

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def build_dir(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    (build / "SinferLayer" / "python" / "pkg").mkdir(parents=True)
    (build / "SinferLayer" / "python" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (build / "PredictApiFunction").mkdir()
    (build / "PredictApiFunction" / "app.py").write_text("def handler(event, context):\n    return event\n")
    return build


def template(tmp_path: Path, runtime: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(f"Globals:\n  Function:\n    Runtime: {runtime}\n")
    return path


def test_every_artifact_is_compiled_without_source_timestamp_checks(tmp_path: Path) -> None:
    build = build_dir(tmp_path)

    status = compile_bytecode.main([str(build), "--template", str(template(tmp_path, RUNTIME))])

    assert status == 0
    compiled = sorted(p.relative_to(build).parts[0] for p in build.rglob("*.pyc"))
    assert compiled == ["PredictApiFunction", "SinferLayer"]
    for pyc in build.rglob("*.pyc"):
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: hash-based and unchecked (PEP 552) expected, flags {flags:#b}"


def test_a_python_other_than_the_runtime_compiles_nothing(tmp_path: Path) -> None:
    build = build_dir(tmp_path)

    status = compile_bytecode.main([str(build), "--template", str(template(tmp_path, "python3.99"))])

    assert status == 2
    assert list(build.rglob("*.pyc")) == []


def test_a_missing_build_directory_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert compile_bytecode.main([str(missing), "--template", str(template(tmp_path, RUNTIME))]) == 2
