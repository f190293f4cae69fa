"""A/B: s3_ingest's output parts uploaded inline or on a thread of their own, under a simulated S3.

Usage::

    python benchmarks/upload_overlap.py                       # 30 ms + 100 MB/s a part, 6 rounds
    python benchmarks/upload_overlap.py --latency-ms 50 --mb-per-s 50 --rounds 8

Not a scenario of ``make bench``: in-process moto answers an ``UploadPart`` at memory speed, so
what a background upload saves in AWS (the parsing thread no longer waits out each part's
network time) cannot show there. Here each part's upload first sleeps ``latency + size /
bandwidth`` (a sleep releases the GIL, as a socket wait does), then goes to moto; the same
100k-row CSV runs through the real s3_ingest handler with ``S3JsonlWriter(background=...)``
forced either way, alternating round by round after a warm-up file. It prints each side's best
and median seconds and their ratio. The numbers depend on the simulated S3, which is a guess:
a part of S3's real time in Lambda varies with the function's memory and the object's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import silenced_stdout  # noqa: E402
from benchmarks.scenarios._shared import MotoStack, bench_env, csv_bytes, digits_rows  # noqa: E402


def measure(rows: int, rounds: int, latency_s: float, bytes_per_s: float) -> dict[bool, list[float]]:
    """Seconds of s3_ingest per round, by whether parts upload in the background."""
    from sinfer.records import writer as writer_module

    cls = writer_module.S3JsonlWriter
    real_upload, real_init = cls._upload_part, cls.__init__
    forced = {"background": True}

    def simulated_upload(self: Any, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        time.sleep(latency_s + len(body) / bytes_per_s)
        return real_upload(self, upload_id, number, body)

    def init(self: Any, *args: Any, background: bool = False, **kwargs: Any) -> None:
        # (only the writers that ask for a background upload, s3_ingest's, are switched)
        real_init(self, *args, background=background and forced["background"], **kwargs)

    seconds: dict[bool, list[float]] = {True: [], False: []}
    with bench_env():
        data = csv_bytes(digits_rows(rows))
        cls._upload_part = simulated_upload  # type: ignore[method-assign]
        cls.__init__ = init  # type: ignore[method-assign]
        try:
            with MotoStack() as stack:
                warm = b"\n".join(data.split(b"\n")[:11]) + b"\n"
                with silenced_stdout():
                    stack.ingest([("inputs/digits/warm.csv", stack.put("inputs/digits/warm.csv", warm))])
                for round_ in range(rounds):
                    for background in (True, False) if round_ % 2 else (False, True):
                        forced["background"] = background
                        key = f"inputs/digits/upload-{round_}-{int(background)}.csv"
                        size = stack.put(key, data)
                        with silenced_stdout():
                            start = time.perf_counter()
                            stack.ingest([(key, size)])
                            seconds[background].append(time.perf_counter() - start)
                        written = stack.output_lines(key)
                        assert written == rows, f"s3_ingest wrote {written} lines for {rows} records"
        finally:
            cls._upload_part = real_upload  # type: ignore[method-assign]
            cls.__init__ = real_init  # type: ignore[method-assign]
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency-ms", type=float, default=30.0, help="each part's fixed cost")
    parser.add_argument("--mb-per-s", type=float, default=100.0, help="each part's bandwidth")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    seconds = measure(args.rows, args.rounds, args.latency_ms / 1000, args.mb_per_s * 1e6)
    for background, label in ((False, "inline"), (True, "background")):
        values = seconds[background]
        print(f"{label:10s} best {min(values):.3f} s, median {statistics.median(values):.3f} s")
    best = min(seconds[True]) / min(seconds[False])
    median = statistics.median(seconds[True]) / statistics.median(seconds[False])
    print(f"background / inline: {best:.2f}x best, {median:.2f}x median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
