"""Request bodies and the synchronous size limits, shared by the resolver's routes and the fast path.

Both entry points of predict_api (:mod:`sinfer.api.routes` behind Powertools, and
:mod:`sinfer.api.fast` in front of it) read bodies and enforce limits with these functions, so
the two cannot drift apart. Nothing here imports Powertools: the fast path must stay free of it.
"""

from __future__ import annotations

import binascii
import json
import os
from typing import Any

from sinfer.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

JSON = "application/json"
OCTET = "application/octet-stream"
# Lambda caps a synchronous invocation at 6 MB each way. Requests arrive base64-encoded inside
# the event (the API declares every media type binary), so a body over ~4.4 MB cannot arrive.
# (The defaults are named so that the OpenAPI document states them whatever the environment.)
DEFAULT_SYNC_PAYLOAD_BYTES = 4_400_000
DEFAULT_SYNC_RESPONSE_BYTES = 6_000_000
DEFAULT_SYNC_INSTANCES = 1000
MAX_SYNC_PAYLOAD_BYTES = int(os.environ.get("MAX_SYNC_PAYLOAD_BYTES", str(DEFAULT_SYNC_PAYLOAD_BYTES)))
MAX_SYNC_RESPONSE_BYTES = int(os.environ.get("MAX_SYNC_RESPONSE_BYTES", str(DEFAULT_SYNC_RESPONSE_BYTES)))
MAX_SYNC_INSTANCES = int(os.environ.get("MAX_SYNC_INSTANCES", str(DEFAULT_SYNC_INSTANCES)))
# A gzip body may be several members (``cat a.gz b.gz``); more than this is refused (400).
MAX_GZIP_MEMBERS = 64
TOO_LARGE_HINT = (
    "submit large inputs asynchronously with POST /jobs or by uploading to s3://<bucket>/inputs/<model>/"
)

# json.dumps with any non-default option builds a new encoder on every call (~2 us); one is enough.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def compact_json(doc: Any) -> str:
    """The resolver's response serialisation (compact, ASCII-escaped)."""
    return _COMPACT_JSON.encode(doc)


def proxy_body_size(body: str | bytes) -> int:
    """The bytes a JSON body takes where Lambda's limit applies: inside the proxy response,
    itself JSON, where each quote and backslash gains an escaping backslash (the Python 3.12
    runtime leaves other characters as UTF-8). A body of short strings grows by a fifth or more,
    so measuring the body alone let a response through that Lambda then refused: a 502, not
    this 413."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return len(raw) + raw.count(b'"') + raw.count(b"\\")


def check_response_size(size: int) -> None:
    if size > MAX_SYNC_RESPONSE_BYTES:
        raise PayloadTooLargeError(
            f"the response would be {size:,} bytes, over the synchronous limit of "
            f"{MAX_SYNC_RESPONSE_BYTES:,} bytes; send fewer instances, or {TOO_LARGE_HINT}"
        )


def check_instance_count(count: int) -> None:
    if count > MAX_SYNC_INSTANCES:
        raise PayloadTooLargeError(
            f"{count:,} instances in one request; the synchronous limit is {MAX_SYNC_INSTANCES:,}; "
            f"{TOO_LARGE_HINT}"
        )


def decode_body(raw: str | bytes | None, base64_encoded: bool, content_encoding: str | None) -> bytes:
    """An event's body → raw bytes: base64-decoded when API Gateway encoded it, size-checked, inflated."""
    raw = raw or ""
    if base64_encoded:
        try:
            # What base64.b64decode(raw, validate=False) does, without importing base64.
            body = binascii.a2b_base64(raw)
        except (binascii.Error, ValueError):
            raise BadRequestError("body is marked base64 but does not decode") from None
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(body) > MAX_SYNC_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"request body is {len(body):,} bytes, over the synchronous limit of "
            f"{MAX_SYNC_PAYLOAD_BYTES:,} bytes; {TOO_LARGE_HINT}"
        )
    if content_encoding is None:  # the usual request: ~0.6 us less in the handler than normalising ""
        return body
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "deflate"):
        # API Gateway (with compression enabled) may inflate the body itself yet keep the header:
        # only inflate what still looks compressed (gzip magic, or a zlib header).
        if body[:2] == b"\x1f\x8b" or (encoding == "deflate" and body[:1] == b"\x78"):
            body = _inflate(body, encoding)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; use gzip or deflate"
        )
    return body


def _inflate(body: bytes, encoding: str) -> bytes:
    """Decompress with a hard cap, so a small bomb cannot exhaust memory.

    A stream that stops before its end is refused rather than read as the prefix it holds (a
    truncated upload would otherwise parse as a shorter document), and a gzip body of several
    members (``cat a.gz b.gz``, valid gzip) is read whole, under the same cap, up to
    ``MAX_GZIP_MEMBERS`` of them: each member costs a copy of the bytes after it, so a body of
    hundreds of thousands of empty members would take minutes to refuse.
    """
    import zlib  # only compressed bodies need it, not a cold start's first request

    out = bytearray()
    rest = body
    for _ in range(MAX_GZIP_MEMBERS):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            out += decoder.decompress(rest, MAX_SYNC_PAYLOAD_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise BadRequestError(f"body is not valid {encoding} data: {exc}") from None
        if len(out) > MAX_SYNC_PAYLOAD_BYTES or decoder.unconsumed_tail:
            raise PayloadTooLargeError(
                f"decompressed body exceeds the synchronous limit of {MAX_SYNC_PAYLOAD_BYTES:,} bytes; "
                f"{TOO_LARGE_HINT}"
            )
        if not decoder.eof:
            raise BadRequestError(f"body is not valid {encoding} data: it ends before the stream does")
        rest = decoder.unused_data
        if not rest:
            return bytes(out)
        if encoding != "gzip":
            raise BadRequestError(f"body is not valid {encoding} data: bytes follow the end of the stream")
    raise BadRequestError(
        f"body is gzip data of more than {MAX_GZIP_MEMBERS} members; compress it as one stream"
    )
