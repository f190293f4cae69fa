"""Run a template's Lambda handler in this process, as ``sam local invoke`` runs it in a container.

In-process means no Docker, a start in milliseconds, and a debugger or profiler that sees the
handler. What is kept from the real runtime:

* the environment: the template's Globals and function variables, then (as in the SAM CLI)
  shell values for variables the template declares, then ``--env-vars`` in SAM's format
  ``{"Parameters": {...}, "<LogicalId>": {"VAR": "value"}}``, then ``--model-store``; plus the
  variables Lambda itself sets (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_SAM_LOCAL``...). Unlike the
  SAM CLI, a variable whose template value names a stack resource (``!Ref DataBucket`` becomes
  ``DataBucket`` offline: a stand-in, not the bucket's real name) is left empty when none of
  those sets it, so that nothing reads or writes a bucket or table of that name in whatever
  account the credentials reach; ``MODEL_STORE`` then falls back to a local folder if given;
* a context whose ``get_remaining_time_in_millis`` counts down from the function's Timeout;
* the handler imported once per "execution environment" and reused by every invocation;
* errors returned as Lambda returns them (``errorMessage``, ``errorType``, ``stackTrace``).

What it cannot give is an interpreter per function. Isolation is by import: the handler file is
loaded from its path under a name unique to the function, with its CodeUri folder (and the
folders of layers built from this template) on ``sys.path`` only while it imports; modules it
pulls in from its own folder are then taken out of ``sys.modules``, so two functions that both
have an ``app.py`` or a ``utils.py`` do not see each other's. Installed packages (the sinfer
layer among them) are shared, as they are by the functions of one process anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, TextIO

from aws_lambda_powertools.utilities.typing import LambdaContext

from sinfer.local.apigw import ACCOUNT_ID
from sinfer.local.template import FunctionSpec, Template, env_value, pseudo_parameters

Handler = Callable[[Any, Any], Any]


class LocalRuntimeError(Exception):
    """The function cannot be set up locally: bad --env-vars file, handler not importable."""


@dataclass
class FixedLambdaContext:
    """The attributes Powertools and the handlers read from Lambda's context, with a fixed
    remaining time: for tests and benchmarks, where no deadline should run down (and a test
    can set ``remaining_ms`` to put a handler near its timeout)."""

    function_name: str = "sinfer-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:sinfer-local"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/sinfer-local"
    log_stream_name: str = "local"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class LocalLambdaContext(LambdaContext):
    """The context object Lambda passes to handlers, with a real deadline."""

    def __init__(self, spec: FunctionSpec, request_id: str | None = None) -> None:
        region = pseudo_parameters()["AWS::Region"]
        self._function_name = spec.function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{spec.function_name}"
        self._memory_limit_in_mb = spec.memory_mb
        self._aws_request_id = request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{spec.function_name}"
        self._log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]  # an instance method here
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- environment ---------------------------------------------------------------------------


def read_env_vars_file(path: Path) -> dict[str, dict[str, str]]:
    """SAM's ``--env-vars`` JSON: ``{"Parameters": {...every function}, "<LogicalId>": {...}}``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocalRuntimeError(f"env vars file {path} not found") from None
    except (OSError, ValueError) as exc:
        raise LocalRuntimeError(f"env vars file {path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise LocalRuntimeError(
            f"env vars file {path} must map function logical ids (or Parameters, for all functions) "
            'to variables: {"PredictApiFunction": {"VAR": "value"}}'
        )
    return {str(fn): {str(k): env_value(v) for k, v in values.items()} for fn, values in doc.items()}


def runtime_variables(spec: FunctionSpec) -> dict[str, str]:
    """The variables Lambda sets for every function (the subset the SAM CLI sets too)."""
    region = str(pseudo_parameters()["AWS::Region"])
    return {
        "AWS_SAM_LOCAL": "true",  # also how Powertools Tracer knows not to look for an X-Ray daemon
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
    }


