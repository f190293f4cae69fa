"""The SageMaker inference container: ``GET /ping``, ``POST /invocations`` (and
``GET /execution-parameters``) on port 8080, serving one ONNX model with the sinfer core.

SageMaker runs the image as ``docker run <image> serve`` after unpacking ``model.tar.gz`` into
``/opt/ml/model``; the container's ENTRYPOINT turns that into ``sinfer serve --sagemaker``,
which lands here. The model folder holds either the model itself (``model.onnx`` and an
optional ``model.json``: what a model package's version folder tars into) or a whole store
(``<name>/<version>/model.onnx``), from which ``--model``/``SINFER_MODEL`` picks one.

The model is loaded once, in the background, as soon as the port is open: ``/ping`` answers
503 until it has loaded (and for good if it cannot), and 200 with an empty body after, which is
SageMaker's signal to start sending ``/invocations``. Bodies are read and written by
:mod:`sinfer.sagemaker.codec`, whose one promise is as many result lines as input lines.

The standard library's ThreadingHTTPServer is enough: SageMaker opens at most
``MaxConcurrentTransforms`` connections, and ONNX Runtime sessions may be run from several
threads at once. Every response carries a Content-Length (HTTP/1.1 keep-alive). Request bodies
must too: a chunked one (what ``MaxPayloadInMB=0`` asks SageMaker for) is refused with 411. A
body that ends before its Content-Length is not run (400), and a body sent to another route is
read and dropped, so the next request on the connection starts where it should. There is no
idle timeout: SageMaker's agent, the only client, keeps connections open between requests.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, cast

from sinfer.errors import (
    ModelNotFoundError,
    ModelNotReadyError,
    SinferError,
)
from sinfer.httpd import BodyFramingError, IncompleteBodyError, RequestHandler
from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import ModelRegistry, SessionFactory
from sinfer.model.manifest import Manifest
from sinfer.model.session import create_session
from sinfer.model.store import (
    LocalModelStore,
    ModelFiles,
    ModelStore,
    check_name,
    read_manifest_file,
    sha256_file,
    verify,
)
from sinfer.sagemaker.codec import request_format, response_format, transform

MODEL_ENV: Final = "SINFER_MODEL"
DEFAULT_MODEL_DIR: Final = Path("/opt/ml/model")  # where SageMaker unpacks model.tar.gz
DEFAULT_PORT: Final = 8080
MiB: Final = 1024 * 1024
# What /execution-parameters suggests; a job's own settings take precedence. One request at a
# time, because a session already runs on every CPU; many records per request, up to SageMaker's
# default payload, because per-request overhead is what micro-batching amortises.
MAX_PAYLOAD_MB: Final = 6
EXECUTION_PARAMETERS: Final = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": MAX_PAYLOAD_MB,
}
# Used when a model folder's model.json does not name the model.
UNNAMED_MODEL: Final = ("model", "1")
# A refused body up to this many times the payload limit is read and dropped (see _discard_body).
_DISCARD_FACTOR: Final = 2


def default_port() -> int:
    """``SAGEMAKER_BIND_TO_PORT`` (set for containers of an inference pipeline), else 8080."""
    text = os.environ.get("SAGEMAKER_BIND_TO_PORT", "")
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else DEFAULT_PORT


def max_payload_bytes() -> int:
    """The job's ``MaxPayloadInMB`` (SageMaker sets ``SAGEMAKER_MAX_PAYLOAD_IN_MB``), else ours."""
    text = os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "")
    megabytes = int(text) if text.isdigit() and int(text) > 0 else MAX_PAYLOAD_MB
    return megabytes * MiB


# --- where the model is ------------------------------------------------------------------


class ModelDirStore(ModelStore):
    """A store of one model unpacked straight into a folder: ``model.onnx`` (+ ``model.json``).

    That is what SageMaker makes of a ``model.tar.gz`` built from one version folder of a store.
    """

    def __init__(
        self, folder: Path, name: str, version: str, onnx: str = "model.onnx", manifest: str = "model.json"
    ) -> None:
        self.folder = folder
        self.name = name
        self.version = version
        self.uri = str(folder)
        self.onnx = onnx  # (a bare model file of another name: see sinfer.cli.models.model_at)
        self.manifest = manifest

    def list_models(self) -> list[str]:
        return [self.name]

    def list_versions(self, name: str) -> list[str]:
        return [self.version] if name == self.name else []

    def _check(self, name: str, version: str) -> None:
        if (name, version) != (self.name, self.version):
            raise ModelNotFoundError(f"{self.folder} holds model {self.name!r} version {self.version!r} only")

    def read_manifest(self, name: str, version: str) -> dict[str, Any] | None:
        self._check(name, version)
        return read_manifest_file(self.folder / self.manifest)

    def fetch(self, name: str, version: str) -> ModelFiles:
        self._check(name, version)
        manifest_path = self.folder / self.manifest
        manifest = Manifest.load(manifest_path) if manifest_path.is_file() else Manifest.empty()
        files = ModelFiles(name, version, self.folder / self.onnx, manifest)
        if manifest.sha256 is not None:
            verify(files, sha256_file(files.onnx_path))
        return files


