"""``sinfer jobs submit|status|wait|results``: asynchronous jobs through the HTTP API.

A client of ``POST /jobs`` and ``GET /jobs/{id}`` (the README's "API"), against ``sinfer local``
by default or a deployed API with ``--endpoint`` (or ``$SINFER_API``). It needs nothing but the
standard library's urllib, except for signing:

* ``submit --file PATH`` asks the API for an upload (``{"upload": {"filename"}}``) and PUTs
  the file to the presigned URL it returns, streamed; the upload starts the job. ``--input
  s3://...`` names an object already in the data bucket; ``--instances FILE`` sends a JSON list
  (or ``{"instances": [...]}``) inline.
* ``wait`` polls ``GET /jobs/{id}``, backing off to 5 s between calls, and reports each change
  of status on stderr; it exits 0 when the job completes and 1 when it fails or time runs out.
* ``results`` downloads the presigned ``result_url`` (the predictions JSONL) to stdout or
  ``-o FILE``; ``--summary`` downloads the summary instead.

stdout carries only data (the API's JSON documents, or the results), so the commands pipe
into jq; notes go to stderr. Errors are one line: the API's own ``error`` message with its
HTTP status (exit 2 for a 4xx, which the request can fix; 1 for a server error), and a
network failure (exit 1, as an unreachable store is elsewhere) says what failed; a refused
connection says to start ``sinfer local``.

The deployed API uses IAM auth by default, so requests to an ``execute-api`` host are signed
with SigV4 (botocore's ``SigV4Auth``, the default credential chain, service ``execute-api``);
``--sigv4`` forces signing for other hosts (a custom domain) and ``--no-sigv4`` turns it off.
Presigned S3 URLs carry their own signature and are never signed again.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final
from urllib.parse import quote, urlparse

from sinfer.cli import CliError, Commands, help_text
from sinfer.cli.progress import fail
from sinfer.jobs.types import BACKENDS

DEFAULT_ENDPOINT: Final = "http://127.0.0.1:3000"
TERMINAL: Final = frozenset({"COMPLETED", "FAILED"})
_COMMAND: Final = "jobs"
_CHUNK: Final = 1024 * 1024
_EXECUTE_API: Final = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\Z")
# The names POST /jobs accepts for an upload (sinfer.jobs.api); anything else is replaced.
_UPLOAD_NAME: Final = re.compile(r"[^A-Za-z0-9._ -]")
_MAX_UPLOAD_NAME: Final = 201


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "jobs",
        help="submit asynchronous jobs to the API and fetch their results",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    api = common.add_argument_group("API")
    api.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"the API's base URL, stage included (default: $SINFER_API, else {DEFAULT_ENDPOINT})",
    )
    api.add_argument(
        "--sigv4",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sign requests with SigV4 for IAM auth (default: for *.execute-api.*.amazonaws.com hosts)",
    )
    api.add_argument("--region", help="region for SigV4 (default: from the host, else the AWS config)")
    api.add_argument(
        "--http-timeout", type=float, default=30.0, metavar="S", help="seconds per HTTP request (default: 30)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    submit = actions.add_parser(
        "submit", parents=[common], help="start a job: a file, an s3:// object or instances"
    )
    submit.add_argument("model", metavar="MODEL", help="model name, or NAME:VERSION")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="PATH", help="a local file, uploaded to a presigned URL")
    source.add_argument(
        "--input", metavar="s3://...", help="an object in the data bucket (staging/ or inputs/)"
    )
    source.add_argument(
        "--instances",
        metavar="JSON_FILE",
        help='a JSON list, or {"instances": [...]}, in a file (- for stdin)',
    )
    submit.add_argument(
        "--backend",
        choices=BACKENDS,
        help="where the job runs: lambda (in Lambda, whatever its size), batch (the model picks "
        "Bedrock or SageMaker), sagemaker or bedrock (the same, naming the service the model "
        "needs), local (the embedded stack's emulator); default: the API decides by size",
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for the job to finish; print its final status"
    )
    submit.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S seconds")
    submit.set_defaults(run=_guarded(run_submit))

    status = actions.add_parser("status", parents=[common], help="a job's status document (JSON)")
    status.add_argument("job_id", metavar="JOB_ID")
    status.set_defaults(run=_guarded(run_status))

    wait = actions.add_parser("wait", parents=[common], help="wait until a job completes or fails")
    wait.add_argument("job_id", metavar="JOB_ID")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (default: never)")
    wait.set_defaults(run=_guarded(run_wait))

    results = actions.add_parser("results", parents=[common], help="download a completed job's predictions")
    results.add_argument("job_id", metavar="JOB_ID")
    results.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    results.add_argument("--summary", action="store_true", help="the summary JSON instead of the predictions")
    results.set_defaults(run=_guarded(run_results))


# --- HTTP --------------------------------------------------------------------------------------


class UnreachableError(Exception):
    """The API (or a presigned URL) could not be reached, or stopped answering: exit 1."""


class HttpError(Exception):
    """An HTTP error response, with the server's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Api:
    """The jobs API at ``endpoint``; requests signed with SigV4 when ``sign``."""

    endpoint: str
    sign: bool = False
    region: str | None = None
    timeout: float = 30.0

    def call(self, method: str, path: str, doc: Any = None) -> dict[str, Any]:
        url = self.endpoint.rstrip("/") + path
        body = None if doc is None else json.dumps(doc).encode("utf-8")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.sign:
            headers = sigv4_headers(method, url, body, headers, self.region)
        request = _request(url, "--endpoint", method, body, headers)
        try:
            data = _fetch(request, self.endpoint, self.timeout)
        except HttpError as exc:
            if exc.status == 403 and not self.sign:  # API Gateway's answer to an unsigned request
                raise HttpError(exc.status, f"{exc.message} (an IAM-auth API: add --sigv4)") from None
            raise
        try:
            answer = json.loads(data)
        except ValueError:
            raise CliError(f"{url} did not answer with JSON; is --endpoint the sinfer API?") from None
        if not isinstance(answer, dict):
            raise CliError(f"{url} answered with JSON that is not an object; is --endpoint the sinfer API?")
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"/jobs/{quote(job_id, safe='')}")


