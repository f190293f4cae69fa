"""``sinfer predict``: offline inference on local files, the edge mode.

The same core as the S3 path, so a file gives the same lines on a laptop, an edge device or in
Lambda: files go through :func:`sinfer.inference.batch.process_records`, s3_ingest's loop
(every format an upload to ``inputs/`` may take; micro-batched, in input order, one outcome per
record) and are written as the same JSONL, one line per record,
``{"id", "prediction"}`` or ``{"id", "error"}``. No network is needed: the model comes from a
store folder (``sinfer models pull`` puts one there) or, if one is reachable, an s3:// prefix.

Where results go:

* one input file, no ``-o``: stdout (a one-line count goes to stderr), so it pipes into jq;
* one input file, ``-o FILE``: that file, which appears only once complete;
* ``-o DIR`` (an existing folder, or a path ending in /), several inputs or a folder:
  ``<DIR>/<input path relative to what was named>.predictions.jsonl`` and ``.summary.json``
  (counts, model and version, timings), as the S3 path writes ``outputs/``; without ``-o``,
  beside the inputs.

MODEL may be a path instead of a store's name: a folder holding ``model.onnx`` (a pulled version,
an unpacked SageMaker package), or a bare ``.onnx`` file (with ``<name>.json`` beside it as its
manifest, if there is one); its pin is checked as a store's would be.

``-`` reads stdin (``cat rows.jsonl | sinfer predict digits - --format jsonl``): ``--format``
says what it holds, and for files overrides what their names say.

Folders are walked recursively, taking every file in an accepted format; other files (and
earlier ``*.predictions.jsonl``/``*.summary.json`` outputs, and hidden files) are skipped, the
unaccepted ones with a note on stderr. A bad record is an error line and counts as data, not a
failure. A file that cannot be read as a whole (unknown format, corrupt gzip, unreadable) gets
a summary carrying the error, no predictions file, and makes the exit code 1 once the other
files are done; in stdout mode the lines already printed stay printed. An unknown model is one
line and exit 2. With ``--fail-on-errors``, a run whose files were all read but whose records
include error lines exits 3 (for scripts that must not take a partial result for a whole one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sinfer.cli import CliError, Commands, help_text
from sinfer.cli.models import (
    add_store_option,
    load_model,
    model_at,
    names_a_path,
    open_model_store,
    parse_ref,
)
from sinfer.cli.progress import Progress, enabled

if TYPE_CHECKING:
    from sinfer.inference.model import LoadedModel
    from sinfer.records import ResultWriter

# What --format names: the extensions the readers know (and the text formats gzipped).
_TEXT = ("jsonl", "json", "csv", "tsv", "npy")
FORMATS = (*_TEXT, "png", "jpg", *(f"{kind}.gz" for kind in _TEXT))
STDIN = Path("/dev/stdin")
OUTPUT_SUFFIX = ".predictions.jsonl"
SUMMARY_SUFFIX = ".summary.json"
_COMMAND = "predict"
# --fail-on-errors: every file was read, but some records are error lines (1 and 2 are taken)
RECORD_ERRORS_EXIT = 3


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="offline inference on local files or folders (JSONL out, as the S3 path writes)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="model name, or NAME:VERSION, in the store; or a path (a folder holding model.onnx, "
        "or an .onnx file)",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="input files or folders (walked recursively); - reads stdin (with --format)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        metavar="FMT",
        help=f"read the inputs as FMT whatever their names, as stdin needs: {', '.join(FORMATS)}",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="a file (one input) or a folder (ends with / or exists) for the results (default: stdout "
        "for one file, beside the inputs otherwise)",
    )
    add_store_option(parser)
    parser.add_argument(
        "--version", dest="model_version", metavar="V", help="model version (default: the highest)"
    )
    parser.add_argument(
        "--batch-size", type=_positive, metavar="N", help="records per inference call (default: the model's)"
    )
    parser.add_argument(
        "--fail-on-errors",
        action="store_true",
        help="exit 3 when any record is an error line, though every file was read (default: 0, "
        "the summary counts them)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


# --- what to read and where to write ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """One input file and where its results go (``output`` None: stdout)."""

    source: Path
    shown: str
    output: Path | None = None
    summary: Path | None = None
    format: str | None = None  # --format: read as this, whatever the name says

    @property
    def name(self) -> str:
        """The name the readers take the format from."""
        return str(self.source) if self.format is None else f"{self.shown}.{self.format}"


@dataclass(slots=True)
class Plan:
    tasks: list[Task] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _names_folder(output: str) -> bool:
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def plan(inputs: list[Path], output: str | None) -> Plan:
    """The tasks, in the order given (folders in sorted order); CliError for impossible layouts."""
    # One input that is not a folder is one file, a pipe or FIFO too (/dev/stdin, <(...)): its
    # lines go to stdout. (is_file() sent those to the folder layout, which wrote beside them.)
    if len(inputs) == 1 and inputs[0].exists() and not inputs[0].is_dir():
        source = inputs[0]
        if output is None:
            return Plan([Task(source, str(source))])
        if not _names_folder(output):
            return Plan([Task(source, str(source), Path(output))])
    out_dir = Path(output) if output is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"-o {output} is a file; with several inputs or a folder, -o names a folder")
    result = Plan()
    for given in inputs:
        if given.is_dir():
            base = out_dir if out_dir is not None else given
            found, skipped = _walk(given, out_dir)
            for path in found:
                relative = path.relative_to(given).as_posix()
                result.tasks.append(_task(path, str(path), base / relative))
            if skipped:
                shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
                result.notes.append(
                    f"skipped {len(skipped)} file(s) in {given} not in an input format: {shown}"
                )
            if not found:
                result.notes.append(f"no input files in {given}")
        else:
            base = out_dir if out_dir is not None else given.parent
            result.tasks.append(_task(given, str(given), base / given.name))
    _check_distinct(result.tasks)
    return result


def _task(source: Path, shown: str, stem: Path) -> Task:
    return Task(
        source, shown, stem.with_name(stem.name + OUTPUT_SUFFIX), stem.with_name(stem.name + SUMMARY_SUFFIX)
    )


def _walk(folder: Path, out_dir: Path | None) -> tuple[list[Path], list[str]]:
    """Files of an accepted format under ``folder`` (sorted), and the names of those skipped."""
    from sinfer.errors import UnreadableInputError
    from sinfer.records import detect_format

    skip_dir = out_dir.resolve() if out_dir is not None and out_dir.is_dir() else None
    found: list[Path] = []
    skipped: list[str] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != skip_dir)
        for name in sorted(files):
            if name.startswith(".") or name.endswith((OUTPUT_SUFFIX, SUMMARY_SUFFIX)):
                continue  # hidden files, and this command's own outputs from an earlier run
            try:
                detect_format(name)
            except UnreadableInputError:
                skipped.append((here / name).relative_to(folder).as_posix())
                continue
            found.append(here / name)
    return found, skipped


def _check_distinct(tasks: list[Task]) -> None:
    seen: dict[Path, Task] = {}
    for task in tasks:
        assert task.output is not None
        key = task.output.resolve()
        if key in seen:
            raise CliError(
                f"{seen[key].shown} and {task.shown} would both write {task.output}; run them separately "
                "or give each its own -o folder"
            )
        seen[key] = task


# --- running ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    task: Task
    counts: dict[str, int]
    started_at: str
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _CountingReader:
    """The input file, counting the bytes read so the progress bar knows how far along it is."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.bytes_read += len(data)
        return data


