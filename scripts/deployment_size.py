"""Check the output of `sam build` against Lambda's 250 MB unzipped deployment limit.

Lambda counts a function's own code and every layer it uses together against one limit,
262,144,000 bytes unzipped. onnxruntime, numpy and pillow use most of that budget, so a new
dependency can push the layer over it. Lambda only reports that when the stack is deployed.
This script reports it after the build instead, with the largest packages of each layer, so
the cause is known.

Each top-level folder of the build directory is one artifact: a layer when it has the Python
layer layout (a `python/` folder), otherwise a function. The script counts every layer against
every function, because the template attaches the one layer through Globals. If a layer is ever
attached to only some functions, this still gives an upper bound.

Exit status: 0 when every function fits, 1 when one does not, 2 when the build directory is
missing or holds no function.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000  # "250 MB" in Lambda's quotas: 250 * 2**20 bytes
MB = 2**20  # AWS writes MB for 2**20 bytes in Lambda's limits; this script does the same

ArtifactKind = Literal["function", "layer"]


@dataclass(frozen=True)
class Artifact:
    """One built function or layer: a top-level folder of the build directory."""

    name: str
    kind: ArtifactKind
    bytes: int


@dataclass(frozen=True)
class FunctionBudget:
    """A function's code plus its layers, as Lambda measures it at deployment."""

    name: str
    layers: tuple[str, ...]
    total_bytes: int
    limit_bytes: int

    @property
    def ok(self) -> bool:
        return self.total_bytes <= self.limit_bytes


def tree_size(root: Path) -> int:
    """Bytes of all regular files under root, as they would be once unzipped.

    Symbolic links are not followed, so a link to a large file is not counted twice.
    """
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def artifact_kind(folder: Path) -> ArtifactKind:
    return "layer" if (folder / "python").is_dir() else "function"


def scan_build_dir(build_dir: Path) -> list[Artifact]:
    folders = sorted(p for p in build_dir.iterdir() if p.is_dir())
    return [Artifact(f.name, artifact_kind(f), tree_size(f)) for f in folders]


def function_budgets(artifacts: list[Artifact], limit_bytes: int) -> list[FunctionBudget]:
    layers = [a for a in artifacts if a.kind == "layer"]
    layer_bytes = sum(a.bytes for a in layers)
    return [
        FunctionBudget(
            name=a.name,
            layers=tuple(layer.name for layer in layers),
            total_bytes=a.bytes + layer_bytes,
            limit_bytes=limit_bytes,
        )
        for a in artifacts
        if a.kind == "function"
    ]


def largest_entries(layer_dir: Path, count: int) -> list[tuple[str, int]]:
    """The biggest top-level packages of a layer's python/ folder, largest first."""
    entries = [
        (p.name, tree_size(p) if p.is_dir() else p.stat().st_size) for p in (layer_dir / "python").iterdir()
    ]
    return sorted(entries, key=lambda entry: entry[1], reverse=True)[:count]


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / MB:.1f}"


def render_report(
    artifacts: list[Artifact],
    budgets: list[FunctionBudget],
    big_packages: dict[str, list[tuple[str, int]]],
) -> str:
    lines = [f"{'artifact':<32} {'kind':<9} {'unzipped MB':>12}"]
    lines += [f"{a.name:<32} {a.kind:<9} {megabytes(a.bytes):>12}" for a in artifacts]
    lines.append("")
    lines.append(f"{'function':<32} {'+ layers MB':>12} {'limit MB':>9} {'headroom MB':>12}  status")
    for b in budgets:
        total, limit = megabytes(b.total_bytes), megabytes(b.limit_bytes)
        headroom = megabytes(b.limit_bytes - b.total_bytes)
        status = "OK" if b.ok else "OVER"
        lines.append(f"{b.name:<32} {total:>12} {limit:>9} {headroom:>12}  {status}")
    for layer, entries in big_packages.items():
        lines.append("")
        lines.append(f"largest packages in {layer}:")
        lines += [f"  {name:<40} {megabytes(size):>8} MB" for name, size in entries]
    lines.append("")
    lines.append(f"MB = 2^20 bytes; Lambda's limit is {LAMBDA_UNZIPPED_LIMIT_BYTES:,} bytes unzipped.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "build_dir", nargs="?", type=Path, default=Path(".aws-sam/build"), help="default: .aws-sam/build"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the measurements as JSON")
    parser.add_argument(
        "--top", type=int, default=8, metavar="N", help="list the N largest packages of each layer (0: none)"
    )
    parser.add_argument(
        "--limit-bytes", type=int, default=LAMBDA_UNZIPPED_LIMIT_BYTES, help=argparse.SUPPRESS
    )  # for tests
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    build_dir: Path = args.build_dir
    if not build_dir.is_dir():
        print(f"error: {build_dir} is not a directory; run `sam build` first", file=sys.stderr)
        return 2
    artifacts = scan_build_dir(build_dir)
    budgets = function_budgets(artifacts, args.limit_bytes)
    if not budgets:
        print(f"error: no built function under {build_dir}", file=sys.stderr)
        return 2
    layers = [a for a in artifacts if a.kind == "layer"] if args.top > 0 else []
    big_packages = {a.name: largest_entries(build_dir / a.name, args.top) for a in layers}
    print(render_report(artifacts, budgets, big_packages))
    if args.json is not None:
        report = {
            "build_dir": str(build_dir),
            "limit_bytes": args.limit_bytes,
            "artifacts": [asdict(a) for a in artifacts],
            "functions": [asdict(b) | {"ok": b.ok} for b in budgets],
            "largest_layer_packages": {
                layer: [{"name": name, "bytes": size} for name, size in entries]
                for layer, entries in big_packages.items()
            },
            "ok": all(b.ok for b in budgets),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(b.ok for b in budgets) else 1


if __name__ == "__main__":
    sys.exit(main())
