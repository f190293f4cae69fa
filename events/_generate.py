"""What every sample-event generator shares: find stale files, rewrite them, or ``--check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

Files = Mapping[Path, bytes]


def stale(files: Files) -> list[Path]:
    """Files missing on disk or whose bytes differ from what the generator makes."""
    return [path for path, data in files.items() if not path.is_file() or path.read_bytes() != data]


def run(
    description: str | None, root: Path, build: Callable[[], Files], argv: list[str] | None = None
) -> int:
    """``--check`` exits 1 naming stale files; otherwise rewrites only the stale ones."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = parser.parse_args(argv)
    files = build()
    changed = stale(files)
    top = root.parent.parent
    if args.check:
        for path in changed:
            print(f"stale: {path.relative_to(top)}", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[path])
    print(f"{len(files)} files under {root.relative_to(top)}, {len(changed)} rewritten")
    return 0