def predict_file(
    model: LoadedModel, task: Task, batch_size: int | None, bar: Progress, done_before: int
) -> Result:
    from sinfer.errors import SinferError
    from sinfer.inference.batch import process_records
    from sinfer.records import FileJsonlWriter, StreamJsonlWriter, detect_format

    result = Result(task, {"records": 0, "predictions": 0, "errors": 0}, _now(), 0.0)
    started = time.perf_counter()
    try:
        with task.source.open("rb") as handle:
            stream = _CountingReader(handle)
            detect_format(task.name)  # checks the format before any output
            writer: ResultWriter = (
                FileJsonlWriter(task.output) if task.output is not None else StreamJsonlWriter(_stdout())
            )
            try:
                process_records(
                    model,
                    stream,
                    task.name,
                    writer,
                    counts=result.counts,
                    batch_size=batch_size,
                    progress=lambda records: bar.advance(records, done_before + stream.bytes_read),
                )
            except BaseException:
                writer.abort()
                raise
            writer.close()
    except BrokenPipeError:
        raise
    except SinferError as exc:
        result.error = f"{exc.code}: {exc.message}"
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        result.error = f"{exc.strerror or exc}{where}"
    result.seconds = time.perf_counter() - started
    return result


def _stdout() -> BinaryIO:
    buffer: BinaryIO = sys.stdout.buffer
    return buffer


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(result: Result, model: LoadedModel) -> dict[str, Any]:
    """The summary beside a predictions file: the S3 path's shape, for a local run."""
    from sinfer.records import records_match

    counts = result.counts
    return {
        "status": "COMPLETED" if result.ok else "FAILED",
        "model": model.name,
        "model_version": model.version,
        "input": str(result.task.source),
        "output": str(result.task.output) if result.ok and result.task.output else None,
        "counts": counts,
        "records_match": records_match(counts),
        "timings": {
            "started_at": result.started_at,
            "finished_at": _now(),
            "seconds": round(result.seconds, 4),
        },
        "backend": "local",
        "error": result.error,
    }


