"""The OpenAPI 3.0.3 document of predict_api, built as a dict and committed as ``openapi.json``.

The document is written in Python rather than by hand in JSON so that the parts that must
agree with the code are taken from it (error codes and statuses from :mod:`sinfer.errors`,
tensor datatypes from :mod:`sinfer.codecs.dtypes`), and so that the committed file is
byte-for-byte reproducible: ``python -m sinfer.api.openapi --write`` regenerates it and
``--check`` fails when it is stale. ``GET /openapi.json`` serves the committed file, so the
Lambda never builds the document at runtime.

``tests/unit/test_openapi.py`` holds the document to the router (every registered route is
documented and nothing else), validates it, and runs its request examples against the demo
models to check that the documented responses are what the API really answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from sinfer import __version__
from sinfer.api.payload import (
    DEFAULT_SYNC_INSTANCES,
    DEFAULT_SYNC_PAYLOAD_BYTES,
    DEFAULT_SYNC_RESPONSE_BYTES,
    MAX_GZIP_MEMBERS,
)
from sinfer.codecs.dtypes import V2_TO_NUMPY
from sinfer.errors import SinferError
from sinfer.jobs.types import JobStatus, RequestedBackend

OPENAPI_PATH = Path(__file__).with_name("openapi.json")

JSON = "application/json"
OCTET = "application/octet-stream"
TAG_V2 = "Open Inference Protocol v2"
TAG_V1 = "KServe v1"
TAG_JOBS = "Asynchronous jobs"
TAG_DOCS = "Documentation"

Schema = dict[str, Any]


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Schema:
    return _ref("schemas", name)


def _json_content(schema: Schema, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = {key: {"value": value} for key, value in examples.items()}
    return {JSON: media}


def _ok(description: str, schema: Schema, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": _json_content(schema, examples)}


# --- examples: real requests to the demo models, and what the API answers ----------------------
# The test suite sends every request example to the demo store and compares the answer with the
# response example of the same key (floats to a tolerance), so these cannot drift from the code.

DIGIT_3 = [
    0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15,
    11, 1, 0, 0, 0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0,
    0, 7, 13, 13, 9, 0, 0,
]  # fmt: skip
# The same digit as an 8x8 greyscale PNG (pixel = value * 255 / 16).
DIGIT_3_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAARElEQVR42jXGMRGAMBAAsBzHzkuolJeCBHBQB0jAAg4q"
    "oRbqoEhgIlNwzB5Q+z4TSvSOxYgyAojW/t3VQs3Mzcp7eU4fVhgPr6U3F5oAAAAASUVORK5CYII="
)
BREAST_CANCER_COLUMNS = [
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness",
    "mean compactness", "mean concavity", "mean concave points", "mean symmetry",
    "mean fractal dimension", "radius error", "texture error", "perimeter error", "area error",
    "smoothness error", "compactness error", "concavity error", "concave points error",
    "symmetry error", "fractal dimension error", "worst radius", "worst texture",
    "worst perimeter", "worst area", "worst smoothness", "worst compactness", "worst concavity",
    "worst concave points", "worst symmetry", "worst fractal dimension",
]  # fmt: skip
BREAST_CANCER_ROW = [
    12.45, 15.7, 82.57, 477.1, 0.1278, 0.17, 0.1578, 0.08089, 0.2087, 0.07613, 0.3345, 0.8902,
    2.217, 27.19, 0.00751, 0.03345, 0.03672, 0.01137, 0.02165, 0.005082, 15.47, 23.75, 103.4,
    741.6, 0.1791, 0.5249, 0.5355, 0.1741, 0.3985, 0.1244,
]  # fmt: skip

DIGIT_3_PROBABILITIES = [
    1.05686e-06, 2.31286e-06, 0.000500528, 0.998827, 5.67535e-08,
    5.39353e-05, 1.24492e-06, 3.30923e-06, 0.000182262, 0.000428531,
]  # fmt: skip
DIGIT_3_PREDICTION = {
    "label": "3",
    "score": 0.998827,
    "top_k": [
        {"label": "3", "score": 0.998827},
        {"label": "2", "score": 0.000500528},
        {"label": "9", "score": 0.000428531},
    ],
}
# The PNG quantises the pixels, so its scores differ a little from the numbers'.
DIGIT_3_PNG_PREDICTION = {
    "label": "3",
    "score": 0.998816,
    "top_k": [
        {"label": "3", "score": 0.998816},
        {"label": "2", "score": 0.000508345},
        {"label": "9", "score": 0.00042931},
    ],
}
BREAST_CANCER_PREDICTION = {
    "label": "malignant",
    "score": 0.947725,
    "probabilities": {"malignant": 0.947725, "benign": 0.0522749},
}

PREDICT_REQUEST_EXAMPLES: dict[str, Any] = {
    "digits": {"instances": [DIGIT_3]},
    "digits-b64": {"instances": [{"b64": DIGIT_3_PNG_B64}]},
    "breast_cancer": {"instances": [dict(zip(BREAST_CANCER_COLUMNS, BREAST_CANCER_ROW, strict=True))]},
}
PREDICT_RESPONSE_EXAMPLES: dict[str, Any] = {
    "digits": {"predictions": [DIGIT_3_PREDICTION], "model_name": "digits", "model_version": "1"},
    "digits-b64": {"predictions": [DIGIT_3_PNG_PREDICTION], "model_name": "digits", "model_version": "1"},
    "breast_cancer": {
        "predictions": [BREAST_CANCER_PREDICTION],
        "model_name": "breast_cancer",
        "model_version": "1",
    },
}
INFER_REQUEST_EXAMPLES: dict[str, Any] = {
    "digits": {
        "id": "42",
        "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": DIGIT_3}],
    },
    "breast_cancer": {
        "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": BREAST_CANCER_ROW}],
        "outputs": [{"name": "output_probability"}],
    },
}
INFER_RESPONSE_EXAMPLES: dict[str, Any] = {
    "digits": {
        "id": "42",
        "model_name": "digits",
        "model_version": "1",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [3]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [1, 10],
                "data": DIGIT_3_PROBABILITIES,
            },
        ],
    },
    "breast_cancer": {
        "model_name": "breast_cancer",
        "model_version": "1",
        "outputs": [
            {
                "name": "output_probability",
                "datatype": "BYTES",
                "shape": [1],
                "data": ['{"0":0.947725,"1":0.0522749}'],
            }
        ],
    },
}
DIGITS_METADATA = {
    "name": "digits",
    "versions": ["1"],
    "platform": "onnxruntime_onnx",
    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    ],
}

JOB_ID = "job-3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b"
JOB_INPUT = f"s3://sinfer-data-123456789012/inputs/digits/jobs/{JOB_ID}/"
JOB_REQUEST_EXAMPLES: dict[str, Any] = {
    "instances": {"model": "digits", "instances": [DIGIT_3, {"b64": DIGIT_3_PNG_B64}]},
    "input": {"model": "breast_cancer", "input": "s3://sinfer-data-123456789012/staging/patients.csv"},
    "upload": {"model": "digits", "upload": {"filename": "digits.jsonl"}},
}
JOB_CREATED_EXAMPLES: dict[str, Any] = {
    "instances": {
        "job_id": JOB_ID,
        "status_url": f"/jobs/{JOB_ID}",
        "status": "QUEUED",
        "model": "digits",
        "input": JOB_INPUT + "instances.jsonl",
    },
    "input": {
        "job_id": JOB_ID,
        "status_url": f"/jobs/{JOB_ID}",
        "status": "QUEUED",
        "model": "breast_cancer",
        "input": JOB_INPUT.replace("digits", "breast_cancer") + "patients.csv",
    },
    "upload": {
        "job_id": JOB_ID,
        "status_url": f"/jobs/{JOB_ID}",
        "status": "PENDING",
        "model": "digits",
        "input": JOB_INPUT + "digits.jsonl",
        "upload_url": "https://sinfer-data-123456789012.s3.amazonaws.com/inputs/digits/jobs/"
        f"{JOB_ID}/digits.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256&...",
        "upload_method": "PUT",
        "upload_expires_in": 3600,
    },
}
JOB_EXAMPLE: dict[str, Any] = {
    "job_id": JOB_ID,
    "status": "COMPLETED",
    "model": "digits",
    "model_version": "1",
    "backend": "lambda",
    "input": JOB_INPUT + "instances.jsonl",
    "output": f"s3://sinfer-data-123456789012/outputs/digits/jobs/{JOB_ID}/instances.jsonl.predictions.jsonl",
    "summary": f"s3://sinfer-data-123456789012/outputs/digits/jobs/{JOB_ID}/instances.jsonl.summary.json",
    "counts": {"records": 2, "predictions": 2, "errors": 0},
    "error": None,
    "created_at": "2025-01-01T12:00:00.000000Z",
    "updated_at": "2025-01-01T12:00:03.250000Z",
    "result_url": "https://sinfer-data-123456789012.s3.amazonaws.com/outputs/digits/jobs/...",
    "summary_url": "https://sinfer-data-123456789012.s3.amazonaws.com/outputs/digits/jobs/...",
}


# --- errors ---------------------------------------------------------------------------------------

# API Gateway answers these itself, before the function runs, in its own shape.
_GATEWAY_ERRORS = {
    403: (
        "Forbidden",
        "Sent by API Gateway, not sinfer: the request is not SigV4-signed, the signature is "
        "wrong or expired, or the caller lacks `execute-api:Invoke` on this API. Body "
        '`{"message": "..."}`.',
        {"message": "Missing Authentication Token"},
    ),
    429: (
        "TooManyRequests",
        "Sent by API Gateway, not sinfer: the stage's throttling limit (rate 100/s, burst 200 "
        "by default) or the account's limit was reached. Retry with backoff.",
        {"message": "Too Many Requests"},
    ),
}

# What each status means to the caller; the codes that go with it are read from sinfer.errors.
_ERROR_STATUSES: dict[int, tuple[str, str, list[dict[str, str]]]] = {
    400: (
        "BadRequest",
        "Malformed request: the body is not valid JSON, a required field is missing or has the "
        'wrong structure (`{"inputs": [...]}` / `{"instances": [...]}`), an unknown datatype, a '
        "bad `Inference-Header-Content-Length`, or binary data that does not match the declared "
        "`binary_data_size`s.",
        [
            {
                "error": 'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}',
                "code": "bad_request",
            }
        ],
    ),
    404: (
        "NotFound",
        "No such model or version in the model store (`model_not_found`), or no such route "
        "(`not_found`; see `GET /openapi.json`).",
        [
            {"error": "model 'nope' not found", "code": "model_not_found"},
            {"error": "no such route; see GET /openapi.json for the API", "code": "not_found"},
        ],
    ),
    413: (
        "PayloadTooLarge",
        f"Over the synchronous limit: the request body ({DEFAULT_SYNC_PAYLOAD_BYTES:,} bytes by default, "
        f"before or after decompression), the number of `:predict` instances "
        f"({DEFAULT_SYNC_INSTANCES:,} by default) or the response "
        "would be too large for a Lambda invocation. Submit large inputs asynchronously: "
        "`POST /jobs`, or upload them to `s3://<bucket>/inputs/<model>/`.",
        [
            {
                "error": "1,500 instances in one request; the synchronous limit is 1,000; submit large "
                "inputs asynchronously with POST /jobs or by uploading to s3://<bucket>/inputs/<model>/",
                "code": "payload_too_large",
            }
        ],
    ),
    415: (
        "UnsupportedMediaType",
        "The route cannot read this `Content-Type` (`/infer` takes `application/json` or "
        "`application/octet-stream`; `:predict` takes `application/json`, `image/png` or "
        "`image/jpeg`), or the `Content-Encoding` is neither `gzip` nor `deflate`.",
        [
            {
                "error": "Content-Type 'text/csv' is not accepted here; send application/json "
                '({"instances": [...]}) or an image/png or image/jpeg body',
                "code": "unsupported_media_type",
            }
        ],
    ),
    422: (
        "InvalidInput",
        "The request is well formed but does not fit the model: unknown or missing input or "
        "output names, wrong shape, wrong dtype, wrong columns, an image sent to a non-image "
        "input, or data the model cannot run on. The message says what was expected.",
        [
            {
                "error": "instances[0] (input 'pixels'): expected float32 values shaped [64], "
                "got shape [63] (63 values)",
                "code": "invalid_input",
            }
        ],
    ),
    500: (
        "InternalError",
        "An unexpected failure inside sinfer (logged with its traceback; the response leaks "
        "nothing). Bad input never produces a 500.",
        [{"error": "internal error", "code": "internal_error"}],
    ),
    503: (
        "ModelNotReady",
        "The model exists but cannot serve: it failed to load, `model.onnx` does not match the "
        "`sha256` pinned in `model.json` (`model_integrity`), `model.json` is invalid "
        "(`invalid_manifest`), or the model store is unreachable or not configured.",
        [
            {"error": "model 'digits' version '1' failed to load: ...", "code": "model_not_ready"},
            {
                "error": "model 'digits' version '1': model.onnx sha256 is 9f86d0..., but model.json "
                "pins a642fd...; refusing to load",
                "code": "model_integrity",
            },
        ],
    ),
}


def _error_classes() -> list[type[SinferError]]:
    """The errors of :mod:`sinfer.errors`, the API's vocabulary. Subclasses elsewhere (the
    SageMaker container's 406, the batch parsers') are not the API's, and whether they are
    imported must not change this document."""
    found: list[type[SinferError]] = [SinferError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return [cls for cls in found if cls.__module__ == SinferError.__module__]


def error_codes() -> dict[int, list[str]]:
    """Status → the stable ``code`` values sinfer sends with it, from :mod:`sinfer.errors`."""
    by_status: dict[int, list[str]] = {}
    for cls in _error_classes():
        codes = by_status.setdefault(cls.status, [])
        if cls.code not in codes:
            codes.append(cls.code)
    return {status: sorted(codes) for status, codes in sorted(by_status.items())}


def _error_responses() -> dict[str, Any]:
    codes = error_codes()
    responses: dict[str, Any] = {}
    for status, (name, text, examples) in _ERROR_STATUSES.items():
        listed = ", ".join(f"`{code}`" for code in codes.get(status, []))
        responses[name] = {
            "description": f"{text} Codes: {listed}." if listed else text,
            "content": _json_content(_schema("Error"), {example["code"]: example for example in examples}),
        }
    for name, text, example in _GATEWAY_ERRORS.values():
        responses[name] = {
            "description": text,
            "content": _json_content(_schema("GatewayError"), {name: example}),
        }
    return responses


def _responses(ok: dict[str, Any], *statuses: int, ok_status: int = 200) -> dict[str, Any]:
    """An operation's responses: its success, the sinfer errors it can raise, and the common ones."""
    out: dict[str, Any] = {str(ok_status): ok}
    for status in sorted({*statuses, 403, 429, 500}):
        name = _ERROR_STATUSES[status][0] if status in _ERROR_STATUSES else _GATEWAY_ERRORS[status][0]
        out[str(status)] = _ref("responses", name)
    return out


