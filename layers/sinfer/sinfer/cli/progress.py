"""What long-running commands say on stderr: a one-line progress bar, notes, and failures.

The bar is for people watching a terminal, so it draws only when stderr is a TTY (or when
``--progress`` forces it) and is a no-op otherwise: logs and CI output never fill with carriage
returns. Nothing is drawn in the first half second either, so quick runs stay quiet. It shows
records done, their rate and the elapsed time, plus a bar and a percentage when the total
amount of work is known (``sinfer predict`` counts input bytes, which it knows up front even
though the number of records it will find in them is not).

Notes (a skipped file, a warning) and failures go through :meth:`Progress.note` and
:func:`fail` so they clear the bar's line first instead of being printed into the middle of it.
No dependency: a bar is a format string and ``\\r``.
"""

from __future__ import annotations

import shutil
import sys
import time
from types import TracebackType
from typing import Self, TextIO

EXIT_FAILED = 1
_WIDTH = 24  # bar cells
_LABEL = 32  # the most of a label shown (its end: a file name is more telling than its folders)
_FIRST_DRAW = 0.5  # seconds before the bar appears (unless forced)
_REDRAW = 0.1  # seconds between redraws


def enabled(force: bool | None, stream: TextIO | None = None) -> bool:
    """``--progress`` (True) and ``--no-progress`` (False) decide; by default, a TTY does."""
    if force is not None:
        return force
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def fail(command: str, message: str) -> int:
    """One line on stderr for a failure that is not a usage mistake; the exit code to return."""
    print(f"sinfer {command}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def warn(command: str, message: str) -> None:
    print(f"sinfer {command}: warning: {message}", file=sys.stderr, flush=True)


class Progress:
    """``label [#####-----]  42%  12,345 records  3,210/s  0:04`` on one stderr line.

    ``total`` is the amount of work in the unit :meth:`advance`'s ``done`` counts (bytes, say);
    without it the bar is left out and records, rate and time remain. ``forced`` draws even
    the first half second and always leaves a final line, so ``--progress`` shows something
    for quick runs too.
    """

    def __init__(
        self,
        active: bool,
        *,
        total: int | None = None,
        label: str = "",
        forced: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.active = active
        self.total = total if total else None
        self.label = label
        self.records = 0
        self.done = 0
        self._forced = forced
        self._stream = stream
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._shown = False  # something is on the line now
        self._drawn = False  # something was drawn at some point

    @property
    def stream(self) -> TextIO:
        # Looked up late, so a test's or a caller's replacement of sys.stderr is honoured.
        return self._stream if self._stream is not None else sys.stderr

    def advance(self, records: int = 0, done: int | None = None) -> None:
        """Count ``records`` more records; ``done`` is the work finished so far (not a delta)."""
        if not self.active:
            return
        self.records += records
        if done is not None:
            self.done = done
        now = time.monotonic()
        if now - self._last_draw < _REDRAW:
            return
        if not self._forced and now - self._started < _FIRST_DRAW:
            return
        self._draw(now)

    def note(self, text: str) -> None:
        """A line of its own on stderr, with the bar cleared first and drawn again after."""
        self._clear()
        print(text, file=self.stream, flush=True)
        if self._drawn and self.active:
            self._draw(time.monotonic())

    def close(self) -> None:
        """Leave the final state on its own line (if the bar was ever drawn, or is forced)."""
        if not self.active:
            return
        if self._drawn or self._forced:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
        self.active = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # an error line follows: leave it a clean line
            self._clear()
            self.active = False

    def line(self, now: float | None = None) -> str:
        """The text of the bar at ``now`` (for drawing, and for tests)."""
        elapsed = max(0.0, (time.monotonic() if now is None else now) - self._started)
        label = self.label if len(self.label) <= _LABEL else "…" + self.label[-(_LABEL - 1) :]
        parts = [label] if label else []
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = round(fraction * _WIDTH)
            parts.append(f"[{'#' * filled}{'-' * (_WIDTH - filled)}] {fraction:4.0%}")
        parts.append(f"{self.records:,} records")
        rate = self.records / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:,.0f}/s")
        parts.append(_clock(elapsed))
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        width = shutil.get_terminal_size((100, 20)).columns - 1
        if len(text) > width > 20:
            text = text[: width - 1] + "…"
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()
        self._last_draw = now
        self._shown = self._drawn = True

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
