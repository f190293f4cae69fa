"""The two HTTP servers against requests no client library would send: `sinfer serve`'s API
server and the SageMaker container app, each in a thread on loopback, spoken to over a raw
socket. Each must answer (or close) rather than raise in its handler, read no body whose
framing it cannot trust, run nothing on a body that stopped short, and log the client's text
with its control characters escaped (and a client that left, in one line)."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

import sinfer.sagemaker.server
from sinfer.cli.serve import MAX_REQUEST_BYTES, bind
from sinfer.httpd import chunk_size, content_length, printable
from sinfer.inference.registry import default_registry
from sinfer.local.lambda_runtime import Invocation
from sinfer.sagemaker.server import SageMakerServer

PREDICT = b"/v1/models/digits:predict"
ROW = b"[" + b",".join([b"0"] * 64) + b"]\n"  # one digit scan, as a JSON line


def _exchange(port: int, request: bytes, then: bytes = b"") -> bytes:
    """Send ``request`` (and ``then``, as far as the server reads it); everything it answers."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        try:  # the server may answer and close before reading it all: that is the point
            conn.sendall(then)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # closed on unread bytes: what came before still counts
            pass
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _post(path: bytes, body: bytes, *headers: bytes) -> bytes:
    """A POST of ``body``, with the given header lines (a Content-Length among them)."""
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/jsonlines\r\n"
    return head + b"".join(header + b"\r\n" for header in headers) + b"\r\n" + body


def _wait_for_log(capsys: pytest.CaptureFixture[str], done: Callable[[str], bool]) -> str:
    """What the servers' threads have logged, once ``done`` says it holds what is awaited."""
    logged = ""
    deadline = time.monotonic() + 10
    while not done(logged) and time.monotonic() < deadline:
        time.sleep(0.02)
        logged += capsys.readouterr().err
    return logged


class RecordingFunction:
    """Stands in for predict_api: answers 200 (once ``gate`` is open) and keeps each event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.gate.wait(10)
        self.events.append(event)
        return Invocation("request-1", {"statusCode": 200, "body": "{}"}, None, 1.0, 30)


def _serving(server: ThreadingHTTPServer) -> Iterator[int]:
    """Serve from a thread for the test's length; the port."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def function() -> RecordingFunction:
    return RecordingFunction()


@pytest.fixture
def api_port(function: RecordingFunction) -> Iterator[int]:
    server = bind("127.0.0.1", 0, "1.0")
    server.function = function  # (body checks come before it)
    yield from _serving(server)


@pytest.fixture
def sagemaker_port(model_store: object) -> Iterator[int]:
    server = SageMakerServer(("127.0.0.1", 0), payload_limit=1 << 20)
    server.model = default_registry().get("digits")
    yield from _serving(server)


def test_framing_numbers_are_plain_digits() -> None:
    assert content_length(None) == 0
    assert content_length("") == 0
    assert content_length(" 12 ") == 12
    for bad in ("\u00b2", "-1", "+5", "1e3", "0x10", "1" * 16, "1 2"):
        assert content_length(bad) is None, bad
    assert chunk_size(b"1a;name=value\r\n") == 26
    for bad in (b"-1\r\n", b"+1\r\n", b"\r\n", b"0x10\r\n", b"123456789\r\n", b"1 2\r\n"):
        assert chunk_size(bad) is None, bad
    assert printable("GET /\x1b[2J\x00 ok\x7f\x85 é") == "GET /\\x1b[2J\\x00 ok\\x7f\\x85 é"


def test_serve_refuses_a_negative_chunk_size_before_reading_the_rest(api_port: int) -> None:
    # "-1" was read as a size by int(line, 16): the running total fell, and read(-1) took the
    # rest of the stream (50 MiB over a 10 MiB limit) before any answer
    head = (
        b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n-1\r\n"
    )
    answer = _exchange(api_port, head, b"x" * (1 << 20))
    assert _status(answer) == 400
    assert b"chunk size must be hex digits" in answer


@pytest.mark.parametrize("length", ["\u00b2".encode("latin-1"), b"-5", b"12abc"])
def test_serve_and_the_container_refuse_a_content_length_that_is_not_a_number(
    api_port: int, sagemaker_port: int, length: bytes
) -> None:
    for port, path in ((api_port, b"/v1/models/digits:predict"), (sagemaker_port, b"/invocations")):
        request = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
        answer = _exchange(port, request)
        assert _status(answer) == 400, (port, answer[:300])
        assert b"invalid Content-Length" in answer