# --- schemas --------------------------------------------------------------------------------------


def _schemas() -> dict[str, Schema]:
    all_codes = sorted({code for codes in error_codes().values() for code in codes})
    datatypes = list(V2_TO_NUMPY)
    return {
        "Error": {
            "type": "object",
            "description": "Every error sinfer itself returns.",
            "required": ["error", "code"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "What was wrong and, for bad input, what was expected.",
                },
                "code": {"type": "string", "enum": all_codes, "description": "Stable, machine-readable."},
            },
            "additionalProperties": False,
        },
        "GatewayError": {
            "type": "object",
            "description": "An error API Gateway returns without calling sinfer.",
            "properties": {"message": {"type": "string"}},
        },
        # Open Inference Protocol v2
        "Datatype": {
            "type": "string",
            "enum": datatypes,
            "description": "Tensor element type. `BYTES` carries strings; outputs that are not "
            "tensors (such as skl2onnx ZipMap probabilities) travel as `BYTES` holding one JSON "
            "document per batch item.",
        },
        "TensorData": {
            "type": "array",
            "items": {},
            "description": "The tensor's elements in row-major order, flat or nested to the "
            "tensor's shape: numbers, booleans for `BOOL`, strings for `BYTES`. Non-finite floats "
            "in outputs are `null`.",
        },
        "Shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": -1},
            "description": "Dimensions; in metadata `-1` marks a dynamic (batch) dimension.",
        },
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string", "description": "Echoed in the response."},
                "parameters": {
                    "type": "object",
                    "properties": {
                        "binary_data_output": {
                            "type": "boolean",
                            "default": False,
                            "description": "Return every output as binary tensor data "
                            "(the response becomes `application/octet-stream`), except those whose "
                            "own `binary_data` is `false`.",
                        }
                    },
                    "additionalProperties": True,
                },
                "inputs": {"type": "array", "minItems": 1, "items": _schema("RequestInput")},
                "outputs": {
                    "type": "array",
                    "items": _schema("RequestOutput"),
                    "description": "The outputs to return, in this order; all of them when absent.",
                },
            },
        },
        "RequestInput": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "description": "One input tensor: `data` inline, or `parameters.binary_data_size` "
            "bytes of the binary section that follows the JSON header.",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": _schema("Datatype"),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "binary_data_size": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Size in bytes of this tensor in the binary section "
                            "(little-endian elements; `BYTES` elements are a 4-byte little-endian "
                            "length followed by the bytes). Inputs take their bytes in order.",
                        }
                    },
                    "additionalProperties": True,
                },
                "data": _schema("TensorData"),
            },
        },
        "RequestOutput": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "parameters": {
                    "type": "object",
                    "properties": {
                        "binary_data": {
                            "type": "boolean",
                            "description": "Return this output as binary tensor data (`true`) or "
                            "as JSON (`false`); when absent, as `binary_data_output` says.",
                        }
                    },
                    "additionalProperties": True,
                },
            },
        },
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string", "description": "The request's `id`, when it had one."},
                "outputs": {"type": "array", "items": _schema("ResponseOutput")},
            },
        },
        "ResponseOutput": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "description": "One output tensor: `data` inline, or `parameters.binary_data_size` "
            "bytes of the binary section after the JSON header.",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": _schema("Datatype"),
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                },
                "data": _schema("TensorData"),
            },
        },
        "TensorMetadata": {
            "type": "object",
            "required": ["name", "datatype", "shape"],
            "properties": {
                "name": {"type": "string"},
                "datatype": _schema("Datatype"),
                "shape": _schema("Shape"),
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string", "example": "onnxruntime_onnx"},
                "inputs": {"type": "array", "items": _schema("TensorMetadata")},
                "outputs": {"type": "array", "items": _schema("TensorMetadata")},
            },
        },
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string", "example": "sinfer"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Live": {
            "type": "object",
            "required": ["live"],
            "properties": {"live": {"type": "boolean"}},
        },
        "Ready": {
            "type": "object",
            "required": ["ready"],
            "properties": {"ready": {"type": "boolean"}},
        },
        "ModelReady": {
            "type": "object",
            "required": ["name", "version", "ready"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "ready": {"type": "boolean"},
            },
        },
        "RepositoryIndex": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "version", "state"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "state": {
                        "type": "string",
                        "enum": ["READY", "UNAVAILABLE"],
                        "description": "`READY` once this execution environment has loaded the "
                        "model; `UNAVAILABLE` until then (models load lazily on first use).",
                    },
                },
            },
        },
        # asynchronous jobs
        "JobRequest": {
            "type": "object",
            "required": ["model"],
            "description": "A job over one model, with exactly one source of records: inline "
            "`instances`, an `input` object already in the data bucket, or `upload` (the response "
            "carries a presigned PUT URL for the file).",
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "string", "description": "Default: the highest version."},
                "backend": {
                    "type": "string",
                    "enum": list(get_args(RequestedBackend)),
                    "description": "Where the job runs. By default in Lambda when it fits, else "
                    "on a batch service. `lambda` forces Lambda; `batch` forces a batch service, "
                    "which the model decides: Bedrock batch inference for a foundation-model "
                    "entry, SageMaker Batch Transform for an ONNX model. `bedrock` and `sagemaker` "
                    "mean the same where they name that service; one that cannot run the model "
                    "(an ONNX model on `bedrock`, a Bedrock entry in `lambda`) is a 422. `local`: "
                    "`batch`, on the embedded stack's emulator.",
                },
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100000,
                    "items": _schema("Instance"),
                    "description": "Records as in `:predict`; still bounded by the request size limit.",
                },
                "input": {
                    "type": "string",
                    "pattern": "^s3://",
                    "description": "An object in the data bucket, under `staging/` or `inputs/`: "
                    "`.jsonl`, `.json`, `.csv`, `.npy`, `.png`, `.jpg`, or `.gz` of the text formats.",
                },
                "upload": {
                    "type": "object",
                    "required": ["filename"],
                    "properties": {
                        "filename": {
                            "type": "string",
                            "description": "A plain file name; its extension says the format.",
                        }
                    },
                },
            },
            "oneOf": [{"required": ["instances"]}, {"required": ["input"]}, {"required": ["upload"]}],
        },
        "JobCreated": {
            "type": "object",
            "required": ["job_id", "status_url", "status", "model", "input"],
            "properties": {
                "job_id": {"type": "string"},
                "status_url": {"type": "string", "description": "Path of the job's status route."},
                "status": {
                    "type": "string",
                    "enum": ["PENDING", "QUEUED"],
                    "description": "`PENDING` until the upload arrives; `QUEUED` otherwise.",
                },
                "model": {"type": "string"},
                "input": {"type": "string", "description": "Where the job's input is (or goes)."},
                "upload_url": {"type": "string", "description": "Only for `upload`: presigned URL."},
                "upload_method": {"type": "string", "enum": ["PUT"]},
                "upload_expires_in": {"type": "integer", "description": "Seconds."},
            },
        },
        "Job": {
            "type": "object",
            "required": ["job_id", "status", "model", "backend", "counts", "created_at", "updated_at"],
            "properties": {
                "job_id": {"type": "string"},
                "status": {"type": "string", "enum": list(get_args(JobStatus))},
                "model": {"type": "string"},
                "model_version": {"type": "string", "nullable": True},
                "backend": {"type": "string"},
                "input": {"type": "string", "nullable": True},
                "output": {
                    "type": "string",
                    "nullable": True,
                    "description": 'S3 URI of the JSONL results: `{"id", "prediction"}` or '
                    '`{"id", "error": {"code", "message"}}` per input record, in input order.',
                },
                "summary": {"type": "string", "nullable": True, "description": "S3 URI of the summary."},
                "counts": {
                    "type": "object",
                    "required": ["records", "predictions", "errors"],
                    "description": "records = predictions + errors once the job completes.",
                    "properties": {
                        "records": {"type": "integer"},
                        "predictions": {"type": "integer"},
                        "errors": {"type": "integer"},
                    },
                },
                "error": {"type": "string", "nullable": True, "description": "Why the job failed."},
                "created_at": {"type": "string"},
                "updated_at": {"type": "string"},
                "result_url": {"type": "string", "description": "When COMPLETED: presigned GET of `output`."},
                "summary_url": {
                    "type": "string",
                    "description": "When COMPLETED: presigned GET of `summary`.",
                },
            },
        },
        # KServe v1
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {"models": {"type": "array", "items": {"type": "string"}}},
        },
        "PredictRequest": {
            "type": "object",
            "description": 'KServe v1 `{"instances": [...]}`, or TF-Serving\'s row form `{"inputs": [...]}`.',
            "properties": {
                "instances": {"type": "array", "minItems": 1, "items": _schema("Instance")},
                "inputs": {"type": "array", "minItems": 1, "items": _schema("Instance")},
            },
            "anyOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
        },
        "Instance": {
            "description": "One input record. For a single-input model the instance is the "
            "input's value: nested numbers of the sample shape (without the batch axis), a "
            '`{"b64": "..."}` PNG/JPEG for an image input, or a `{column: value}` object for '
            "a tabular input with named columns; it may also be wrapped as "
            "`{input_name: value}`. For a multi-input model it is an object with one key per "
            "graph input.",
            "anyOf": [
                {"type": "array", "items": {}},
                _schema("B64"),
                {"type": "object", "additionalProperties": {}},
                {"type": "number"},
                {"type": "string"},
                {"type": "boolean"},
            ],
        },
        "B64": {
            "type": "object",
            "required": ["b64"],
            "properties": {"b64": {"type": "string", "format": "byte"}},
            "additionalProperties": False,
            "description": "A base64-encoded PNG or JPEG image.",
        },
        "PredictResponse": {
            "type": "object",
            "required": ["predictions", "model_name", "model_version"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": _schema("Prediction"),
                    "description": "One per instance, in order.",
                },
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
            },
        },
        "Prediction": {
            "description": "A classification when `model.json` declares post-processing "
            "(`label` and `score`, plus `top_k` or `probabilities`); otherwise the raw output "
            "as JSON: the value of a single output, or an object keyed by output name.",
            "anyOf": [_schema("Classification"), {}],
        },
        "Classification": {
            "type": "object",
            "required": ["label", "score"],
            "properties": {
                "label": {"description": "The best class (a label from model.json, or the class id)."},
                "score": {"type": "number"},
                "top_k": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["label", "score"],
                        "properties": {"label": {}, "score": {"type": "number"}},
                    },
                    "description": "The k best classes, best first (postprocess `top_k`).",
                },
                "probabilities": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "nullable": True},
                    "description": "Every class's score (postprocess `probabilities`).",
                },
            },
        },
    }