@dataclass(frozen=True, slots=True)
class ModelLocation:
    store: ModelStore
    name: str
    version: str

    def load(self, session_factory: SessionFactory = create_session) -> LoadedModel:
        """The model, loaded as the container loads it (its manifest applied, its pin checked)."""
        return ModelRegistry(self.store, session_factory).get(self.name, self.version)

    def describe(self) -> str:
        return f"model {self.name} version {self.version} from {self.store.uri}"


def locate_model(model_dir: str | os.PathLike[str], selection: str | None = None) -> ModelLocation:
    """The model to serve from ``model_dir``; ``selection`` (or ``SINFER_MODEL``) is ``NAME[/VERSION]``.

    Only file names are checked here, so a wrong folder fails at once; the model itself loads
    when the server starts.
    """
    selection = selection or os.environ.get(MODEL_ENV) or None
    name, version = _split_selection(selection)
    folder = Path(model_dir).expanduser().resolve()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {model_dir} does not exist")
    if (folder / "model.onnx").is_file():
        return _single_model(folder, name, version)
    store = LocalModelStore(folder)
    # ONNX models only: a store may also hold foundation-model entries (a model.json alone).
    names = [found for found in store.list_models() if _onnx_versions(folder / found)]
    if name is None:
        if len(names) != 1:
            raise ModelNotFoundError(
                f"{folder} holds no model.onnx and no <name>/<version>/model.onnx"
                if not names
                else f"{folder} holds models {', '.join(names)}; choose one with --model or {MODEL_ENV}"
            )
        name = names[0]
    elif name not in names:
        raise ModelNotFoundError(f"no ONNX model {name!r} in {folder}; it holds {', '.join(names) or 'none'}")
    version = store.resolve_version(name, version)  # an unknown version fails now, naming those there are
    if version not in _onnx_versions(folder / name):
        raise ModelNotFoundError(f"{folder / name / version} holds no model.onnx")
    return ModelLocation(store, name, version)


def _onnx_versions(folder: Path) -> list[str]:
    return [path.parent.name for path in folder.glob("*/model.onnx")]


def _split_selection(selection: str | None) -> tuple[str | None, str | None]:
    if not selection:
        return None, None
    name, _, version = selection.partition("/")
    check_name("model name", name)
    return name, (check_name("version", version) if version else None)


def _single_model(folder: Path, name: str | None, version: str | None) -> ModelLocation:
    manifest_path = folder / "model.json"
    manifest = Manifest.load(manifest_path) if manifest_path.is_file() else Manifest.empty()
    for kind, wanted, declared in (("model", name, manifest.name), ("version", version, manifest.version)):
        if wanted is not None and declared is not None and wanted != declared:
            raise ModelNotFoundError(f"{folder} holds {kind} {declared!r}, not the {wanted!r} asked for")
    found_name = check_name("model name", manifest.name or name or UNNAMED_MODEL[0])
    found_version = check_name("version", manifest.version or version or UNNAMED_MODEL[1])
    return ModelLocation(ModelDirStore(folder, found_name, found_version), found_name, found_version)


# --- the server --------------------------------------------------------------------------