def function_environment(
    spec: FunctionSpec,
    env_vars: Mapping[str, Mapping[str, str]] | None = None,
    model_store: str | None = None,
    shell: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Everything the function sees on top of this process's environment, in SAM's precedence."""
    shell = os.environ if shell is None else shell
    env = runtime_variables(spec)
    env.update({name: shell.get(name, value) for name, value in spec.environment.items()})
    for section in ("Parameters", spec.logical_id):
        env.update((env_vars or {}).get(section, {}))
    if model_store is not None:
        env["MODEL_STORE"] = model_store
    return env


def clear_stand_ins(
    spec: FunctionSpec,
    env: dict[str, str],
    env_vars: Mapping[str, Mapping[str, str]] | None = None,
    model_store: str | None = None,
    shell: Mapping[str, str] | None = None,
) -> list[str]:
    """Empty each variable in ``env`` whose template value names a stack resource by a stand-in
    and that the shell, ``env_vars`` or ``model_store`` did not set; returns their names."""
    shell = os.environ if shell is None else shell
    given = set(shell)
    for section in ("Parameters", spec.logical_id):
        given.update((env_vars or {}).get(section, {}))
    if model_store is not None:
        given.add("MODEL_STORE")
    cleared = [name for name in spec.placeholders if name not in given]
    for name in cleared:
        env[name] = ""
    return cleared


def stand_ins_notice(spec: FunctionSpec, cleared: list[str]) -> str:
    """One line on what was left empty and how to set it (for stderr), or ""."""
    if not cleared:
        return ""
    resources = sorted({r for name in cleared for r in spec.placeholders.get(name, ())})
    return (
        f"{', '.join(cleared)} left empty: in the template they name stack resources "
        f"({', '.join(resources)}) that exist once deployed. Set them in the shell or with "
        "--env-vars to use a deployed stack's, or the names `sinfer local` prints."
    )


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of the block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def logs_to_stderr() -> Iterator[TextIO]:
    """Send everything written to file descriptor 1 to stderr; yield a stream to the real stdout.

    ``sam local invoke`` prints the function's logs on stderr and only the response on stdout,
    so the output pipes into ``jq``. Powertools' Logger holds the ``sys.stdout`` it saw when it
    was created and its Metrics print EMF lines, so swapping ``sys.stdout`` is not enough: the
    descriptor itself is redirected.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    real_stdout = os.fdopen(os.dup(saved), "w", encoding="utf-8", closefd=True)
    os.dup2(2, 1)
    try:
        yield real_stdout
    finally:
        sys.stdout.flush()
        real_stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real_stdout.close()


# --- importing the handler -----------------------------------------------------------------


def _module_file(code_dir: Path, module: str) -> Path:
    relative = Path(*module.replace("/", ".").split("."))
    for candidate in (code_dir / relative.with_suffix(".py"), code_dir / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise LocalRuntimeError(f"handler module {module!r} not found under {code_dir} (no {relative}.py)")


def _unique_name(spec: FunctionSpec, module: str) -> str:
    return "_sinfer_fn_{}__{}".format(spec.logical_id, module.replace("/", "_").replace(".", "_"))


def _found_in(module: ModuleType, folder: Path) -> bool:
    """Whether ``module`` was imported from ``folder`` as a sys.path entry (not merely below it)."""
    file = getattr(module, "__file__", None)
    if file is None or not Path(file).resolve().is_relative_to(folder.resolve()):
        return False
    top = Path(file).resolve().relative_to(folder.resolve()).parts[0]
    return top.removesuffix(".py") == module.__name__.split(".", 1)[0]


def _exec_module(name: str, file: Path, search_path: tuple[Path, ...]) -> ModuleType:
    """Import ``file`` as ``name`` with ``search_path`` first on sys.path, only for the import."""
    module_spec = importlib.util.spec_from_file_location(name, file)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    before = set(sys.modules)
    sys.modules[name] = module
    entries = [str(p) for p in search_path]
    sys.path[:0] = entries
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        for entry in entries:
            sys.path.remove(entry)  # the first occurrence: ours, even if the module added more
        for added in set(sys.modules) - before - {name}:
            if _found_in(sys.modules[added], search_path[0]):
                del sys.modules[added]  # the function's own helpers stay private to it
    return module


def import_handler(spec: FunctionSpec) -> Handler:
    """The handler function, imported once per process (a warm execution environment)."""
    module_name, _, function_name = spec.handler.rpartition(".")
    file = _module_file(spec.code_dir, module_name)
    name = _unique_name(spec, module_name)
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(file):
        try:
            module = _exec_module(name, file, (spec.code_dir, *spec.layer_dirs))
        except (ImportError, SyntaxError) as exc:
            raise LocalRuntimeError(f"Unable to import module {module_name!r}: {exc}") from None
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise LocalRuntimeError(f"Handler {function_name!r} missing on module {module_name!r} ({file})")
    return handler  # type: ignore[no-any-return]


# --- invoking ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call's outcome: the handler's return value, or Lambda's error document."""

    request_id: str
    result: Any
    error: dict[str, Any] | None
    duration_ms: float
    timeout_s: int

    @property
    def timed_out(self) -> bool:
        """Ran past the function's Timeout: Lambda would have stopped it and returned an error."""
        return self.duration_ms > self.timeout_s * 1000

    @property
    def payload(self) -> Any:
        return self.error if self.error is not None else self.result

    def report(self, memory_mb: int) -> str:
        """Lambda's REPORT log line, with this process's peak memory."""
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        line = (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Memory Size: {memory_mb} MB\tMax Memory Used: {peak_mb} MB"
        )
        if self.timed_out:
            line += f"\tExceeded Timeout: {self.timeout_s} s (Lambda would have stopped it)"
        return line


def error_document(exc: BaseException, request_id: str) -> dict[str, Any]:
    """What Lambda returns when a handler raises."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class LocalFunction:
    """One function's execution environment in this process.

    Use it as a context manager: entering applies the function's environment and imports the
    handler (once), leaving restores the environment. Invocations run one at a time, as in a
    Lambda execution environment; callers that serve concurrently must serialise them.
    """

    def __init__(self, spec: FunctionSpec, environment: Mapping[str, str]) -> None:
        self.spec = spec
        self.environment = dict(environment)
        self._handler: Handler | None = None
        self._stack = ExitStack()
        self.cleared: list[str] = []  # (from_template) stand-in variables left empty

    @classmethod
    def from_template(
        cls,
        template: Path | str,
        logical_id: str | None = None,
        env_vars_file: Path | None = None,
        model_store: str | None = None,
        default_store: str | None = None,
    ) -> LocalFunction:
        """The function as ``sinfer invoke`` and ``sinfer serve`` run it: stand-ins for stack
        resources left empty (listed in ``cleared``), and ``MODEL_STORE``, where the template's
        is such a stand-in and nothing else sets it, ``default_store``."""
        spec = Template.load(template).function(logical_id)
        env_vars = read_env_vars_file(env_vars_file) if env_vars_file is not None else None
        environment = function_environment(spec, env_vars, model_store)
        cleared = clear_stand_ins(spec, environment, env_vars, model_store)
        if "MODEL_STORE" in cleared and default_store is not None:
            environment["MODEL_STORE"] = default_store
            cleared.remove("MODEL_STORE")
        function = cls(spec, environment)
        function.cleared = cleared
        return function

    def __enter__(self) -> LocalFunction:
        self._stack.enter_context(patched_environ(self.environment))
        try:
            if self._handler is None:
                self._handler = import_handler(self.spec)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        if self._handler is None:
            raise RuntimeError("enter the LocalFunction (with ...) before invoking it")
        context = LocalLambdaContext(self.spec, request_id)
        started = time.perf_counter()
        result: Any = None
        error = None
        try:
            result = self._handler(event, context)
        except Exception as exc:  # the function's own failure: Lambda reports it, and so do we
            traceback.print_exc(file=sys.stderr)
            error = error_document(exc, context.aws_request_id)
        duration_ms = (time.perf_counter() - started) * 1000
        return Invocation(context.aws_request_id, result, error, duration_ms, self.spec.timeout_s)