# --- parameters -----------------------------------------------------------------------------------


def _parameters() -> dict[str, Any]:
    return {
        "name": {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "Model name: a folder in the model store (`<store>/<name>/<version>/`).",
            "schema": {"type": "string"},
            "examples": {"digits": {"value": "digits"}, "breast_cancer": {"value": "breast_cancer"}},
        },
        "version": {
            "name": "version",
            "in": "path",
            "required": True,
            "description": "Model version: a subfolder of the model. Routes without a version use "
            "the highest one.",
            "schema": {"type": "string"},
            "example": "1",
        },
        "job_id": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "description": "The `job_id` that `POST /jobs` returned.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,80}$"},
            "example": "job-3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b",
        },
        "ContentEncoding": {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "description": "Send the body compressed with `gzip` or `deflate`; the size limit "
            "applies before and after decompression.",
            "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]},
        },
        "InferenceHeaderContentLength": {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "Binary tensor data extension: the length in bytes of the JSON "
            "inference request at the start of the body; the rest of the body is the inputs' "
            "binary data. Any of `application/octet-stream`, `application/json` or no "
            "`Content-Type` may accompany it (`tritonclient.http` sends it by default).",
            "schema": {"type": "integer", "minimum": 1},
        },
    }


# --- operations -----------------------------------------------------------------------------------


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    description: str,
    responses: dict[str, Any],
    parameters: Sequence[str] = (),
    request_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "description": description,
        "responses": responses,
    }
    if parameters:
        op["parameters"] = [_ref("parameters", p) for p in parameters]
    if request_body is not None:
        op["requestBody"] = request_body
    return op