def test_the_container_answers_a_malformed_request_line_and_logs_it_escaped(
    sagemaker_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # A request line http.server cannot parse left no .path, and log_request raised on it: the
    # client got no answer and the log a traceback
    assert b"Error code: 400" in _exchange(sagemaker_port, b"HELLO\r\n\r\n")  # (an HTTP/0.9 answer)
    # Control characters from the client reach the log escaped, not as terminal commands
    answer = _exchange(sagemaker_port, b"GET /\x1b[2J\x1b[31mFAKE HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 404
    logged = capsys.readouterr().err
    assert "Traceback" not in logged
    assert "\x1b" not in logged
    assert "\\x1b[2J\\x1b[31mFAKE" in logged


def test_a_body_cut_short_is_not_run_and_costs_one_log_line(
    api_port: int, sagemaker_port: int, function: RecordingFunction, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN requests whose clients stop sending (half-close) before the end of the body they
    # announced: by Content-Length, and (sinfer serve) inside a chunk and between chunks
    rows = ROW * 3
    cut_short = [
        (sagemaker_port, _post(b"/invocations", rows[:-40], b"Content-Length: %d" % (len(rows) + 10))),
        (api_port, _post(PREDICT, rows[:-40], b"Content-Length: %d" % (len(rows) + 10))),
        (api_port, _post(PREDICT, b"%x\r\n" % len(rows) + rows[:-40], b"Transfer-Encoding: chunked")),
        (api_port, _post(PREDICT, b"%x\r\n" % len(rows) + rows + b"\r\n", b"Transfer-Encoding: chunked")),
    ]
    for port, request in cut_short:
        # WHEN the server has read what there is
        answer = _exchange(port, request)

        # THEN nothing ran on the part that came (the container ran the model on it), the
        # client is told why if it still listens, and the connection is closed
        assert _status(answer) == 400, answer[:300]
        assert b"ended" in answer, answer
        assert b"Connection: close" in answer
    assert function.events == []

    # AND each is one line in the log, not a traceback
    logged = capsys.readouterr().err
    assert "Traceback" not in logged
    assert logged.count("not processed; connection closed") == len(cut_short), logged


def test_a_client_that_leaves_before_its_answer_costs_one_log_line(
    api_port: int,
    sagemaker_port: int,
    function: RecordingFunction,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN requests whose answers are held until their clients have reset the connection
    held = function.gate
    transform = sinfer.sagemaker.server.transform

    def held_transform(*args: Any) -> bytes:
        held.wait(10)
        return transform(*args)

    monkeypatch.setattr(sinfer.sagemaker.server, "transform", held_transform)
    requests = {
        api_port: _post(PREDICT, ROW, b"Content-Length: %d" % len(ROW)),
        sagemaker_port: _post(b"/invocations", ROW, b"Content-Length: %d" % len(ROW)),
    }
    for port, request in requests.items():
        held.clear()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(request)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: reset

        # WHEN the server writes the answer to the gone client
        held.set()

        # THEN it says so in one line (socketserver printed a BrokenPipe/ConnectionReset traceback)
        logged = _wait_for_log(capsys, lambda text: "went away" in text or "Traceback" in text)
        assert "Traceback" not in logged
        assert logged.count("the client went away") == 1, logged


def test_conflicting_content_lengths_are_a_400_and_the_connection_closes(
    api_port: int, sagemaker_port: int, function: RecordingFunction
) -> None:
    # GIVEN bodies with two Content-Length headers that disagree (RFC 9112 section 6.3), each
    # followed by another request on the same connection
    for port, path, then in (
        (api_port, PREDICT, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"),
        (sagemaker_port, b"/invocations", b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"),
    ):
        request = _post(path, ROW, b"Content-Length: %d" % len(ROW), b"Content-Length: 40") + then

        # WHEN they are sent (the first header won, or the container waited for 40 bytes)
        answer = _exchange(port, request)

        # THEN 400, and nothing more is read from that connection
        assert _status(answer) == 400, answer[:300]
        assert b"conflicting Content-Length headers" in answer
        assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert function.events == []

    # AND the same length twice is one length
    twice = _post(b"/invocations", ROW, *[b"Content-Length: %d" % len(ROW)] * 2)
    assert _status(_exchange(sagemaker_port, twice)) == 200


def test_serve_refuses_a_body_over_the_limit_before_a_client_that_asks_first_sends_it(
    api_port: int,
) -> None:
    # GIVEN a client that announces 50 MB and waits for 100 Continue before sending it
    request = _post(PREDICT, b"", b"Content-Length: 50000000", b"Expect: 100-continue")

    # WHEN it asks, THEN it is told 413 at once, not to go ahead (curl then sent 50 MB for a 413)
    answer = _exchange(api_port, request)
    assert _status(answer) == 413, answer[:300]
    assert b"100 Continue" not in answer


def test_serve_answers_413_to_a_client_that_sends_the_whole_body_first(
    api_port: int, function: RecordingFunction
) -> None:
    # GIVEN a client that sends a body over API Gateway's 10 MiB before reading (http.client)
    connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)

    # WHEN it posts it
    connection.request("POST", PREDICT.decode(), b" " * (MAX_REQUEST_BYTES + 1))

    # THEN it reads the 413 (the server closed on the unread body, and the reset lost it)
    response = connection.getresponse()
    assert response.status == 413
    assert b"HTTP content length exceeded" in response.read()
    connection.close()
    assert function.events == []


def test_the_container_reads_past_a_body_sent_to_another_route(sagemaker_port: int) -> None:
    # GIVEN GET /ping with a body, and GET /execution-parameters after it on the same connection
    request = (
        b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /execution-parameters HTTP/1.1\r\nHost: x\r\n\r\n"
    )

    # WHEN both are sent
    answer = _exchange(sagemaker_port, request)

    # THEN both are answered (the body was read as the next request line: 501 'helloGET')
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer
    assert b'"MaxPayloadInMB"' in answer
