"""Timing, memory and reporting helpers shared by every scenario.

Absolute numbers on a shared 2-core machine drift with whatever else runs, so nothing here
reports a time on its own: each scenario measures its baselines in the same run, and where it
can, interleaves them (A, B, A, B, ...) so that a slow patch of the machine hits every case
alike. Ratios of medians are what the targets are judged on.

Peak memory is always measured in a fresh child process, because a process's peak RSS never
goes down: measuring in-process would report the largest thing that process ever did. The
child reads its own ``VmHWM`` from /proc/self/status. Not ``ru_maxrss`` (from ``os.wait4``,
``RUSAGE_CHILDREN`` or the child's ``RUSAGE_SELF``): Linux carries the pre-exec high-water mark
into it, and Python starts children with vfork, so every child would report at least the
harness's own RSS at the time it was spawned.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
RESULTS = ROOT / "benchmarks" / "results.json"

Mode = Literal["full", "quick", "tiny"]
K = TypeVar("K", bound=Hashable)

# The environment `make bench` runs under (the Makefile's TEST_ENV): fake credentials, no
# tracing, Powertools names. Children get it too, so they measure what the parent measures.
BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "sinfer",
    "POWERTOOLS_SERVICE_NAME": "sinfer",
    "MODEL_STORE": str(MODELS),
}


@dataclass
class Config:
    """How big to run. ``tiny`` proves a scenario executes (the smoke test); ``quick`` is a
    fast look; ``full`` is what results.json and the README report."""

    mode: Mode = "full"
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    skip_build: bool = False

    @property
    def tiny(self) -> bool:
        return self.mode == "tiny"

    def pick(self, full: Any, quick: Any, tiny: Any) -> Any:
        return {"full": full, "quick": quick, "tiny": tiny}[self.mode]


@dataclass
class Check:
    """One target: a measured value against a bound, in the scenario's own words."""

    name: str
    value: float
    target: str
    met: bool
    unit: str = ""
    note: str = ""


@dataclass
class Row:
    """One printed line: a case, its numbers, and how it compares with its baseline."""

    case: str
    measure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None


@dataclass
class ScenarioResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 1),
            "rows": [asdict(r) for r in self.rows],
            "checks": [asdict(c) for c in self.checks],
            "details": self.details,
            "notes": self.notes,
        }


# --- timing ------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], count: int) -> list[int]:
    """Nanoseconds of ``count`` back-to-back calls, one sample per call."""
    samples = [0] * count
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        fn()
        samples[i] = clock() - start
    return samples