@contextmanager
def _open(request: urllib.request.Request, endpoint: str, timeout: float) -> Iterator[Any]:
    """urlopen, with every way it fails, reading the body included, turned into one line.

    Only network failures are translated: an error the caller's block raises for its own
    reasons (writing the body somewhere) comes out unchanged.
    """
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310  # http(s), checked
    except urllib.error.HTTPError as exc:
        with exc:
            raise HttpError(exc.code, _error_message(exc.code, exc.read())) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise UnreachableError(
                f"cannot connect to {endpoint}: connection refused; is sinfer local running? "
                "(start it with `sinfer local`, or pass --endpoint URL / set SINFER_API)"
            ) from None
        why = getattr(reason, "strerror", None) or reason
        raise UnreachableError(f"cannot reach {endpoint}: {why}") from None
    except TimeoutError:
        raise UnreachableError(f"{endpoint} did not answer within {timeout:g} s (--http-timeout)") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise UnreachableError(f"the connection to {endpoint} failed: {exc}") from None
    with response:
        try:
            yield response
        except TimeoutError:
            raise UnreachableError(f"{endpoint} stopped sending for {timeout:g} s (--http-timeout)") from None
        except (ConnectionResetError, ConnectionAbortedError, http.client.HTTPException) as exc:
            raise UnreachableError(f"the connection to {endpoint} failed: {exc}") from None


def _fetch(request: urllib.request.Request, endpoint: str, timeout: float) -> bytes:
    with _open(request, endpoint, timeout) as response:
        data: bytes = response.read()
    return data


