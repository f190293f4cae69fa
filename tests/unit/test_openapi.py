"""The OpenAPI document: committed and current, complete, valid, and its examples true.

The document is written by hand in :mod:`sinfer.api.openapi`; these tests keep it honest
against the router (every registered route documented, nothing else), against OpenAPI 3.0
itself, and against the demo models (each request example, sent to the API, answers what the
document says it answers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator import validate as validate_schema
from openapi_spec_validator import validate as validate_spec

from sinfer.api import openapi
from sinfer.api.routes import router
from tests.conftest import CallApi

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ROUTE_PARAM = re.compile(r"<(\w+)>")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.document()


def registered_routes() -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route on the router.

    Powertools' Router keys ``_routes`` by a tuple that starts with the rule (``<name>``
    placeholders) and the methods.
    """
    routes = set()
    for key in router._routes:
        rule, methods = key[0], key[1]
        for method in (methods,) if isinstance(methods, str) else methods:
            routes.add((ROUTE_PARAM.sub(r"{\1}", rule), method.lower()))
    assert routes, "found no routes on the router; has Powertools changed how Router stores them?"
    return routes


def documented_operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def resolve(node: Any, doc: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (the document has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve(target, doc)
        return {key: resolve(value, doc) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, doc) for value in node]
    return node


def assert_close(actual: Any, expected: Any, where: str = "$") -> None:
    """Equal, except floats to a tolerance and JSON-in-a-string compared as JSON."""
    if isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-4, abs=1e-6), where
    elif isinstance(expected, str) and expected.startswith(("{", "[")) and isinstance(actual, str):
        assert_close(json.loads(actual), json.loads(expected), where)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(expected), where
        for key, value in expected.items():
            assert_close(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), where
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_close(got, want, f"{where}[{index}]")
    else:
        assert actual == expected, where


# --- committed and current ------------------------------------------------------------------------


def test_committed_file_is_the_generated_document() -> None:
    committed = json.loads(openapi.OPENAPI_PATH.read_text(encoding="utf-8"))
    assert committed == openapi.document(), "stale: run python -m sinfer.api.openapi --write"
    assert openapi.OPENAPI_PATH.read_text(encoding="utf-8") == openapi.render()


def test_check_flags_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a committed file that differs from the document
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(openapi, "OPENAPI_PATH", stale)
    # WHEN checked, THEN it fails; once written, it passes
    assert openapi.main(["--check"]) == 1
    assert openapi.main(["--write"]) == 0
    assert openapi.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == openapi.render()


# --- complete, and nothing more -------------------------------------------------------------------


def test_every_registered_route_is_documented(doc: dict[str, Any]) -> None:
    missing = registered_routes() - set(documented_operations(doc))
    assert not missing, f"routes missing from sinfer/api/openapi.py: {sorted(missing)}"


def test_every_documented_operation_is_a_registered_route(doc: dict[str, Any]) -> None:
    extra = set(documented_operations(doc)) - registered_routes()
    assert not extra, f"documented but not registered on the router: {sorted(extra)}"


def test_path_parameters_match_the_path_templates(doc: dict[str, Any]) -> None:
    for (path, method), op in documented_operations(doc).items():
        declared = {p["name"] for p in resolve(op.get("parameters", []), doc) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), f"{method.upper()} {path}"


def test_operations_are_described_and_list_their_errors(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for op in documented_operations(doc).values()]
    assert len(ids) == len(set(ids))
    for (path, method), op in documented_operations(doc).items():
        assert op["summary"], f"{method.upper()} {path}"
        assert op["description"], f"{method.upper()} {path}"
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), f"{method.upper()} {path}"
        assert {"403", "429", "500"} <= statuses, f"{method.upper()} {path}"
        if path.endswith(("/infer", ":predict")):
            assert {"400", "404", "413", "415", "422", "503"} <= statuses, f"POST {path}"


# --- valid ----------------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_0(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.0.3"
    validate_spec(doc)


def test_examples_match_their_schemas(doc: dict[str, Any]) -> None:
    checked = 0

    def walk(node: Any, where: str) -> None:
        nonlocal checked
        if isinstance(node, dict):
            if "schema" in node and "examples" in node:
                for key, example in node["examples"].items():
                    try:
                        validate_schema(example["value"], node["schema"], cls=OAS30Validator)
                    except ValidationError as exc:
                        pytest.fail(f"{where}/examples/{key}: {exc.message}")
                    checked += 1
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(resolve(doc, doc), "#")
    assert checked > 10


def test_error_schema_lists_every_sinfer_error_code(doc: dict[str, Any]) -> None:
    from sinfer import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.SinferError)]
    codes = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert set(codes) == {cls.code for cls in classes}
    by_status = openapi.error_codes()
    for cls in classes:
        assert cls.code in by_status[cls.status]
    # every sinfer error response's examples carry a code that goes with its status
    for (path, method), op in documented_operations(doc).items():
        for status, response in op["responses"].items():
            content = resolve(response, doc).get("content", {}).get("application/json", {})
            if content.get("schema") != resolve(openapi._schema("Error"), doc):
                continue
            for example in content.get("examples", {}).values():
                assert example["value"]["code"] in by_status[int(status)], f"{method.upper()} {path} {status}"


def test_security_is_sigv4_everywhere(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["sigv4"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert (scheme["type"], scheme["name"], scheme["in"]) == ("apiKey", "Authorization", "header")
    assert doc["security"] == [{"sigv4": []}]
    assert "ApiAuth=NONE" in scheme["description"]


# --- true: the examples are what the API answers ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/models/{name}:predict", "post"), ("/v2/models/{name}/infer", "post")],
)
def test_request_examples_answer_as_documented(
    call_api: CallApi, doc: dict[str, Any], path: str, method: str
) -> None:
    op = doc["paths"][path][method]
    requests = op["requestBody"]["content"]["application/json"]["examples"]
    responses = op["responses"]["200"]["content"]["application/json"]["examples"]
    assert set(requests) == set(responses)
    for key, example in requests.items():
        model = key.split("-")[0]  # "digits-b64" is a digits example
        response = call_api(method.upper(), path.replace("{name}", model), example["value"])
        assert response.status == 200, (key, response.body)
        assert_close(json.loads(response.body), responses[key]["value"], key)


def test_metadata_example_is_what_the_api_answers(call_api: CallApi, doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v2/models/{name}"]["get"]
    example = op["responses"]["200"]["content"]["application/json"]["examples"]["digits"]["value"]
    assert json.loads(call_api("GET", "/v2/models/digits").body) == example


def test_the_api_serves_the_committed_document(call_api: CallApi, doc: dict[str, Any]) -> None:
    response = call_api("GET", "/openapi.json")
    assert response.status == 200
    assert json.loads(response.body) == doc
