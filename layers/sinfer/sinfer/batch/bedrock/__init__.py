"""The Bedrock batch backend: foundation-model store entries, their wire formats, and a local emulator.

* :mod:`.entry` reads a ``model.json`` that names a foundation model instead of an ONNX file.
* :mod:`.families` turns records into each model family's ``modelInput``, reads ``modelOutput``
  back, and holds the batch formats Bedrock shares across families (recordIds, input and output
  lines, ``manifest.json.out``, output locations) and a price table for cost estimates.
* :mod:`.emulator` is a deterministic stand-in for Bedrock batch, writing the same output
  layout, for ``sinfer local``, tests and demos. It is not a model.
"""

from sinfer.batch.bedrock.emulator import EmulatedJobError, EmulatedModelError, emulate, run_local_job
from sinfer.batch.bedrock.entry import BedrockEntry, Family, OutputMode, family_of, is_bedrock_manifest
from sinfer.batch.bedrock.families import (
    BatchOutputRecord,
    ManifestCounts,
    ModelOutputError,
    ParsedOutput,
    batch_input_line,
    batch_output_line,
    build_model_input,
    estimate_cost,
    manifest_uri,
    output_uri_for,
    parse_batch_output_line,
    parse_model_output,
    record_id,
    record_index,
    token_usage,
)

__all__ = [
    "BatchOutputRecord",
    "BedrockEntry",
    "EmulatedJobError",
    "EmulatedModelError",
    "Family",
    "ManifestCounts",
    "ModelOutputError",
    "OutputMode",
    "ParsedOutput",
    "batch_input_line",
    "batch_output_line",
    "build_model_input",
    "emulate",
    "estimate_cost",
    "family_of",
    "is_bedrock_manifest",
    "manifest_uri",
    "output_uri_for",
    "parse_batch_output_line",
    "parse_model_output",
    "record_id",
    "record_index",
    "run_local_job",
    "token_usage",
]