class SageMakerServer(ThreadingHTTPServer):
    """Serves ``model`` once it is set: by :meth:`load_model`, or directly for a loaded one."""

    daemon_threads = True  # an idle keep-alive connection must not hold up shutdown

    def __init__(self, address: tuple[str, int], *, payload_limit: int | None = None) -> None:
        super().__init__(address, SageMakerRequestHandler)
        self.payload_limit = max_payload_bytes() if payload_limit is None else payload_limit
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        # The container logs every request, as SageMaker's own containers do; an in-process
        # emulator (the local batch backend) logs only failures, or `make demo` drowns in them.
        self.log_successes = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def load_model(self, location: ModelLocation, session_factory: SessionFactory = create_session) -> None:
        """Load the model; on failure keep the reason, which /ping and /invocations then report."""
        started = time.perf_counter()
        try:
            model = location.load(session_factory)
        except SinferError as exc:
            self.load_error = exc.message
        except Exception as exc:  # anything else is a bug, but the container must still say why
            traceback.print_exc(file=sys.stderr)
            self.load_error = f"{type(exc).__name__}: {exc}"
        else:
            self.model = model
            seconds = time.perf_counter() - started
            print(
                f"sinfer serve: model {model.name} version {model.version} loaded in {seconds:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            return
        print(f"sinfer serve: error: the model did not load: {self.load_error}", file=sys.stderr, flush=True)

    def start_loading(self, location: ModelLocation) -> threading.Thread:
        thread = threading.Thread(
            target=self.load_model, args=(location,), name="sinfer-load-model", daemon=True
        )
        thread.start()
        return thread

    def ready_model(self) -> LoadedModel:
        if self.model is not None:
            return self.model
        raise ModelNotReadyError(
            f"the model failed to load: {self.load_error}"
            if self.load_error
            else "the model is still loading"
        )


def start_in_thread(
    model: LoadedModel,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    payload_limit: int | None = None,
    log_successes: bool = False,
) -> str:
    """Serve an already loaded model from daemon threads for the rest of the process; its base URL.

    The local batch backend drives the container app this way, over HTTP as SageMaker does,
    without a subprocess or a second copy of the model.
    """
    server = SageMakerServer((host, port), payload_limit=payload_limit)
    server.model = model
    server.log_successes = log_successes
    threading.Thread(target=server.serve_forever, name="sinfer-sagemaker", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return f"http://{bound_host!s}:{bound_port}"


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, message: str, *headers: tuple[str, str]) -> _Response:
    return _Response(status, json.dumps({"error": message}).encode("utf-8"), headers=headers)


class SageMakerRequestHandler(RequestHandler):
    _ROUTES: Final = {"/ping": "GET", "/execution-parameters": "GET", "/invocations": "POST"}

    @property
    def _server(self) -> SageMakerServer:
        return cast(SageMakerServer, self.server)

    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on these names
        self._send(self._route("GET"))

    def do_POST(self) -> None:  # noqa: N802
        try:
            response = self._route("POST")
        except IncompleteBodyError as exc:
            self.refuse_incomplete(exc, lambda message: self._send(_error(400, message)))
            return
        self._send(response)

    def _route(self, method: str) -> _Response:
        malformed = self._malformed()
        if malformed is not None:
            return malformed
        path = self.path.split("?", 1)[0]
        allowed = self._ROUTES.get(path)
        if path != "/invocations" or method != allowed:
            self._discard_body()  # only /invocations reads one
        if allowed is None:
            return _error(404, f"no route {path}; the container serves /ping and /invocations")
        if method != allowed:
            return _error(405, f"{path} takes {allowed}", ("Allow", allowed))
        if path == "/ping":
            return self._ping()
        if path == "/execution-parameters":
            return _Response(200, json.dumps(EXECUTION_PARAMETERS).encode("utf-8"))
        return self._invocations()

    def _ping(self) -> _Response:
        try:
            self._server.ready_model()
        except ModelNotReadyError as exc:
            return _error(503, exc.message)
        return _Response(200, content_type="")

    def _invocations(self) -> _Response:
        refused = self._refusal()
        if refused is not None:
            self._discard_body()
            return refused
        body = self.read_exactly(self.body_length())
        try:
            model = self._server.ready_model()
            request = request_format(self.headers.get("Content-Type"))
            response, content_type = response_format(self.headers.get("Accept"))
            return _Response(200, transform(model, body, request, response), content_type)
        except SinferError as exc:
            return _error(exc.status, exc.message)
        except Exception:  # a bug: say so in the logs, answer 500 rather than drop the connection
            traceback.print_exc(file=sys.stderr)
            return _error(500, "internal error; see the container's logs")

    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _malformed(self) -> _Response | None:
        """A 400 for Content-Length headers that give no one length (then the connection closes)."""
        if self._chunked():
            return None  # (Transfer-Encoding frames it; Content-Length is not read)
        try:
            self.body_length()
        except BodyFramingError as exc:
            self.close_connection = True
            return _error(400, str(exc))
        return None

    def _refusal(self) -> _Response | None:
        """Why the body will not be read, if it will not: chunked, a bad Content-Length, too large."""
        if self._chunked():
            return _error(411, "send the body with a Content-Length (chunked bodies are not read)")
        malformed = self._malformed()
        if malformed is not None:
            return malformed
        length = self.body_length()
        limit = self._server.payload_limit
        if length > limit:
            return _error(
                413,
                f"the body is {length:,} bytes, over MaxPayloadInMB={limit // MiB} ({limit:,} bytes); "
                f"split the input by line (SplitType=Line), or raise the job's MaxPayloadInMB (at most 100)",
            )
        return None

    def handle_expect_100(self) -> bool:
        """Refuse a body before it is sent, for clients that ask first (curl does for large ones)."""
        refused = self._refusal() if self.command == "POST" else None
        if refused is None:
            return super().handle_expect_100()
        self.close_connection = True
        self._send(refused)
        return False

    def _discard_body(self) -> None:
        """Read and drop a body that will not be used.

        Then the connection can carry the next request, and the client reads the answer rather
        than a reset from closing on unread data. A body of unknown length, or far over the
        limit, is not worth reading: the connection closes instead.
        """
        try:
            length = None if self._chunked() else self.body_length()
        except BodyFramingError:
            length = None
        if length is None or length > _DISCARD_FACTOR * self._server.payload_limit:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0 and (chunk := self.rfile.read(min(remaining, MiB))):
            remaining -= len(chunk)
        if remaining:  # the client stopped short: nothing after this is a request
            self.close_connection = True

    def _send(self, response: _Response) -> None:
        content_type = (("Content-Type", response.content_type),) if response.content_type else ()
        self.write_response(response.status, (*content_type, *response.headers), response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # (A request line http.server could not parse leaves no path.)
        if getattr(self, "path", "") == "/ping" and code == 200:
            return  # SageMaker pings every few seconds; a line each would bury the rest
        if not getattr(self.server, "log_successes", True) and isinstance(code, int) and code < 400:
            return
        super().log_request(code, size)
