"""Domain errors.

Every error a user can cause is one of these. Each carries the HTTP status it maps to and a
stable ``code`` for error records, so the API turns them into responses and the S3/batch paths
turn them into error lines in exactly one place each (``sinfer.api.http`` and the jobs code).
Messages say what was expected, because the person reading them is fixing an input.
"""

from __future__ import annotations


class SinferError(Exception):
    """Base class: anything sinfer raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(SinferError):
    """The request is malformed: not JSON, missing fields, wrong structure."""

    status = 400
    code = "bad_request"


class ModelNotFoundError(SinferError):
    """No model (or version) of that name in the store."""

    status = 404
    code = "model_not_found"


class NotFoundError(SinferError):
    """A route or resource that does not exist."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(SinferError):
    """A route that exists, asked with a method it does not take; ``allow`` lists those it does."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLargeError(SinferError):
    """Over the synchronous payload limit: the asynchronous path takes large inputs."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(SinferError):
    """A Content-Type the route cannot read."""

    status = 415
    code = "unsupported_media_type"


class InvalidInputError(SinferError):
    """Well-formed request, but the data does not fit the model: names, dtype or shape."""

    status = 422
    code = "invalid_input"


class ModelNotReadyError(SinferError):
    """The model exists but cannot serve: failed to load, or failed its sha256 check."""

    status = 503
    code = "model_not_ready"


class NotConfiguredError(SinferError):
    """A feature this deployment has not been configured for (e.g. jobs without a table)."""

    status = 503
    code = "not_configured"


class ModelIntegrityError(ModelNotReadyError):
    """model.onnx does not match the sha256 its manifest pins."""

    code = "model_integrity"


class ManifestError(ModelNotReadyError):
    """model.json is present but invalid."""

    code = "invalid_manifest"


class UnreadableInputError(SinferError):
    """An input file that cannot be read as a whole: unknown format, corrupt gzip, too large."""

    status = 422
    code = "unreadable_input"


class InputTooLargeError(UnreadableInputError):
    """An input past a size limit only reading could find (a .gz inflating past it): large, not broken."""

    code = "input_too_large"


class TransientError(Exception):
    """A fault worth retrying (throttling, 5xx, a job another worker holds): not the input's fault."""


class FileBusyError(TransientError):
    """Another invocation holds the file's lease: its message comes back later. Expected under
    SQS's at-least-once delivery, so it is logged at INFO, not as a failure."""
