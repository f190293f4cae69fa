"""KServe v1 / TF-Serving style ``:predict``: ``{"instances": [...]}`` → ``{"predictions": [...]}``.

Also accepted: TF-Serving's row form ``{"inputs": [...]}``, and a raw PNG/JPEG body for image
models (one instance). What an instance may be is defined once, in
:mod:`sinfer.codecs.instances`.
"""

from __future__ import annotations

from typing import Any

from sinfer.errors import BadRequestError, UnsupportedMediaTypeError
from sinfer.protocols import jsonbody

# curl -d and many HTTP libraries label a JSON body as a form; Triton and KServe read it as JSON.
JSON_TYPES = ("application/json", "text/json", "application/x-www-form-urlencoded", "")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    """Whether a media type (see :func:`media_type`) is read as JSON."""
    return kind in JSON_TYPES or kind.endswith("+json")


def decode_request(body: bytes, content_type: str | None) -> list[Any]:
    kind = media_type(content_type)
    if kind in IMAGE_TYPES:
        if not body:
            raise BadRequestError("empty image body")
        return [body]
    if not is_json(kind):
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind!r} is not accepted here; send application/json "
            f'({{"instances": [...]}}) or an image/png or image/jpeg body'
        )
    if not body:
        raise BadRequestError('empty body; expected {"instances": [...]}')
    return instances_of(jsonbody.parse(body))


def instances_of(doc: Any) -> list[Any]:
    """The instances of a parsed ``{"instances": [...]}`` (or ``{"inputs": [...]}``) document."""
    if isinstance(doc, dict):
        for key in ("instances", "inputs"):
            if key in doc:
                instances = doc[key]
                if not isinstance(instances, list):
                    raise BadRequestError(f"'{key}' must be a list of instances")
                if not instances:
                    raise BadRequestError(f"'{key}' is empty; send at least one instance")
                return instances
    raise BadRequestError('expected a JSON object {"instances": [...]}')


def encode_response(predictions: list[Any], model_name: str, model_version: str) -> dict[str, Any]:
    return {"predictions": predictions, "model_name": model_name, "model_version": model_version}
