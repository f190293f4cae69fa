"""``sinfer serve``: the real-time API on 127.0.0.1, like ``sam local start-api`` without Docker.

(``sinfer serve --sagemaker`` is the other server: SageMaker's inference container contract,
``/ping`` and ``/invocations``, for Batch Transform; see :mod:`sinfer.sagemaker.server`.)

Each HTTP request becomes the event API Gateway would send (REST API payload 1.0 by default, or
HTTP API payload 2.0; built by :mod:`sinfer.local.apigw`) and goes to predict_api's handler,
imported once and run in this process; its proxy result becomes the HTTP response. So the code
path is the deployed one, and any client of the deployed API (curl, ``tritonclient.http``,
KServe clients) works against this one.

The standard library's ThreadingHTTPServer is enough: connections get threads, so keep-alive
clients with connection pools work (HTTP/1.1, and every response has a Content-Length), while
invocations run one at a time, because a Lambda execution environment never runs two requests
at once and handlers may rely on it (Powertools' resolver keeps the current event on the app).

A body API Gateway would refuse (over 10 MiB, or framed so its end is unknown) never reaches
the function: a client that sends ``Expect: 100-continue`` is answered before it sends it; one
that does not is answered, then the connection closes gracefully (ApiRequestHandler._refuse).
A body that ends before its announced length is not passed on either.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import TypeVar, cast
from urllib.parse import unquote

from sinfer.cli import CliError, Commands, help_text
from sinfer.cli.invoke import add_function_options, local_function
from sinfer.httpd import (
    IDLE_TIMEOUT_SECONDS,
    BodyFramingError,
    IncompleteBodyError,
    RequestHandler,
    chunk_size,
)
from sinfer.local.apigw import HttpResponse, PayloadVersion, api_event, to_http_response
from sinfer.local.lambda_runtime import Invocation, LocalFunction, logs_to_stderr

DEFAULT_FUNCTION = "PredictApiFunction"
DEFAULT_PORT = 3000
# API Gateway's request size limit; larger bodies never reach the function.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
_TOO_LONG = f"HTTP content length exceeded {MAX_REQUEST_BYTES} bytes"
# Set by the server on every response, so the function's own values are not forwarded.
_SERVER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})
# After refusing a body, how long its client may go on sending it before the connection closes.
LINGER_SECONDS = 2.0


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the API on 127.0.0.1, running the function in this process (sam local start-api)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "-p",
        "--port",
        type=port_number,
        help=f"port (default: {DEFAULT_PORT}; --sagemaker: $SAGEMAKER_BIND_TO_PORT or 8080; 0: any free one)",
    )
    parser.add_argument(
        "--function",
        default=DEFAULT_FUNCTION,
        metavar="LOGICAL_ID",
        help=f"the API's function in the template (default: {DEFAULT_FUNCTION})",
    )
    parser.add_argument(
        "--payload-version",
        choices=("1.0", "2.0"),
        default="1.0",
        help="event format: 1.0 = REST API (as template.yaml deploys), 2.0 = HTTP API (default: 1.0)",
    )
    add_function_options(parser)
    sagemaker = parser.add_argument_group("SageMaker container (Batch Transform)")
    sagemaker.add_argument(
        "--sagemaker",
        action="store_true",
        help="serve SageMaker's inference contract (GET /ping, POST /invocations) instead of the API",
    )
    sagemaker.add_argument(
        "--model-dir",
        metavar="DIR",
        help="model.onnx (+ model.json) unpacked here, or a store <name>/<version>/model.onnx "
        "(default: /opt/ml/model)",
    )
    sagemaker.add_argument(
        "--model",
        metavar="NAME[/VERSION]",
        help="the model to serve from a store layout (default: $SINFER_MODEL, else the only one)",
    )
    parser.set_defaults(run=run)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


# --- the server ------------------------------------------------------------------------------


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection must not hold up shutdown
    # socketserver's default listen backlog is 5: a burst of clients connecting at once (a load
    # test, a connection pool warming up) would overflow it and see resets.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        payload_version: PayloadVersion,
        invoke_lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(address, ApiRequestHandler)
        self.payload_version: PayloadVersion = payload_version
        self.function: LocalFunction | None = None
        # The embedded stack shares one lock between all its functions: they share a process.
        self._invoke_lock = invoke_lock or threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def call(self, method: str, target: str, headers: dict[str, str], body: bytes) -> HttpResponse:
        """One HTTP request through the function, as API Gateway's proxy integration does it."""
        assert self.function is not None, "ApiServer.function is set before serving"
        path, _, query = target.partition("?")
        event = api_event(self.payload_version, method, unquote(path), body, headers, query)
        with self._invoke_lock:
            invocation = self.function.invoke(event)
        return proxy_response(invocation)


def proxy_response(invocation: Invocation) -> HttpResponse:
    """The function's proxy result, or API Gateway's own 502 when the function failed."""
    if invocation.error is None and isinstance(invocation.result, dict) and "statusCode" in invocation.result:
        return to_http_response(invocation.result)
    return gateway_error(502, "Internal server error")


def gateway_error(status: int, message: str) -> HttpResponse:
    body = json.dumps({"message": message}).encode("utf-8")
    return HttpResponse(status, {"Content-Type": "application/json"}, body)