def _error_message(status: int, body: bytes) -> str:
    """The message in an error body: sinfer's {"error"}, API Gateway's {"message"}, S3's XML."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message", "Message"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    if code or message:
        return ": ".join(m.group(1).strip() for m in (code, message) if m)
    return text.splitlines()[0][:300] if text else f"status {status} without a message"


def _check_url(url: str, what: str) -> str:
    if urlparse(url).scheme not in ("http", "https"):
        raise CliError(f"{what} {url!r} is not an http(s) URL")
    return url


def _request(
    url: str, what: str, method: str, data: Any = None, headers: dict[str, str] | None = None
) -> urllib.request.Request:
    """A request for an http(s) URL (anything else, file: included, is refused here)."""
    return urllib.request.Request(_check_url(url, what), data=data, method=method, headers=headers or {})  # noqa: S310


def sigv4_headers(
    method: str, url: str, body: bytes | None, headers: dict[str, str], region: str | None
) -> dict[str, str]:
    """``headers`` plus SigV4's (Authorization, X-Amz-Date, X-Amz-Security-Token) for execute-api."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.session import Session

    session = Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CliError(
            "signing needs AWS credentials and none were found (environment, profile, SSO, instance role)"
        )
    region = region or _host_region(url) or session.get_config_variable("region")
    if not region:
        raise CliError("signing needs a region: pass --region or set AWS_REGION")
    request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def _host_region(url: str) -> str | None:
    found = _EXECUTE_API.search(urlparse(url).hostname or "")
    return found.group(1) if found else None


def api_from(args: argparse.Namespace) -> Api:
    endpoint = _check_url(args.endpoint or os.environ.get("SINFER_API") or DEFAULT_ENDPOINT, "--endpoint")
    sign = args.sigv4 if args.sigv4 is not None else _host_region(endpoint) is not None
    if args.http_timeout <= 0:
        raise CliError("--http-timeout must be positive")
    return Api(endpoint, sign, args.region, args.http_timeout)


Action = Callable[[argparse.Namespace], int]


def _guarded(action: Action) -> Action:
    """A 4xx is the request's fault (one line, exit 2, via CliError); any other failure, a
    network one included, exits 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except HttpError as exc:
            if 400 <= exc.status < 500:
                raise CliError(str(exc)) from None
            return fail(_COMMAND, str(exc))
        except UnreachableError as exc:
            return fail(_COMMAND, str(exc))

    return run


def _info(message: str) -> None:
    print(f"sinfer {_COMMAND}: {message}", file=sys.stderr, flush=True)


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False), flush=True)


# --- submit ------------------------------------------------------------------------------------


def upload_name(name: str) -> str:
    """A local file name as one POST /jobs accepts, its extensions (the format) kept."""
    cleaned = _UPLOAD_NAME.sub("_", name)
    while ".." in cleaned:
        cleaned = cleaned.replace("..", ".")
    cleaned = cleaned.lstrip("._ -") or "input"
    if len(cleaned) > _MAX_UPLOAD_NAME:
        suffix = "".join(Path(cleaned).suffixes[-2:])[:40]
        cleaned = cleaned[: _MAX_UPLOAD_NAME - len(suffix)] + suffix
    return cleaned


def _read_instances(source: str) -> list[Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"instances file {source} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read instances file {source}: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CliError(f"instances file {source} is not valid JSON: {exc}") from None
    instances = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(instances, list) or not instances:
        raise CliError(f'{source}: expected a non-empty JSON list of instances, or {{"instances": [...]}}')
    return instances


def _upload(url: str, path: Path, timeout: float) -> None:
    """PUT the file to a presigned URL, streamed (a Content-Length, so S3 takes it unchunked)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        request = _request(url, "upload_url", "PUT", handle, headers)
        with _open(request, urlparse(url).netloc, max(timeout, 300.0)):
            pass


def run_submit(args: argparse.Namespace) -> int:
    api = api_from(args)
    model, _, version = args.model.partition(":")
    doc: dict[str, Any] = {"model": model}
    if version:
        doc["version"] = version
    if args.backend:
        doc["backend"] = args.backend
    if args.file is not None:
        if not args.file.is_file():
            raise CliError(f"{args.file} is not a file")
        doc["upload"] = {"filename": upload_name(args.file.name)}
    elif args.input is not None:
        if not args.input.startswith("s3://"):
            raise CliError(
                f"--input must be an s3:// URI, got {args.input!r} (a local file goes with --file)"
            )
        doc["input"] = args.input
    else:
        doc["instances"] = _read_instances(args.instances)
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout goes with --wait")
    created = api.call("POST", "/jobs", doc)
    job_id = created.get("job_id")
    if not isinstance(job_id, str):
        raise CliError(f"{api.endpoint} answered POST /jobs without a job_id; is --endpoint the sinfer API?")
    if args.file is not None:
        url = created.get("upload_url")
        if not isinstance(url, str):
            raise CliError(f"{api.endpoint} gave no upload_url for {job_id}")
        _info(f"{job_id}: uploading {args.file} ({args.file.stat().st_size:,} bytes)")
        try:
            _upload(url, args.file, api.timeout)
        except (HttpError, CliError, UnreachableError) as exc:  # the job stays PENDING: say which
            return fail(_COMMAND, f"{job_id}: uploading {args.file} failed: {exc}")
    _info(f"submitted {job_id} ({model}); `sinfer jobs wait {job_id}` waits for it")
    if args.wait:
        return _wait_and_print(api, job_id, args.timeout)
    _print_json({k: v for k, v in created.items() if not k.startswith("upload_")})
    return 0