def _write_summary(path: Path, doc: dict[str, Any]) -> None:
    from sinfer.records import FileJsonlWriter

    with FileJsonlWriter(path) as writer:  # the same all-or-nothing write as the results
        writer.write(json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8"))


def _counted(counts: dict[str, int]) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n:,} {word}{'' if n == 1 else 's'}"

    return (
        f"{plural(counts['records'], 'record')}: {plural(counts['predictions'], 'prediction')}, "
        f"{plural(counts['errors'], 'error')}"
    )


def run(args: argparse.Namespace) -> int:

    by_path = names_a_path(args.model)
    if by_path and (args.model_version is not None or args.model_store is not None):
        raise CliError(f"{args.model} is a path: --version and --model-store go with a model's name")
    name, version = (args.model, None) if by_path else parse_ref(args.model, args.model_version)
    if Path("-") in args.inputs:
        if len(args.inputs) > 1 or args.format is None:
            raise CliError("- (stdin) is read alone, with --format naming what it holds (jsonl, csv, ...)")
        args.inputs = [STDIN]
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        raise CliError(f"no such input file or folder: {', '.join(missing)}")
    work = plan(args.inputs, args.output)
    if args.format is not None:
        work.tasks = [dataclasses.replace(task, format=args.format) for task in work.tasks]
    if not work.tasks:
        from sinfer.records import ACCEPTED_FORMATS

        raise CliError(f"no input files found (accepted: {ACCEPTED_FORMATS})")
    # (a model that cannot load is main's one line and exit 1)
    model = model_at(name) if by_path else load_model(open_model_store(args.model_store), name, version)
    to_stdout = work.tasks[0].output is None
    # A bar and predictions sharing one terminal would garble each other, unless asked for.
    show = enabled(args.progress) and not (args.progress is None and to_stdout and sys.stdout.isatty())
    sizes = [_size(task.source) for task in work.tasks]
    try:
        return _run_tasks(model, work, sizes, args.batch_size, show, bool(args.progress), args.fail_on_errors)
    except BrokenPipeError:  # `sinfer predict ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail
        return 1


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run_tasks(
    model: LoadedModel,
    work: Plan,
    sizes: list[int],
    batch_size: int | None,
    show: bool,
    forced: bool,
    fail_on_errors: bool = False,
) -> int:
    several = len(work.tasks) > 1
    started = time.perf_counter()
    results: list[Result] = []
    with Progress(show, total=sum(sizes), forced=forced) as bar:
        for note in work.notes:
            bar.note(f"sinfer {_COMMAND}: {note}")
        done = 0
        for index, task in enumerate(work.tasks):
            bar.label = f"{index + 1}/{len(work.tasks)} {task.shown}" if several else task.shown
            result = predict_file(model, task, batch_size, bar, done)
            done += sizes[index]
            bar.advance(0, done)
            results.append(result)
            bar.note(_finish(result, model))
    failed = [r for r in results if not r.ok]
    if several:
        totals = {key: sum(r.counts[key] for r in results) for key in ("records", "predictions", "errors")}
        end = f"; {len(failed)} file(s) failed" if failed else ""
        print(
            f"sinfer {_COMMAND}: {len(results)} files, {_counted(totals)}{end} "
            f"({time.perf_counter() - started:.2f} s, {model.name}:{model.version})",
            file=sys.stderr,
        )
    if failed:
        return 1
    if fail_on_errors and any(r.counts["errors"] for r in results):
        return RECORD_ERRORS_EXIT
    return 0


def _finish(result: Result, model: LoadedModel) -> str:
    """Write the file's summary (when it has one); the line that reports it on stderr."""
    task = result.task
    if task.summary is not None:
        try:
            _write_summary(task.summary, summary(result, model))
        except OSError as exc:
            result.error = result.error or f"cannot write {task.summary}: {exc.strerror or exc}"
    if not result.ok:
        where = f" (summary: {task.summary})" if task.summary is not None else ""
        error = result.error or ""
        said = error if task.shown in error else f"{task.shown}: {error}"  # most messages name the file
        return f"sinfer {_COMMAND}: error: {said}{where}"
    target = f" -> {task.output}" if task.output is not None else ""
    return f"{task.shown}{target}: {_counted(result.counts)} ({result.seconds:.2f} s)"
