"""The SageMaker container app as SageMaker drives it, and the Dockerfile that packages it.

``sinfer serve --sagemaker`` runs in a subprocess on a loopback port, started as the image's
ENTRYPOINT starts it, once on a model folder (what ``model.tar.gz`` unpacks to) and once on a
store with ``--model``. Multi-record bodies go in as Batch Transform sends them (SplitType=Line,
BatchStrategy=MultiRecord); every answer is compared line by line with the model's own
predictions (``LoadedModel`` from the repository's store). Docker is not available here, so the
Dockerfile is checked by parsing it: its instructions, that what it copies exists, and (its
install step without Docker) that what it copies builds into a package that ships every file and
serves from outside the repository.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import ModelRegistry
from sinfer.local.stack import free_port
from sinfer.model.store import open_store
from tests.conftest import MODELS, ROOT
from tests.integration.processes import ServerProcess as Container
from tests.integration.processes import spawn

integration = pytest.mark.integration

DOCKERFILE = ROOT / "containers" / "sagemaker" / "Dockerfile"
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
}
for _name in ("SINFER_MODEL", "SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MAX_PAYLOAD_IN_MB"):
    ENV.pop(_name, None)


def _launch(tmp_path: Path, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Container:
    return spawn(
        tmp_path,
        "sagemaker",
        lambda port: ["serve", "--sagemaker", "--port", str(port), *args],
        env or ENV,
        cwd,
    )


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Container:
    """Start the app and wait for SageMaker's signal that it is ready: /ping 200, empty body."""
    container = _launch(tmp_path, *args, env=env, cwd=cwd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            pytest.fail(
                f"sinfer serve --sagemaker exited with {container.process.returncode}:\n{container.logs()}"
            )
        try:
            with urllib.request.urlopen(f"{container.url}/ping", timeout=2) as response:
                if response.status == 200 and response.read() == b"":
                    return container
        except urllib.error.HTTPError as error:
            error.read()
            time.sleep(0.1)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    container.stop()
    pytest.fail(f"sinfer serve --sagemaker did not answer /ping within 60 s:\n{container.logs()}")


def _call(
    container: Container,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(container.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _invoke(container: Container, body: bytes, content_type: str, accept: str) -> bytes:
    status, headers, answer = _call(
        container, "POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept}
    )
    assert status == 200, answer
    assert headers["Content-Type"] == accept
    return answer


@pytest.fixture(scope="module")
def models() -> ModelRegistry:
    return ModelRegistry(open_store(MODELS))


@pytest.fixture(scope="module")
def digits(models: ModelRegistry) -> LoadedModel:
    return models.get("digits")


@pytest.fixture(scope="module")
def rows() -> list[list[float]]:
    """Digit images as Batch Transform would carry them: 64 pixel values, 0 to 16."""
    generator = np.random.default_rng(7)
    values: list[list[float]] = generator.integers(0, 17, size=(40, 64)).astype(float).tolist()
    return values


@pytest.fixture(scope="module")
def folder_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """The app on a model folder: models/digits/1 as SageMaker unpacks it into /opt/ml/model."""
    tmp = tmp_path_factory.mktemp("sagemaker")
    model_dir = tmp / "opt-ml-model"
    shutil.copytree(MODELS / "digits" / "1", model_dir)
    container = _start(tmp, "--model-dir", str(model_dir))
    try:
        yield container
    finally:
        assert container.stop() == 0, container.logs()


# --- the SageMaker contract --------------------------------------------------------------


@integration
def test_ping_execution_parameters_and_the_ready_line(folder_container: Container) -> None:
    status, headers, body = _call(folder_container, "GET", "/ping")
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")

    status, headers, body = _call(folder_container, "GET", "/execution-parameters")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }

    folder_container.stdout.seek(0)
    line = folder_container.stdout.read().decode().strip()
    assert line.startswith(f"sinfer serve: http://127.0.0.1:{folder_container.port}/ (SageMaker container")
    assert "model digits version 1" in line


@integration
def test_multi_record_jsonl_gives_the_models_predictions_line_by_line(
    folder_container: Container, digits: LoadedModel, rows: list[list[float]]
) -> None:
    # GIVEN a MultiRecord body: bare instances, wrapped ones, and bad lines among them
    lines = [json.dumps(row).encode() for row in rows]
    lines[3] = json.dumps({"instance": rows[3]}).encode()
    bad = {7: b"{not json", 12: b"", 20: json.dumps(rows[20][:10]).encode()}
    for index, line in bad.items():
        lines[index] = line
    body = b"\n".join(lines) + b"\n"

    # WHEN it is posted as Batch Transform does
    answer = _invoke(folder_container, body, "application/jsonlines", "application/jsonlines")

    # THEN one line per input line; the good ones equal the model's own predictions
    out = [json.loads(line) for line in answer.decode().splitlines()]
    assert len(out) == len(rows)
    good = [index for index in range(len(rows)) if index not in bad]
    expected = dict(zip(good, digits.predict([rows[index] for index in good]), strict=True))
    for index, line in enumerate(out):
        if index in bad:
            assert set(line) == {"error"}, line
        else:
            assert line == {"prediction": expected[index]}, index
    assert [out[index]["error"]["code"] for index in sorted(bad)] == [
        "invalid_json",
        "blank_line",
        "invalid_input",
    ]
    assert out[7]["error"]["message"].startswith("line 8 ")


@integration
def test_csv_rows_give_labels_and_quoted_error_lines(
    folder_container: Container, digits: LoadedModel, rows: list[list[float]]
) -> None:
    lines = [",".join(f"{value:g}" for value in row).encode() for row in rows]
    lines[5] = b"1,2,3"
    body = b"\r\n".join(lines) + b"\r\n"

    answer = _invoke(folder_container, body, "text/csv", "text/csv")

    out = answer.decode().split("\n")
    assert out[-1] == ""
    out = out[:-1]
    assert len(out) == len(rows)
    good = [index for index in range(len(rows)) if index != 5]
    labels = [prediction["label"] for prediction in digits.predict([rows[index] for index in good])]
    assert [out[index] for index in good] == labels
    assert out[5] == 'error,ragged_row,"line 6: expected 64 cells (one per header column), got 3"'

    # the same rows answered as JSON Lines carry the whole prediction
    as_jsonl = _invoke(folder_container, body, "text/csv", "application/jsonlines")
    out_jsonl = [json.loads(line) for line in as_jsonl.decode().splitlines()]
    assert [out_jsonl[index]["prediction"]["label"] for index in good] == labels


@integration
def test_application_json_is_read_one_document_per_line(
    folder_container: Container, rows: list[list[float]]
) -> None:
    body = b"\n".join(json.dumps({"instance": row}).encode() for row in rows[:3])
    answer = _invoke(folder_container, body, "application/json", "application/x-jsonlines")
    assert len(answer.decode().splitlines()) == 3


@integration
def test_unsupported_types_are_refused_whole(folder_container: Container) -> None:
    status, headers, body = _call(
        folder_container, "POST", "/invocations", b"\x89PNG", {"Content-Type": "image/png"}
    )
    assert status == 415
    assert headers["Content-Type"] == "application/json"
    assert "text/csv" in json.loads(body)["error"]

    status, _, body = _call(
        folder_container,
        "POST",
        "/invocations",
        b"[1]\n",
        {"Content-Type": "application/jsonlines", "Accept": "image/png"},
    )
    assert status == 406


@integration
def test_a_body_over_max_payload_is_413_and_the_server_carries_on(
    folder_container: Container, rows: list[list[float]]
) -> None:
    # GIVEN a body one byte over MaxPayloadInMB (6 MiB), sent whole
    line = json.dumps(rows[0]).encode() + b"\n"
    body = line * (6 * 1024 * 1024 // len(line) + 1)
    assert len(body) > 6 * 1024 * 1024

    status, _, answer = _call(
        folder_container, "POST", "/invocations", body, {"Content-Type": "application/jsonlines"}
    )

    assert status == 413
    assert "MaxPayloadInMB=6" in json.loads(answer)["error"]

    # a client that asks first (Expect: 100-continue) is refused before it sends the body
    connection = http.client.HTTPConnection("127.0.0.1", folder_container.port, timeout=10)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/jsonlines")
    connection.putheader("Content-Length", str(len(body)))
    connection.putheader("Expect", "100-continue")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    response.read()
    connection.close()

    # and the container still answers
    assert _invoke(folder_container, line, "application/jsonlines", "application/jsonlines").count(b"\n") == 1


@integration
def test_routes_and_methods_outside_the_contract(folder_container: Container) -> None:
    assert _call(folder_container, "GET", "/v2/health/ready")[0] == 404
    status, headers, _ = _call(folder_container, "GET", "/invocations")
    assert (status, headers["Allow"]) == (405, "POST")
    status, headers, _ = _call(folder_container, "POST", "/ping", b"x", {"Content-Type": "text/plain"})
    assert (status, headers["Allow"]) == (405, "GET")


@integration
def test_a_store_layout_serves_the_model_named(tmp_path: Path, models: ModelRegistry) -> None:
    # GIVEN the repository's whole store (ONNX models and foundation-model entries) and --model
    container = _start(tmp_path, "--model-dir", "models", "--model", "breast_cancer")
    try:
        cancer = models.get("breast_cancer")
        generator = np.random.default_rng(3)
        features = (generator.random((25, 30)) * ([20, 30, 150, 1500, 0.1] * 6)).tolist()
        body = b"\n".join(",".join(repr(v) for v in row).encode() for row in features) + b"\n"

        answer = _invoke(container, body, "text/csv", "application/jsonlines")

        out = [json.loads(line) for line in answer.decode().splitlines()]
        assert out == [{"prediction": prediction} for prediction in cancer.predict(features)]
    finally:
        assert container.stop() == 0, container.logs()


# --- starting and stopping ---------------------------------------------------------------


@integration
def test_ping_is_503_with_the_reason_when_the_model_cannot_load(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(MODELS / "digits" / "1", model_dir)
    with (model_dir / "model.onnx").open("ab") as handle:
        handle.write(b"tampered")
    container = _launch(tmp_path, "--model-dir", str(model_dir))
    try:
        deadline = time.monotonic() + 30
        while "did not load" not in container.logs() and time.monotonic() < deadline:
            assert container.process.poll() is None, container.logs()
            time.sleep(0.1)
        status, _, body = _call(container, "GET", "/ping")
        assert status == 503
        assert "sha256" in json.loads(body)["error"]
        status, _, body = _call(
            container, "POST", "/invocations", b"[1]\n", {"Content-Type": "application/jsonlines"}
        )
        assert status == 503
    finally:
        assert container.stop() == 0


@integration
def test_a_taken_port_and_a_missing_model_are_one_line_each(
    tmp_path: Path, folder_container: Container
) -> None:
    for args, expected in (
        (["--model-dir", str(MODELS / "digits" / "1")], "is already in use"),
        (["--model-dir", str(tmp_path / "absent")], "does not exist"),
        (["--model-dir", "models"], "choose one with --model or SINFER_MODEL"),
    ):
        command = [sys.executable, "-m", "sinfer.cli.main", "serve", "--sagemaker", "--port"]
        port = folder_container.port if expected == "is already in use" else free_port()
        done = subprocess.run(
            [*command, str(port), *args], cwd=ROOT, env=ENV, capture_output=True, timeout=60, check=False
        )
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1, lines
        assert expected in lines[0], lines


@integration
def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    container = _start(tmp_path, "--model-dir", str(MODELS / "digits" / "1"))
    assert container.stop() == 0
    assert "sinfer serve: stopped" in container.logs()


# --- the Dockerfile (Docker itself is not available here) --------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_dockerfile_has_the_instructions_sagemaker_needs() -> None:
    instructions = _instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.12-slim")
    assert {"FROM", "COPY", "RUN", "USER", "EXPOSE", "ENTRYPOINT"} <= set(keywords)
    assert dict(instructions)["EXPOSE"] == "8080"
    user = [rest for keyword, rest in instructions if keyword == "USER"]
    assert user
    assert user[-1] not in {"root", "0"}
    # the last USER comes after every RUN and before ENTRYPOINT: nothing serves as root
    last = {keyword: index for index, keyword in enumerate(keywords)}
    assert last["RUN"] < last["USER"] < last["ENTRYPOINT"]
    assert any("accept-bind-to-port=true" in rest for keyword, rest in instructions if keyword == "LABEL")


def test_dockerfile_installs_the_layers_pinned_requirements_and_copies_what_exists() -> None:
    instructions = _instructions()
    copies = [shlex.split(rest) for keyword, rest in instructions if keyword == "COPY"]
    sources = [source for *sources, _ in copies for source in sources]
    assert "layers/sinfer/requirements.txt" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install -r layers/sinfer/requirements.txt" in runs
    pinned = [
        line
        for line in (ROOT / "layers/sinfer/requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pinned
    assert all("==" in line for line in pinned)


def test_dockerfile_entrypoint_turns_serve_into_the_sagemaker_server() -> None:
    # GIVEN the exec-form ENTRYPOINT and CMD, as docker would run them
    instructions = dict(_instructions())
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    assert json.loads(instructions["CMD"]) == ["serve"]

    # WHEN SageMaker runs `docker run <image> serve` (serve replaces CMD), with sinfer stubbed
    def argv(*args: str) -> list[str]:
        script = entrypoint[2].replace("exec sinfer", "exec printf '%s\\n' sinfer")
        done = subprocess.run(
            [*entrypoint[:2], script, *entrypoint[3:], *args], capture_output=True, check=True
        )
        return done.stdout.decode().splitlines()

    # THEN the container starts the SageMaker server on the model folder, binding every address
    expected = ["sinfer", "serve", "--sagemaker", "--host", "0.0.0.0", "--model-dir", "/opt/ml/model"]
    assert argv("serve") == expected
    assert argv("serve", "--model", "digits") == [*expected, "--model", "digits"]
    assert argv() == expected  # no CMD at all


PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]


def _copy_as_the_dockerfile_does(context: Path) -> None:
    """The Dockerfile's COPY instructions, from the repository into ``context`` (its WORKDIR)."""
    for keyword, rest in _instructions():
        if keyword != "COPY":
            continue
        *sources, destination = shlex.split(rest)
        for source in sources:
            target = (
                context / destination / Path(source).name
                if destination.endswith("/")
                else context / destination
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)


@integration
def test_the_package_as_the_image_installs_it_serves_outside_the_repository(
    tmp_path: Path, digits: LoadedModel, rows: list[list[float]]
) -> None:
    # GIVEN what the Dockerfile copies, built into a wheel as its `pip install .` builds it
    # (offline: no dependencies, the build backend from .venv) and unpacked, away from the repository
    context, dist, site = tmp_path / "context", tmp_path / "dist", tmp_path / "site"
    _copy_as_the_dockerfile_does(context)
    built = subprocess.run(
        [*PIP_WHEEL, "-w", str(dist), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("sinfer-*.whl")
    shutil.unpack_archive(wheel, site, format="zip")

    # THEN every file of the package is in it: its modules and the data they read (openapi.json)
    package = ROOT / "layers" / "sinfer" / "sinfer"
    expected = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    shipped = {
        path.relative_to(site / "sinfer").as_posix()
        for path in (site / "sinfer").rglob("*")
        if path.is_file()
    }
    assert expected - shipped == set(), "files of the package that the wheel leaves out"
    assert "api/openapi.json" in shipped

    # WHEN that package runs the SageMaker server from another folder (PYTHONPATH comes before
    # the editable install's path, which a check confirms)
    env = {**ENV, "PYTHONPATH": str(site)}
    home = tmp_path / "elsewhere"
    home.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import sinfer; print(sinfer.__file__)"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)
    help_text = subprocess.run(
        [sys.executable, "-m", "sinfer.cli.main", "serve", "--help"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--sagemaker" in help_text.stdout
    model_dir = tmp_path / "opt-ml-model"
    shutil.copytree(MODELS / "digits" / "1", model_dir)
    container = _start(tmp_path, "--model-dir", str(model_dir), env=env, cwd=home)
    try:
        body = "".join(json.dumps(row) + "\n" for row in rows[:5]).encode()
        answer = _invoke(container, body, "application/jsonlines", "application/jsonlines")
        wrong = _call(container, "GET", "/invocations")
    finally:
        assert container.stop() == 0, container.logs()

    # THEN it answers as the repository's package does
    lines = [json.loads(line) for line in answer.decode().splitlines()]
    assert [line["prediction"] for line in lines] == json.loads(json.dumps(digits.predict(rows[:5])))
    assert wrong[0] == 405