# --- status and wait ---------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    _print_json(api_from(args).job(args.job_id))
    return 0


def run_wait(args: argparse.Namespace) -> int:
    return _wait_and_print(api_from(args), args.job_id, args.timeout)


def _describe(doc: dict[str, Any]) -> str:
    status = str(doc.get("status"))
    counts = doc.get("counts") or {}
    if status == "COMPLETED":
        numbers = {key: counts.get(key, 0) for key in ("records", "predictions", "errors")}
        return "COMPLETED: " + ", ".join(f"{value} {key}" for key, value in numbers.items())
    if status == "FAILED":
        return f"FAILED: {doc.get('error') or 'no reason given'}"
    reason = doc.get("route_reason")
    backend = doc.get("backend")
    if status in ("ROUTED", "SUBMITTING", "SUBMITTED", "COLLECTING", "MERGING") and backend:
        return f"{status} ({backend}{': ' + str(reason) if reason else ''})"
    return status


def wait_for(api: Api, job_id: str, timeout: float | None, interval: float = 0.5) -> dict[str, Any] | None:
    """The job's document once it is COMPLETED or FAILED; None if ``timeout`` passes first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    while True:
        doc = api.job(job_id)
        line = _describe(doc)
        if line != shown:
            _info(f"{job_id}: {line}")
            shown = line
        if doc.get("status") in TERMINAL:
            return doc
        if deadline is not None and time.monotonic() + interval > deadline:
            return None
        time.sleep(interval)
        interval = min(interval * 1.5, 5.0)


def _wait_and_print(api: Api, job_id: str, timeout: float | None) -> int:
    if timeout is not None and timeout < 0:
        raise CliError("--timeout must not be negative")
    doc = wait_for(api, job_id, timeout)
    if doc is None:
        return fail(
            _COMMAND, f"{job_id} did not finish within {timeout:g} s; `sinfer jobs wait {job_id}` waits on"
        )
    _print_json(doc)
    return 0 if doc.get("status") == "COMPLETED" else 1


# --- results -----------------------------------------------------------------------------------


def run_results(args: argparse.Namespace) -> int:
    api = api_from(args)
    doc = api.job(args.job_id)
    status = doc.get("status")
    if status == "FAILED":
        return fail(_COMMAND, f"{args.job_id} failed: {doc.get('error') or 'no reason given'}")
    key = "summary_url" if args.summary else "result_url"
    url = doc.get(key)
    if status != "COMPLETED" or not isinstance(url, str):
        if status == "COMPLETED":
            return fail(_COMMAND, f"{args.job_id} is COMPLETED but the API gave no {key}")
        return fail(
            _COMMAND, f"{args.job_id} is {status}, not completed; `sinfer jobs wait {args.job_id}` first"
        )
    request = _request(url, key, "GET")
    try:
        with _open(request, urlparse(url).netloc, max(api.timeout, 300.0)) as response:
            if args.output is None:
                _copy(response, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                _save(response, args.output)
    except BrokenPipeError:  # `sinfer jobs results ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # writing -o FILE (network failures are UnreachableErrors by now)
        return fail(_COMMAND, f"cannot write {args.output}: {exc.strerror or exc}")
    if args.output is not None:
        _info(f"{args.job_id}: wrote {args.output}")
    return 0


def _copy(source: Any, target: BinaryIO) -> None:
    while chunk := source.read(_CHUNK):
        target.write(chunk)


def _save(source: Any, path: Path) -> None:
    """Stream to ``path``, which appears only once the download is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy(source, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
