"""Result lines → an output file, streamed, and only ever visible complete.

Outputs can be far larger than a Lambda's memory, so :class:`S3JsonlWriter` holds at most one
part and streams parts with a multipart upload; an output that fits in one part is a single
``put_object`` instead, which is cheaper and what almost every small job produces. Nothing
appears under the key until ``close()``: an aborted or failed job leaves no half-written
object for a reader to mistake for results, and no pending multipart upload to pay for.
:class:`FileJsonlWriter` gives the same guarantee locally with a temporary file and a rename.

They share one base (counting, the closed state, the ``with`` protocol, newline handling)
with :class:`StreamJsonlWriter` (stdout for ``sinfer predict``); the adapters only say where
bytes go.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Protocol, Self

from sinfer.aws.clients import client

MiB: Final = 1024 * 1024
MIN_PART_SIZE: Final = 5 * MiB  # S3's minimum for every part but the last
DEFAULT_PART_SIZE: Final = 8 * MiB
MAX_PARTS: Final = 10_000
# Parts may differ in size, so the part size doubles every this many parts: 8 MiB parts
# reach S3's 5 TiB object limit well within the 10,000-part limit.
PARTS_PER_SIZE_STEP: Final = 1_000


@dataclass(slots=True)
class WriteCounts:
    lines: int = 0
    bytes: int = 0


class ResultWriter(Protocol):
    """Where result lines go. ``close`` publishes the output; ``abort`` discards it."""

    counts: WriteCounts

    def write(self, line: bytes) -> None: ...

    def write_lines(self, data: bytes, lines: int) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class _JsonlWriter:
    """Counting, the closed state and ``with`` for every writer; adapters move the bytes."""

    def __init__(self) -> None:
        self.counts = WriteCounts()
        self._closed = False

    def write(self, line: bytes) -> None:
        """Write one line (a newline is added if it lacks one)."""
        self.write_lines(line if line.endswith(b"\n") else line + b"\n", 1)

    def write_lines(self, data: bytes, lines: int) -> None:
        """Write ``lines`` whole lines at once (``data`` ends with a newline, or is empty)."""
        if self._closed:
            raise ValueError("write to a closed result writer")
        if data:
            self._write(data)
        self.counts.lines += lines
        self.counts.bytes += len(data)

    def close(self) -> None:
        """Publish everything written; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close()
        except BaseException:
            self._abort()
            raise

    def abort(self) -> None:
        """Discard everything written; nothing is published. A second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


class S3JsonlWriter(_JsonlWriter):
    """JSONL streamed to ``s3://bucket/key``: one ``put_object``, or a multipart upload.

    ``server_side_encryption`` (``"AES256"`` or ``"aws:kms"``) and ``sse_kms_key_id`` are
    passed to S3 as given. Parts carry CRC32 checksums, which S3 verifies on upload.

    ``background=True`` uploads each part on a thread of its own while the caller goes on
    writing the next: the caller (s3_ingest's parsing thread) would otherwise wait out every
    part's upload, a network wait that parses nothing. One part is in flight at a time, so the
    writer holds at most two parts; a part's failure is raised by the next write that fills a
    part, or by ``close``, which then aborts the upload as before.
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        content_type: str = "application/x-ndjson",
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        s3: Any = None,
        background: bool = False,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE:,} bytes (S3's minimum part size)")
        super().__init__()
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.etag: str | None = None  # set by close()
        self._s3 = s3 if s3 is not None else client("s3")
        self._object_args: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
        if server_side_encryption is not None:
            self._object_args["ServerSideEncryption"] = server_side_encryption
        if sse_kms_key_id is not None:
            self._object_args["SSEKMSKeyId"] = sse_kms_key_id
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._uploader = ThreadPoolExecutor(1, "sinfer-upload") if background else None
        self._in_flight: Future[dict[str, Any]] | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _write(self, data: bytes) -> None:
        self._buffer += data
        # A run of many lines (write_lines) can fill several parts: cut them at the part size
        # (parts are bytes; a line may straddle two), so the buffer stays about one part.
        while len(self._buffer) >= (size := self._current_part_size()):
            self._flush_part(size)

    def _current_part_size(self) -> int:
        started = len(self._parts) + (self._in_flight is not None)  # (parts handed to S3 so far)
        return self.part_size << (started // PARTS_PER_SIZE_STEP)

    def _flush_part(self, size: int | None = None) -> None:
        """Upload the buffer's first ``size`` bytes (all of it by default) as the next part."""
        self._finish_in_flight()  # (one part at a time in flight, and the parts kept in order)
        if self._upload_id is None:
            response = self._s3.create_multipart_upload(**self._object_args, ChecksumAlgorithm="CRC32")
            self._upload_id = response["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"{self.uri}: more than {MAX_PARTS:,} parts; use a larger part_size")
        body = bytes(self._buffer[:size]) if size is not None else bytes(self._buffer)
        del self._buffer[: len(body)]
        if self._uploader is None:
            self._parts.append(self._upload_part(self._upload_id, number, body))
        else:
            self._in_flight = self._uploader.submit(self._upload_part, self._upload_id, number, body)

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        response = self._s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC32",
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _finish_in_flight(self) -> None:
        """Wait for the part in flight (if any) and keep it; its failure is raised here."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            self._parts.append(in_flight.result())

    def _close(self) -> None:
        if self._upload_id is None:
            response = self._s3.put_object(**self._object_args, Body=bytes(self._buffer))
            self._buffer.clear()
        else:
            if self._buffer:
                self._flush_part()  # the last part may be smaller than the minimum
            self._finish_in_flight()
            response = self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        self.etag = response.get("ETag")
        self._stop_uploader()

    def _stop_uploader(self) -> None:
        if self._uploader is not None:
            self._uploader.shutdown(wait=True)
            self._uploader = None

    def _abort(self) -> None:
        self._buffer.clear()
        self._in_flight = None  # (its failure, if any, is moot now)
        # A part still in flight would land after the abort and be billed as an orphan:
        # stopping the uploader waits for it to finish (or fail) first.
        self._stop_uploader()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)


class StreamJsonlWriter(_JsonlWriter):
    """JSONL to an open binary stream (``sinfer predict`` without ``-o``: stdout).

    Lines go out as they come, so ``abort`` cannot recall them; close and abort only flush.
    """

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def _write(self, data: bytes) -> None:
        self._stream.write(data)

    def _close(self) -> None:
        self._stream.flush()

    def _abort(self) -> None:
        self._stream.flush()


class FileJsonlWriter(_JsonlWriter):
    """JSONL to a local file, which appears under its name only once ``close()`` succeeds."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial")
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        self._file.write(data)

    def _close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self._tmp, 0o644)  # mkstemp's 0600 suits a scratch file, not a result
        os.replace(self._tmp, self.path)

    def _abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
