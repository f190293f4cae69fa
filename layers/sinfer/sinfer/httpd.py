"""What sinfer's two HTTP servers share: `sinfer serve` (the API) and the SageMaker container app.

Both are ``http.server`` request handlers; these are the parts of a request they must not take
on trust: the Content-Length and chunk-size numbers (one length, of plain digits), the body's
arrival (a client may stop short of the length it announced, or leave before its answer), the
text of their log lines (the request line is the client's), and how long a silent client may
hold a thread.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, Final

# A client of `sinfer serve` that sends nothing for this long loses its connection (and its
# thread). The SageMaker app has none: only SageMaker's agent reaches it, which keeps
# connections open between a job's requests.
IDLE_TIMEOUT_SECONDS: Final = 60

_DECIMAL = re.compile(r"[0-9]{1,15}")  # (str.isdigit() also takes "²", which int() refuses)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,8}")
# Control characters (C0, DEL, C1) as \xNN: the request line is the client's text, and a
# terminal would act on escape sequences in it.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def content_length(text: str | None) -> int | None:
    """A Content-Length header's value (absent: 0), or None when it is not a plain decimal number."""
    text = "0" if text is None or text == "" else text.strip()
    return int(text) if _DECIMAL.fullmatch(text) else None


def chunk_size(line: bytes) -> int | None:
    """A chunked body's chunk-size line (extensions ignored), or None when it is not hex digits."""
    size = line.split(b";", 1)[0].strip()
    return int(size, 16) if _HEX.fullmatch(size) else None


def printable(text: str) -> str:
    """``text`` with its control characters escaped, for a log line."""
    return text.translate(_CONTROL)


class BodyFramingError(Exception):
    """Content-Length headers that give no one length: where the body ends is unknown, so the
    answer is 400 and the connection closes after it (RFC 9112 section 6.3)."""


class IncompleteBodyError(Exception):
    """The client stopped sending (half-closed, or gave up) before the end of the body it announced."""


class RequestHandler(BaseHTTPRequestHandler):
    """What the two servers' request handlers share."""

    protocol_version = "HTTP/1.1"  # keep-alive; every response carries a Content-Length
    server_version = "sinfer"

    def handle(self) -> None:
        # A client that resets the connection or leaves before its answer is written is its own
        # business: one line in the log, not socketserver's traceback.
        try:
            super().handle()
        except ConnectionError as exc:  # BrokenPipeError, ConnectionResetError, ...
            self.close_connection = True
            self.log_error("the client went away (%s); connection closed", type(exc).__name__)

    def body_length(self) -> int:
        """The length the Content-Length header gives (absent: 0); repeated, it must say one number."""
        values = self.headers.get_all("Content-Length") or []
        if len({value.strip() for value in values}) > 1:
            raise BodyFramingError(f"conflicting Content-Length headers {', '.join(map(repr, values))}")
        text = values[0] if values else None
        length = content_length(text)
        if length is None:
            raise BodyFramingError(f"invalid Content-Length {text!r}")
        return length

    def read_exactly(self, size: int, what: str = "the body") -> bytes:
        """``size`` bytes of the body; IncompleteBodyError if the stream ends first."""
        data = self.rfile.read(size)
        if len(data) < size:
            raise IncompleteBodyError(f"{what} ended after {len(data):,} of its {size:,} bytes")
        return data

    def refuse_incomplete(self, error: IncompleteBodyError, send_400: Callable[[str], None]) -> None:
        """Leave a body cut short unprocessed: one log line, the 400 ``send_400`` writes with the
        error's message if the socket still takes it (a client that has gone is not news), and
        the connection closed."""
        self.close_connection = True
        self.log_error("%s: not processed; connection closed", error)
        with contextlib.suppress(ConnectionError):
            send_400(str(error))

    def write_response(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {printable(format % args)}\n")
