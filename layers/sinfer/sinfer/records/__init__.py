"""Records: reading input files into records and writing result lines, for the async path.

``read_records`` streams an uploaded file (JSONL, JSON, CSV/TSV, .npy, images, gzip of the
text formats) into :class:`Record` objects; ``prediction_line`` / ``error_line`` build the
output lines; a :class:`ResultWriter` streams them to S3 or a local file.
"""

from sinfer.records.readers import (
    ACCEPTED_FORMATS,
    DEFAULT_MAX_JSON_BYTES,
    ByteStream,
    InputFormat,
    InputKind,
    detect_format,
    read_records,
)
from sinfer.records.types import (
    EMPTY_CELL,
    INVALID_CSV,
    INVALID_ENCODING,
    INVALID_JSON,
    RAGGED_ROW,
    RECORD_TOO_LARGE,
    Record,
    RecordError,
    error_line,
    prediction_line,
)
from sinfer.records.writer import FileJsonlWriter, ResultWriter, S3JsonlWriter, WriteCounts

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_JSON_BYTES",
    "EMPTY_CELL",
    "INVALID_CSV",
    "INVALID_ENCODING",
    "INVALID_JSON",
    "RAGGED_ROW",
    "RECORD_TOO_LARGE",
    "ByteStream",
    "FileJsonlWriter",
    "InputFormat",
    "InputKind",
    "Record",
    "RecordError",
    "ResultWriter",
    "S3JsonlWriter",
    "WriteCounts",
    "detect_format",
    "error_line",
    "prediction_line",
    "read_records",
]
