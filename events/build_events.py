"""Build the sample API Gateway events under events/api/ (run from the repo root):

    python -m events.build_events            # writes events/api/{rest,http}/*.json and expected.json
    python -m events.build_events --check    # exits 1 if the committed files differ

The same files feed ``sam local invoke -e``, ``sinfer invoke --event`` and tests/functional/
test_events.py. Each request is written once below and rendered in both payload formats by
:mod:`sinfer.local.apigw` (the builders ``sinfer serve`` uses), so the samples cannot drift from
what the local server sends. Inputs are real held-out rows of the demo models' data sets, and
the per-request fields (request id, times) are fixed, so regenerating gives identical files.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton
from PIL import Image

from events._generate import run
from events._generate import stale as stale  # the tests check the committed files with it
from models.build_models import train_breast_cancer, train_digits
from sinfer.local.apigw import PayloadVersion, api_event

ROOT = Path(__file__).resolve().parent / "api"
FOLDERS: dict[PayloadVersion, str] = {"1.0": "rest", "2.0": "http"}
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
REQUEST_TIME = "09/Apr/2015:12:34:56 +0000"
REQUEST_EPOCH_MS = 1428582896000
USER_AGENT = "sinfer-sample-events"
JSON = "application/json"


@dataclass(frozen=True)
class Sample:
    """One request, rendered as a REST (1.0) and an HTTP API (2.0) event, and the status it gets."""

    name: str
    method: str
    path: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_body(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _float32_list(rows: np.ndarray[Any, Any]) -> list[Any]:
    """Shortest decimals that give back the same float32 values (13.08, not 13.079999923706055)."""
    return [[float(str(value)) for value in row] for row in rows.astype(np.float32)]


def _png(row: np.ndarray[Any, Any]) -> bytes:
    """An 8x8 grey PNG of a digits row (0..16 scaled to 0..255, as the manifest scales back)."""
    pixels = np.round(row.reshape(8, 8) * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _binary_infer_body(model_input: str, rows: np.ndarray[Any, Any], outputs: list[str]) -> tuple[bytes, int]:
    """An Open Inference Protocol request with binary tensor data, exactly as tritonclient sends it."""
    tensor = triton.InferInput(model_input, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows.astype(np.float32), binary_data=True)
    requested = [triton.InferRequestedOutput(name, binary_data=True) for name in outputs]
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=requested)
    return bytes(body), int(json_size or len(body))


def samples() -> list[Sample]:
    _, digits_rows, _ = train_digits()
    _, cancer_rows, _, columns, _ = train_breast_cancer()
    digits, cancer = digits_rows[:3], cancer_rows[:2]
    cancer_instances = [dict(zip(columns, row, strict=True)) for row in _float32_list(cancer)]
    binary_body, json_size = _binary_infer_body("features", cancer, ["output_label", "output_probability"])
    png = _png(digits[0])
    return [
        Sample("health_live", "GET", "/v2/health/live", 200),
        Sample("health_ready", "GET", "/v2/health/ready", 200),
        Sample("server_metadata", "GET", "/v2", 200),
        Sample("model_metadata_digits", "GET", "/v2/models/digits", 200),
        Sample("model_ready_breast_cancer", "GET", "/v2/models/breast_cancer/ready", 200),
        Sample(
            "predict_digits",
            "POST",
            "/v1/models/digits:predict",
            200,
            _json_body({"instances": _float32_list(digits)}),
            {"Content-Type": JSON},
        ),
        Sample(
            "predict_digits_b64_png",
            "POST",
            "/v1/models/digits:predict",
            200,
            _json_body({"instances": [{"b64": base64.b64encode(png).decode("ascii")}]}),
            {"Content-Type": JSON},
        ),
        Sample(
            "predict_digits_png_body",
            "POST",
            "/v1/models/digits:predict",
            200,
            png,
            {"Content-Type": "image/png"},
        ),
        Sample(
            "predict_breast_cancer",
            "POST",
            "/v1/models/breast_cancer:predict",
            200,
            _json_body({"instances": cancer_instances}),
            {"Content-Type": JSON},
        ),
        Sample(
            "infer_digits_json",
            "POST",
            "/v2/models/digits/infer",
            200,
            _json_body(
                {
                    "id": "sample-1",
                    "inputs": [
                        {
                            "name": "pixels",
                            "shape": list(digits.shape),
                            "datatype": "FP32",
                            "data": _float32_list(digits),
                        }
                    ],
                }
            ),
            {"Content-Type": JSON},
        ),
        Sample(
            "infer_breast_cancer_binary",
            "POST",
            "/v2/models/breast_cancer/infer",
            200,
            binary_body,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(json_size)},
        ),
        Sample(
            "error_unknown_model",
            "POST",
            "/v1/models/no_such_model:predict",
            404,
            _json_body({"instances": [[0.0]]}),
            {"Content-Type": JSON},
        ),
        Sample(
            "error_wrong_shape",
            "POST",
            "/v2/models/digits/infer",
            422,
            _json_body(
                {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": [0.0] * 63}]}
            ),
            {"Content-Type": JSON},
        ),
        Sample(
            "error_malformed_json",
            "POST",
            "/v1/models/digits:predict",
            400,
            b'{"instances": [',
            {"Content-Type": JSON},
        ),
        Sample(
            "error_unsupported_media_type",
            "POST",
            "/v1/models/digits:predict",
            415,
            b"0,0,5,13,9,1",
            {"Content-Type": "text/csv"},
        ),
    ]


def render(sample: Sample, version: PayloadVersion) -> dict[str, Any]:
    headers = {**sample.headers, "User-Agent": USER_AGENT}
    event = api_event(version, sample.method, sample.path, sample.body, headers)
    context = event["requestContext"]
    context["requestId"] = REQUEST_ID
    if version == "2.0":
        context["time"], context["timeEpoch"] = REQUEST_TIME, REQUEST_EPOCH_MS
    else:
        context["requestTime"], context["requestTimeEpoch"] = REQUEST_TIME, REQUEST_EPOCH_MS
    return event


def build() -> dict[Path, bytes]:
    """Every file under events/api/, by path, with its exact bytes."""
    files: dict[Path, bytes] = {}
    expected: dict[str, int] = {}
    for sample in samples():
        expected[sample.name] = sample.status
        for version, folder in FOLDERS.items():
            files[ROOT / folder / f"{sample.name}.json"] = _dump(render(sample, version))
    files[ROOT / "expected.json"] = _dump(expected)
    return files


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    return run(__doc__, ROOT, build, argv)


if __name__ == "__main__":
    sys.exit(main())
