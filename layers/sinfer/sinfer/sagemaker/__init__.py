"""The SageMaker Batch Transform container app: the same sinfer core behind SageMaker's contract.

:mod:`.server` answers ``/ping``, ``/execution-parameters`` and ``/invocations``;
:mod:`.codec` turns request bodies into records and outcomes into response lines, one line out
for every line in. ``sinfer serve --sagemaker`` runs it; ``containers/sagemaker/Dockerfile``
packages it.
"""

from sinfer.sagemaker.codec import (
    BLANK_LINE,
    BodyFormat,
    NotAcceptableError,
    body_records,
    csv_columns,
    encode_outcomes,
    request_format,
    response_format,
    transform,
)
from sinfer.sagemaker.server import (
    DEFAULT_MODEL_DIR,
    EXECUTION_PARAMETERS,
    MODEL_ENV,
    ModelDirStore,
    ModelLocation,
    SageMakerServer,
    default_port,
    locate_model,
    max_payload_bytes,
    start_in_thread,
)

__all__ = [
    "BLANK_LINE",
    "DEFAULT_MODEL_DIR",
    "EXECUTION_PARAMETERS",
    "MODEL_ENV",
    "BodyFormat",
    "ModelDirStore",
    "ModelLocation",
    "NotAcceptableError",
    "SageMakerServer",
    "body_records",
    "csv_columns",
    "default_port",
    "encode_outcomes",
    "locate_model",
    "max_payload_bytes",
    "request_format",
    "response_format",
    "start_in_thread",
    "transform",
]