def interleaved(
    cases: dict[str, Callable[[], Any]], *, rounds: int, per_round: int, warmup: int = 50
) -> dict[str, list[int]]:
    """Per-call nanoseconds for each case, measured in alternating blocks.

    Each round runs every case for ``per_round`` calls, in an order that rotates each round, so
    drift (another process waking up, frequency changes) spreads over all cases instead of
    landing on whichever ran last. The garbage collector is paused while timing (and run
    between rounds), so a collection triggered by one case is not billed to the next.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    names = list(cases)
    samples: dict[str, list[int]] = {name: [] for name in names}
    enabled = gc.isenabled()
    try:
        for r in range(rounds):
            gc.collect()
            gc.disable()
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                samples[name].extend(time_calls(cases[name], per_round))
            if enabled:
                gc.enable()
    finally:
        if enabled:
            gc.enable()
    return samples


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank, of unsorted samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def best_of(rounds: Sequence[dict[K, float]]) -> dict[K, float]:
    """Each case's best rate over the rounds of :func:`rates_by_round`.

    Best, not median, for baselines that stand for a limit: the fastest run is the one least
    disturbed by the rest of the machine.
    """
    return {name: max(measured[name] for measured in rounds) for name in rounds[0]}


def rates_by_round(cases: dict[K, tuple[Callable[[], Any], float]], repeats: int) -> list[dict[K, float]]:
    """Each round's rate (``amount`` per second) of every case's ``(fn, amount)``, the cases
    interleaved: every case once a round, the order rotating each round.

    Interleaved, as the latency scenario's calls are: on a shared host, the other tenants'
    load comes and goes over seconds, and when the baselines ran all their rounds before the
    pipeline ran its own, a quiet spell landing on one side moved the ratios by 0.2-0.3
    between runs of the same code.
    """
    names = list(cases)
    rounds: list[dict[K, float]] = []
    for r in range(repeats):
        measured = dict.fromkeys(names, 0.0)  # (in the cases' order, whatever order they ran in)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, amount = cases[name]
            start = time.perf_counter()
            fn()
            seconds = time.perf_counter() - start
            measured[name] = amount / seconds if seconds > 0 else float("inf")
        rounds.append(measured)
    return rounds


@contextlib.contextmanager
def silenced_stdout(*, as_in_lambda: bool = False) -> Iterator[None]:
    """Send fd 1 to /dev/null: Powertools prints EMF metrics and JSON logs on every invoke.

    Redirecting the file descriptor (not just ``sys.stdout``) also catches the logger's
    handler, which kept a reference to the original stream when it was created. Writing to
    /dev/null keeps the cost of formatting each line in the measurement, as it is in Lambda.

    ``as_in_lambda``: ``sys.stdout`` also flushes after every write, as Lambda's Python
    runtime makes it (awslambdaric's ``bootstrap.Unbuffered``), so each EMF line or log
    record costs its ``write`` system call as it does there. Without it, a bench whose stdout
    is a file or a pipe (``make bench > log``, CI) would buffer those lines for free.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    stream = sys.stdout
    try:
        os.dup2(devnull, 1)
        if as_in_lambda:
            sys.stdout = _FlushedEachWrite(stream)
        yield
    finally:
        sys.stdout = stream
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _FlushedEachWrite:
    """A stream whose every write is flushed: what Lambda's runtime makes of stdout."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        self._stream.flush()
        return int(written)

    def writelines(self, lines: Any) -> None:
        self._stream.writelines(lines)
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --- children: wall time and peak memory -------------------------------------------------


@dataclass
class ChildRun:
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last stdout line, which every child script prints as its JSON report."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if self.returncode != 0 or not lines:
            raise RuntimeError(f"child failed (exit {self.returncode}):\n{self.stderr[-3000:]}")
        return json.loads(lines[-1])


def run_child(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 1800
) -> ChildRun:
    """Run a child process in the bench environment; return its wall time and output."""
    full_env = {**os.environ, **BENCH_ENV, **(env or {})}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"child timed out after {timeout}s: {argv}") from exc
    return ChildRun(time.perf_counter() - start, done.returncode, done.stdout, done.stderr)


def python_child(code: str, **kwargs: Any) -> ChildRun:
    """``python -c code`` with the interpreter running this harness (the project's venv)."""
    return run_child([sys.executable, "-c", code], **kwargs)


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: VmHWM (see the module docstring), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# `python -c` children (cold start) define the same function from this source: they must not
# import the harness, whose imports would be billed to their cold start.
PEAK_RSS_SOURCE = inspect.getsource(peak_rss_mb)


# --- the machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on, for results.json and the README."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    versions: dict[str, str] = {}
    for name in ("onnxruntime", "numpy", "aws_lambda_powertools", "boto3", "moto", "PIL", "orjson"):
        with contextlib.suppress(ImportError):
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


# --- output ------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def render_table(results: Sequence[ScenarioResult]) -> str:
    lines: list[str] = []
    header = f"{'case':<44} {'measure':<18} {'value':>14} {'baseline':>34} {'ratio':>8}"
    for result in results:
        lines.append("")
        lines.append(f"== {result.title} ({result.seconds:.0f}s)")
        lines.append(header)
        for row in result.rows:
            base = f"{row.baseline} {fmt(row.baseline_value, row.unit)}" if row.baseline else ""
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
            lines.append(
                f"{row.case:<44} {row.measure:<18} {fmt(row.value, row.unit):>14} {base:>34} {ratio:>8}"
            )
        for check in result.checks:
            status = "MET " if check.met else "MISS"
            lines.append(f"  [{status}] {check.name}: {fmt(check.value, check.unit)} (target {check.target})")
        lines.extend(f"  note: {note}" for note in result.notes)
    return "\n".join(lines)


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None
