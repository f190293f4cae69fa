"""Every sample event under events/api/ through predict_api's handler, as ``sinfer invoke`` runs it.

The handler is found, configured and called by :mod:`sinfer.local.lambda_runtime` from the real
template.yaml, so these tests also prove that the template's handler wiring works locally. The
expected statuses live beside the events (events/api/expected.json); predictions are compared
with scikit-learn's own on the same held-out rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from events import build_events
from models.build_models import train_breast_cancer, train_digits
from sinfer.local.apigw import HttpResponse, to_http_response
from sinfer.local.lambda_runtime import LocalFunction
from tests.conftest import EVENTS, ROOT

API_EVENTS = EVENTS / "api"
EXPECTED: dict[str, int] = json.loads((API_EVENTS / "expected.json").read_text(encoding="utf-8"))
EVENT_FILES = sorted(API_EVENTS.glob("*/*.json"))


@pytest.fixture
def predict_api(model_store: Path) -> Iterator[LocalFunction]:
    with LocalFunction.from_template(
        ROOT / "template.yaml", "PredictApiFunction", model_store=str(model_store)
    ) as fn:
        yield fn


def _call(function: LocalFunction, event_file: Path) -> HttpResponse:
    invocation = function.invoke(json.loads(event_file.read_text(encoding="utf-8")))
    assert invocation.error is None, invocation.error
    return to_http_response(invocation.result)


def _event_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_the_corpus_has_both_payload_formats_of_every_expected_request() -> None:
    for flavour in ("rest", "http"):
        assert sorted(p.stem for p in (API_EVENTS / flavour).glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("event_file", EVENT_FILES, ids=_event_id)
def test_event_gets_its_expected_status(predict_api: LocalFunction, event_file: Path) -> None:
    response = _call(predict_api, event_file)
    assert response.status == EXPECTED[event_file.stem], response.body[:300]
    if response.status >= 400:
        assert json.loads(response.body)["error"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rest_and_http_events_get_the_same_answer(predict_api: LocalFunction, name: str) -> None:
    rest = _call(predict_api, API_EVENTS / "rest" / f"{name}.json")
    http = _call(predict_api, API_EVENTS / "http" / f"{name}.json")
    assert (rest.status, rest.body) == (http.status, http.body)


def _labels(response: HttpResponse) -> list[str]:
    return [p["label"] for p in json.loads(response.body)["predictions"]]


def test_digits_events_predict_what_sklearn_predicts(predict_api: LocalFunction) -> None:
    # GIVEN scikit-learn's predictions for the held-out rows the events carry
    _, _, expected = train_digits()
    # THEN the raw rows, the same first row as a base64 PNG and as a PNG body agree with them
    assert _labels(_call(predict_api, API_EVENTS / "rest/predict_digits.json")) == [
        str(v) for v in expected[:3]
    ]
    for name in ("predict_digits_b64_png", "predict_digits_png_body"):
        assert _labels(_call(predict_api, API_EVENTS / f"rest/{name}.json")) == [str(expected[0])]
    infer = json.loads(_call(predict_api, API_EVENTS / "http/infer_digits_json.json").body)
    assert infer["id"] == "sample-1"
    assert infer["outputs"][0]["data"] == expected[:3].tolist()


def test_breast_cancer_events_predict_what_sklearn_predicts(predict_api: LocalFunction) -> None:
    model, x_test, expected, _, classes = train_breast_cancer()
    assert _labels(_call(predict_api, API_EVENTS / "rest/predict_breast_cancer.json")) == [
        classes[v] for v in expected[:2]
    ]
    # The binary tensor response decodes with tritonclient's own parser.
    response = _call(predict_api, API_EVENTS / "rest/infer_breast_cancer_binary.json")
    header_length = int(response.headers["Inference-Header-Content-Length"])
    result = triton.InferResult.from_response_body(response.body, header_length=header_length)
    assert result.as_numpy("output_label").tolist() == expected[:2].tolist()
    probabilities = [json.loads(item) for item in result.as_numpy("output_probability")]
    sklearn = model.predict_proba(x_test[:2])
    assert np.allclose([[p["0"], p["1"]] for p in probabilities], sklearn, atol=1e-5)


def test_bodies_are_base64_as_api_gateway_sends_them_with_binary_media_types() -> None:
    event = json.loads((API_EVENTS / "rest/predict_digits_png_body.json").read_text(encoding="utf-8"))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]).startswith(b"\x89PNG")


def test_committed_events_are_what_the_builder_writes() -> None:
    stale = build_events.stale(build_events.build())
    assert stale == [], f"regenerate with `python -m events.build_events`: {stale}"