def _infer_op(operation_id: str, versioned: bool) -> dict[str, Any]:
    binary_body = (
        "Binary tensor data extension: the JSON inference request (its length in the "
        "`Inference-Header-Content-Length` header), then the inputs that declare "
        "`parameters.binary_data_size`, back to back in input order, as raw little-endian "
        "elements (`BYTES`: a 4-byte little-endian length before each element). For example "
        'the header `{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"FP32",'
        '"parameters":{"binary_data_size":256}}]}` followed by 256 bytes of float32.'
    )
    which = "the given version of the model" if versioned else "the model's highest version"
    return _op(
        operation_id,
        TAG_V2,
        "Run inference (Open Inference Protocol v2)" + (" on a model version" if versioned else ""),
        f"Runs {which} on whole tensors. Every graph input must be sent, with its full shape "
        "including the batch axis; datatypes are converted to the graph's where the conversion "
        "is safe, and the data must be what `datatype` declares (`BOOL`: `true`/`false`; the "
        "numeric datatypes: numbers). Inputs go inline as `data` or as binary tensor data; "
        "outputs come back inline unless the request asks for binary (`parameters.binary_data_output`, or "
        "`outputs[].parameters.binary_data`), in which case the response is "
        "`application/octet-stream`: the JSON response (length in the "
        "`Inference-Header-Content-Length` response header) followed by the outputs' bytes.",
        _responses(
            {
                "description": "The outputs.",
                "headers": {
                    "Inference-Header-Content-Length": {
                        "description": "Only with a binary response: the length of the JSON "
                        "header at the start of the body.",
                        "schema": {"type": "integer"},
                    }
                },
                "content": {
                    **_json_content(
                        _schema("InferenceResponse"), None if versioned else INFER_RESPONSE_EXAMPLES
                    ),
                    OCTET: {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "description": "The JSON response, whose binary outputs carry "
                            "`parameters.binary_data_size`, followed by those outputs' bytes in order.",
                        }
                    },
                },
            },
            400,
            404,
            413,
            415,
            422,
            503,
        ),
        ["name", "version", "InferenceHeaderContentLength", "ContentEncoding"]
        if versioned
        else ["name", "InferenceHeaderContentLength", "ContentEncoding"],
        {
            "required": True,
            "content": {
                **_json_content(_schema("InferenceRequest"), None if versioned else INFER_REQUEST_EXAMPLES),
                OCTET: {"schema": {"type": "string", "format": "binary", "description": binary_body}},
            },
        },
    )


