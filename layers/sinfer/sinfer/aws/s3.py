"""S3 operations sinfer needs, with the errors it cares about made typed."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sinfer.aws.clients import client

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"expected an s3://bucket/key URI, got {uri!r}")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class S3NotFoundError(Exception):
    """The object or prefix does not exist."""


def _is_not_found(exc: Exception) -> bool:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def list_common_prefixes(bucket: str, prefix: str) -> list[str]:
    """Immediate 'sub-folders' of ``prefix`` (with the prefix stripped, no trailing slash)."""
    paginator = client("s3").get_paginator("list_objects_v2")
    found: list[str] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for entry in page.get("CommonPrefixes", []):
            found.append(entry["Prefix"][len(prefix) :].rstrip("/"))
    return found


def get_bytes(bucket: str, key: str) -> bytes:
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        data: bytes = body.read()
        return data
    except Exception as exc:
        if _is_not_found(exc):
            raise S3NotFoundError(f"s3://{bucket}/{key} does not exist") from exc
        raise


def download_verified(bucket: str, key: str, dest: Path) -> str:
    """Stream an object to ``dest`` atomically and return its sha256 (hex).

    The file appears under its final name only once complete, so a concurrent reader (or a
    retry after a timeout) never sees a partial model.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        if _is_not_found(exc):
            raise S3NotFoundError(f"s3://{bucket}/{key} does not exist") from exc
        raise
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: body.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "SlowDown",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ProvisionedThroughputExceededException",
        "TooManyRequestsException",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and connection faults: worth retrying later, not the input's fault."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")) in TRANSIENT_CODES or status >= 500


def head(bucket: str, key: str, version: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version:
        kwargs["VersionId"] = version
    try:
        result: dict[str, Any] = client("s3").head_object(**kwargs)
    except Exception as exc:
        if _is_not_found(exc):
            raise S3NotFoundError(f"s3://{bucket}/{key} does not exist") from exc
        code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
        if code in {"403", "AccessDenied", "Forbidden"}:
            # Without s3:ListBucket (s3_ingest has none on inputs/), S3 answers a HEAD on a
            # missing object with 403, not 404.
            raise S3NotFoundError(f"s3://{bucket}/{key} does not exist or is not readable (403)") from exc
        raise
    return result


def open_stream(bucket: str, key: str, version: str | None = None) -> Any:
    """A streaming body: read it with ``.read(n)`` in bounded chunks."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version:
        kwargs["VersionId"] = version
    try:
        return client("s3").get_object(**kwargs)["Body"]
    except Exception as exc:
        if _is_not_found(exc):
            raise S3NotFoundError(f"s3://{bucket}/{key} does not exist") from exc
        raise


def put_bytes(bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def presign(method: str, bucket: str, key: str, expires: int, content_type: str | None = None) -> str:
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if content_type and method == "PUT":
        params["ContentType"] = content_type
    url: str = client("s3").generate_presigned_url(operation, Params=params, ExpiresIn=expires)
    return url


def copy(source: S3Uri, bucket: str, key: str) -> None:
    """Server-side copy (multipart for large objects), without the source's tags: a single
    CopyObject copies them by default, which needs s3:GetObjectTagging on the source and
    s3:PutObjectTagging on the copy, and the copy of a tagged object would be denied."""
    client("s3").copy(
        {"Bucket": source.bucket, "Key": source.key}, bucket, key, ExtraArgs={"TaggingDirective": "REPLACE"}
    )


class _RawStream(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, so io.BufferedReader can split lines."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(min(len(buffer), CHUNK))
        buffer[: len(data)] = data
        return len(data)


def iter_lines(bucket: str, key: str) -> Iterator[bytes]:
    """An object's lines, streamed in bounded chunks (newline kept, as file iteration does)."""
    reader = io.BufferedReader(_RawStream(open_stream(bucket, key)), buffer_size=CHUNK)
    yield from reader


def list_keys(bucket: str, prefix: str) -> list[str]:
    paginator = client("s3").get_paginator("list_objects_v2")
    keys: list[str] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(entry["Key"] for entry in page.get("Contents", []))
    return keys


def exists(bucket: str, key: str) -> bool:
    try:
        head(bucket, key)
    except S3NotFoundError:
        return False
    return True