class _BodyError(Exception):
    """A request body API Gateway would refuse before calling the function."""

    def __init__(self, status: int, message: str, unread: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.unread = unread  # how many bytes of it the client may still send, if known


class ApiRequestHandler(RequestHandler):
    timeout = IDLE_TIMEOUT_SECONDS  # a silent client cannot hold a thread for good

    def _proxy(self) -> None:
        server = cast(ApiServer, self.server)
        try:
            body = self._read_body()
        except _BodyError as exc:
            self._refuse(exc)
            return
        except IncompleteBodyError as exc:
            self.refuse_incomplete(exc, lambda message: self._send(gateway_error(400, message)))
            return
        self._send(server.call(self.command, self.path, self._headers(), body))

    # API Gateway's ANY method; http.server dispatches on these names.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy  # noqa: N815

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        return headers

    def _declared_length(self) -> int | None:
        """The body's length (None: chunked, not known yet), or _BodyError if it will not be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        try:
            length = self.body_length()
        except BodyFramingError as exc:
            raise _BodyError(400, str(exc)) from None
        if length > MAX_REQUEST_BYTES:
            raise _BodyError(413, _TOO_LONG, unread=length)
        return length

    def _read_body(self) -> bytes:
        length = self._declared_length()
        return self._read_chunked() if length is None else self.read_exactly(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise IncompleteBodyError("the chunked body ended before its last chunk")
            size = chunk_size(line)
            if size is None:
                raise _BodyError(400, "malformed chunked body: a chunk size must be hex digits")
            if size == 0:
                while (line := self.rfile.readline(1024)).strip():  # trailers
                    pass
                if not line:
                    raise IncompleteBodyError("the chunked body ended before its final blank line")
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise _BodyError(413, _TOO_LONG)
            chunks.append(self.read_exactly(size, "a chunk of the body"))
            if not self.rfile.readline(3):  # the CRLF after each chunk
                raise IncompleteBodyError("the chunked body ended before its last chunk")

    def handle_expect_100(self) -> bool:
        """Refuse a body before it is sent, for clients that ask first (curl does for large ones)."""
        try:
            self._declared_length()
        except _BodyError as exc:
            self._refuse(exc)
            return False
        return super().handle_expect_100()

    def _refuse(self, error: _BodyError) -> None:
        """Answer a refused body, then close without losing the answer to a reset.

        The client may still be sending the body (http.client and urllib send it all before
        they read), and closing a socket with unread input resets the connection, which can
        discard the answer before the client reads it. So: answer, say no more (FIN), then read
        and drop what comes, until the client stops, the body's length has come, or
        LINGER_SECONDS have passed; only then close.
        """
        self.close_connection = True
        self._send(gateway_error(error.status, str(error)))
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + LINGER_SECONDS
        remaining = error.unread
        while remaining is None or remaining > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.connection.settimeout(left)
            try:
                chunk = self.rfile.read1(65536 if remaining is None else min(remaining, 65536))
            except OSError:  # the time is up, or the client reset the connection
                return
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)

    def _send(self, response: HttpResponse) -> None:
        headers = [
            (name, value) for name, value in response.headers.items() if name.lower() not in _SERVER_HEADERS
        ]
        self.write_response(response.status, headers, response.body)


# --- running -----------------------------------------------------------------------------------


_Server = TypeVar("_Server", bound=ThreadingHTTPServer)


def bind(
    host: str, port: int, payload_version: PayloadVersion, invoke_lock: threading.Lock | None = None
) -> ApiServer:
    return listen(host, port, lambda: ApiServer((host, port), payload_version, invoke_lock))


def listen(host: str, port: int, create: Callable[[], _Server]) -> _Server:
    """The server ``create`` makes, or one line saying why the port cannot be had."""
    try:
        return create()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use; free it or pick another --port"
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM ends the server as Ctrl-C does (signals can only be handled on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_until_stopped(server: _Server) -> None:
    """Serve until Ctrl-C (or SIGTERM, under :func:`_sigterm_stops`); the caller closes."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("sinfer serve: stopped", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.sagemaker:
        return run_sagemaker(args)
    if args.model_dir is not None or args.model is not None:
        raise CliError("--model-dir and --model go with --sagemaker (the API takes --model-store)")
    if args.port is None:
        args.port = DEFAULT_PORT
    with logs_to_stderr() as stdout, _sigterm_stops():
        server = bind(args.host, args.port, args.payload_version)
        try:
            with local_function(args, args.function) as function:
                server.function = function
                api = "HTTP API payload 2.0" if args.payload_version == "2.0" else "REST API payload 1.0"
                store = function.environment.get("MODEL_STORE", "unset")
                logical_id = function.spec.logical_id
                stdout.write(f"sinfer serve: {server.url} ({logical_id}, {api}, MODEL_STORE={store})\n")
                stdout.flush()
                _serve_until_stopped(server)
        finally:
            server.server_close()
    return 0


def run_sagemaker(args: argparse.Namespace) -> int:
    """The SageMaker container app: the model loads in the background while /ping says 503."""
    from sinfer.errors import SinferError
    from sinfer.sagemaker.server import DEFAULT_MODEL_DIR, SageMakerServer, default_port, locate_model

    try:
        location = locate_model(args.model_dir or DEFAULT_MODEL_DIR, args.model)
    except SinferError as exc:
        raise CliError(exc.message) from None
    port = default_port() if args.port is None else args.port
    with _sigterm_stops():
        server = listen(args.host, port, lambda: SageMakerServer((args.host, port)))
        try:
            server.start_loading(location)
            print(f"sinfer serve: {server.url} (SageMaker container, {location.describe()})", flush=True)
            _serve_until_stopped(server)
        finally:
            server.server_close()
    return 0