def _predict_op(operation_id: str, versioned: bool) -> dict[str, Any]:
    image = {
        "schema": {"type": "string", "format": "binary"},
    }
    which = "the given version of the model" if versioned else "the model's highest version"
    return _op(
        operation_id,
        TAG_V1,
        "Predict (KServe v1 / TF-Serving)" + (" with a model version" if versioned else ""),
        f"Runs {which} on a list of instances and returns one prediction per instance, "
        "post-processed as `model.json` declares (label and score, top-k, probabilities). "
        "Instances are batched along the model's batch axis; the first instance that does not "
        "fit the model fails the whole request with 422, naming it (`instances[3]: ...`). "
        "For image models a raw PNG or JPEG body (`Content-Type: image/png` or `image/jpeg`) "
        "is one instance: `curl --data-binary @digit.png -H 'Content-Type: image/png' ...`. "
        "`text/json` and `*+json` types are read as JSON.",
        _responses(
            _ok(
                "One prediction per instance.",
                _schema("PredictResponse"),
                None if versioned else PREDICT_RESPONSE_EXAMPLES,
            ),
            400,
            404,
            413,
            415,
            422,
            503,
        ),
        ["name", "version", "ContentEncoding"] if versioned else ["name", "ContentEncoding"],
        {
            "required": True,
            "content": {
                **_json_content(_schema("PredictRequest"), None if versioned else PREDICT_REQUEST_EXAMPLES),
                "image/png": image,
                "image/jpeg": image,
            },
        },
    )


