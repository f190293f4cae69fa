"""Compile the output of `sam build` to bytecode, so Lambda does not compile it at every cold start.

`sam build` installs the layer's wheels without compiling them, and Lambda's `/opt` and
`/var/task` are read-only: Python cannot write the `__pycache__` it would normally keep, so
every new execution environment compiles numpy, onnxruntime, Powertools and sinfer from
source before the first request. Measured here, importing numpy and onnxruntime from the
built layer takes about 2x longer without bytecode (see README "Performance").

Bytecode is specific to the Python minor version, so this refuses to run under any
interpreter other than the template's runtime (`python3.12`). The files are written in the
``unchecked-hash`` mode: the zip that Lambda unpacks does not keep source timestamps reliably,
and a timestamp-checked ``.pyc`` whose source looks newer is silently ignored.

Exit status: 0 when compiled, 1 when a file does not compile, 2 on a wrong interpreter or a
missing build directory.
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import re
import sys
from pathlib import Path

RUNTIME = re.compile(r"^\s*Runtime:\s*python(\d+)\.(\d+)\s*$", re.MULTILINE)


def runtime_version(template: Path) -> tuple[int, int]:
    found = {(int(major), int(minor)) for major, minor in RUNTIME.findall(template.read_text("utf-8"))}
    if len(found) != 1:
        raise SystemExit(f"expected one Python runtime in {template}, found {sorted(found)}")
    return found.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path, help="the --build-dir of sam build (.aws-sam/build)")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    args = parser.parse_args(argv)
    if not args.build_dir.is_dir():
        print(f"no build directory at {args.build_dir}; run sam build first", file=sys.stderr)
        return 2
    wanted = runtime_version(args.template)
    if sys.version_info[:2] != wanted:
        print(
            f"bytecode must be compiled by Python {wanted[0]}.{wanted[1]} (the template's runtime), "
            f"not {sys.version_info[0]}.{sys.version_info[1]}",
            file=sys.stderr,
        )
        return 2
    artifacts = sorted(p for p in args.build_dir.iterdir() if p.is_dir())
    ok = all(
        compileall.compile_dir(
            artifact,
            quiet=1,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        for artifact in artifacts
    )
    count = sum(1 for _ in args.build_dir.rglob("*.pyc"))
    print(f"compiled {len(artifacts)} artifacts in {args.build_dir}: {count:,} .pyc files")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