def _paths() -> dict[str, Any]:
    model_ready = _ok("The model is loaded and can serve.", _schema("ModelReady"))
    return {
        "/v2/health/live": {
            "get": _op(
                "live",
                TAG_V2,
                "Server liveness",
                "Always 200 while the function answers.",
                _responses(_ok("Live.", _schema("Live"), {"live": {"live": True}})),
            )
        },
        "/v2/health/ready": {
            "get": _op(
                "ready",
                TAG_V2,
                "Server readiness",
                "200 when the model store can be listed; 503 when it is unreachable or "
                "`MODEL_STORE` is not set. Models themselves load lazily, on first use.",
                _responses(_ok("Ready.", _schema("Ready"), {"ready": {"ready": True}}), 503),
            )
        },
        "/v2": {
            "get": _op(
                "server_metadata",
                TAG_V2,
                "Server metadata",
                "Name, version and protocol extensions (`binary_tensor_data`).",
                _responses(
                    _ok(
                        "Server metadata.",
                        _schema("ServerMetadata"),
                        {
                            "sinfer": {
                                "name": "sinfer",
                                "version": __version__,
                                "extensions": ["binary_tensor_data"],
                            }
                        },
                    )
                ),
            )
        },
        "/v2/models/{name}": {
            "get": _op(
                "model_metadata",
                TAG_V2,
                "Model metadata",
                "Inputs and outputs of the model's highest version, read from the ONNX graph "
                "(`-1` marks a dynamic dimension). Loads the model if needed.",
                _responses(
                    _ok("Model metadata.", _schema("ModelMetadata"), {"digits": DIGITS_METADATA}), 404, 503
                ),
                ["name"],
            )
        },
        "/v2/models/{name}/versions/{version}": {
            "get": _op(
                "model_version_metadata",
                TAG_V2,
                "Model version metadata",
                "Inputs and outputs of one version of the model.",
                _responses(_ok("Model metadata.", _schema("ModelMetadata")), 404, 503),
                ["name", "version"],
            )
        },
        "/v2/models/{name}/ready": {
            "get": _op(
                "model_ready",
                TAG_V2,
                "Model readiness",
                "Loads the model's highest version if needed: 200 when it can serve, 404 when "
                "it does not exist, 503 when it cannot load.",
                _responses(model_ready, 404, 503),
                ["name"],
            )
        },
        "/v2/models/{name}/versions/{version}/ready": {
            "get": _op(
                "model_version_ready",
                TAG_V2,
                "Model version readiness",
                "As model readiness, for one version.",
                _responses(model_ready, 404, 503),
                ["name", "version"],
            )
        },
        "/v2/repository/index": {
            "post": _op(
                "repository_index",
                TAG_V2,
                "Model repository index",
                "Every version of every model in the store (Triton's model repository "
                "extension). A request body, if any, is ignored.",
                _responses(
                    _ok(
                        "The models in the store.",
                        _schema("RepositoryIndex"),
                        {"demo": [{"name": "digits", "version": "1", "state": "READY"}]},
                    ),
                    503,
                ),
            )
        },
        "/v2/models/{name}/infer": {"post": _infer_op("infer", versioned=False)},
        "/v2/models/{name}/versions/{version}/infer": {"post": _infer_op("infer_version", versioned=True)},
        "/v1/models": {
            "get": _op(
                "list_models",
                TAG_V1,
                "List models",
                "The names of the models in the store.",
                _responses(
                    _ok(
                        "Model names.",
                        _schema("ModelList"),
                        {"demo": {"models": ["breast_cancer", "digits"]}},
                    ),
                    503,
                ),
            )
        },
        "/v1/models/{name}": {
            "get": _op(
                "v1_model",
                TAG_V1,
                "Model status",
                "Loads the model's highest version if needed and reports it ready.",
                _responses(
                    _ok(
                        "The model is ready.",
                        _schema("ModelReady"),
                        {"digits": {"name": "digits", "version": "1", "ready": True}},
                    ),
                    404,
                    503,
                ),
                ["name"],
            )
        },
        "/v1/models/{name}:predict": {"post": _predict_op("predict", versioned=False)},
        "/v1/models/{name}/versions/{version}:predict": {
            "post": _predict_op("predict_version", versioned=True)
        },
        "/jobs": {
            "post": _op(
                "create_job",
                TAG_JOBS,
                "Start an asynchronous job",
                "Starts a job over many records; poll `GET /jobs/{job_id}` (or wait for the SNS "
                "notification) for its status and results. Unknown models are refused at once "
                "(404). With `upload`, PUT the file to the returned `upload_url` (it expires after "
                "`upload_expires_in` seconds); the job starts when the file lands. Jobs need the "
                "deployed stack or `sinfer local` (`DATA_BUCKET` and `JOBS_TABLE`).",
                _responses(
                    _ok("The job was accepted.", _schema("JobCreated"), JOB_CREATED_EXAMPLES),
                    400,
                    404,
                    413,
                    415,
                    422,
                    503,
                    ok_status=202,
                ),
                ["ContentEncoding"],
                {"required": True, "content": _json_content(_schema("JobRequest"), JOB_REQUEST_EXAMPLES)},
            )
        },
        "/jobs/{job_id}": {
            "get": _op(
                "get_job",
                TAG_JOBS,
                "Job status and results",
                "The job's status and record counts; once `COMPLETED`, presigned URLs of the "
                "results (`result_url`) and the summary (`summary_url`).",
                _responses(_ok("The job.", _schema("Job"), {"completed": JOB_EXAMPLE}), 404, 503),
                ["job_id"],
            )
        },
        "/openapi.json": {
            "get": _op(
                "openapi",
                TAG_DOCS,
                "This document",
                "The OpenAPI 3.0.3 description of this API.",
                _responses(
                    {
                        "description": "The OpenAPI document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                ),
            )
        },
    }


# --- the document ---------------------------------------------------------------------------------

_DESCRIPTION = """\
Real-time ONNX inference on AWS Lambda behind API Gateway. The API speaks standard protocols, \
so existing clients work unchanged:

* **Open Inference Protocol v2** (KServe v2 / Triton REST) under `/v2`, including the binary \
tensor data extension (`Inference-Header-Content-Length`, `binary_data_output`), so \
`tritonclient.http` works with its defaults.
* **KServe v1 / TF-Serving** under `/v1`: `{"instances": [...]}` → `{"predictions": [...]}`, \
images as `{"b64": "..."}` or as a raw `image/png` / `image/jpeg` body.
* **Asynchronous jobs** under `/jobs` for work too large for one call: results land in S3 as \
JSONL, in input order. Uploading a file under `s3://<bucket>/inputs/<model>/` does the same \
without the API.

Models come from the model store (`MODEL_STORE`: an `s3://` prefix or a folder), laid out as \
`<name>/<version>/model.onnx` with an optional `model.json`; routes without a version use the \
highest one. The demo models are `digits` (an 8x8 handwritten digit: 64 values 0..16, or an \
image) and `breast_cancer` (30 named tabular measurements).

**Limits.** A synchronous request body may be at most {payload:,} bytes before and after \
decompression (`MAX_SYNC_PAYLOAD_BYTES`: Lambda's 6 MB less the base64 the body arrives in), \
a `:predict` request at most {instances:,} instances (`MAX_SYNC_INSTANCES`), and a response at \
most {response:,} bytes (binary responses counted base64-encoded, as they leave Lambda). \
Larger work gets a 413: submit it as a job. \
Request bodies may be sent with `Content-Encoding: gzip` (one stream, or up to {members} \
concatenated members) or `deflate`; API Gateway compresses \
responses of 8 KiB or more for clients that send `Accept-Encoding`.

**Errors.** Every error sinfer returns is JSON `{"error": "<what was wrong, what was \
expected>", "code": "<stable code>"}`: 400 malformed request, 404 unknown model, version or \
route, 405 a method the path does not take (with `Allow`), 413 too large for a synchronous \
call, 415 unsupported content type or encoding, 422 input that does not fit the model (names, \
shape, dtype), 503 model not ready. Bad input never \
produces a 500. Errors API Gateway returns itself (403, 429, 502, 504) are \
`{"message": "..."}`.

**Authentication.** Deployed with the default template parameter `ApiAuth=AWS_IAM`, every \
request must be signed with AWS Signature Version 4 (service `execute-api`) by a principal \
allowed `execute-api:Invoke`. A stack deployed with `ApiAuth=NONE` accepts unsigned requests, \
and so do the local servers (`sinfer serve`, `sinfer local`).
"""
for _token, _value in (
    ("{payload:,}", DEFAULT_SYNC_PAYLOAD_BYTES),
    ("{instances:,}", DEFAULT_SYNC_INSTANCES),
    ("{response:,}", DEFAULT_SYNC_RESPONSE_BYTES),
    ("{members}", MAX_GZIP_MEMBERS),
):  # (the code's defaults, not this environment's values: the document is committed)
    _DESCRIPTION = _DESCRIPTION.replace(_token, f"{_value:,}")


def document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of predict_api."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "sinfer inference API",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "servers": [
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
                "description": "The deployed API (the stack output `ApiUrl`).",
                "variables": {
                    "apiId": {"default": "abcdef1234", "description": "The REST API id."},
                    "region": {"default": "us-east-1", "description": "The stack's region."},
                    "stage": {
                        "default": "api",
                        "description": "The API Gateway stage (`StageName` in template.yaml).",
                    },
                },
            },
            {
                "url": "http://127.0.0.1:3000",
                "description": "Local: `sinfer serve` or `sinfer local` (no authentication).",
            },
        ],
        "security": [{"sigv4": []}],
        "tags": [
            {
                "name": TAG_V2,
                "description": "KServe v2 / Triton REST, with the binary tensor data extension.",
                "externalDocs": {
                    "url": "https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/"
                },
            },
            {"name": TAG_V1, "description": "KServe v1 / TF-Serving style `:predict`."},
            {
                "name": TAG_JOBS,
                "description": "Work too large for a synchronous call: predictions written to S3 "
                "as JSONL, one line per input record, in input order.",
            },
            {"name": TAG_DOCS, "description": "This document."},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                    "description": "API Gateway IAM authorization: sign requests with AWS Signature "
                    "Version 4 for the `execute-api` service (for example `awscurl --service "
                    "execute-api`, or botocore's `SigV4Auth`); the caller needs "
                    "`execute-api:Invoke`. Not enforced when the stack is deployed with the "
                    "template parameter `ApiAuth=NONE`, nor by the local servers.",
                }
            },
            "parameters": _parameters(),
            "responses": _error_responses(),
            "schemas": _schemas(),
        },
    }


def render(doc: dict[str, Any] | None = None) -> str:
    """The committed text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document() if doc is None else doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sinfer.api.openapi", description="Print, write or check sinfer's OpenAPI document."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {OPENAPI_PATH.name} next to this module")
    mode.add_argument("--check", action="store_true", help=f"exit 1 if {OPENAPI_PATH.name} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OPENAPI_PATH.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
        if current != text:
            print(
                f"{OPENAPI_PATH} is stale; regenerate it with: python -m sinfer.api.openapi --write",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
