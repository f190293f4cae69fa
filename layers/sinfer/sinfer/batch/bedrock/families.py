"""Bedrock's wire formats: each family's ``modelInput`` and ``modelOutput``, and the batch files.

Bedrock batch takes the InvokeModel request body of the chosen model as each record's
``modelInput`` and returns the InvokeModel response body as ``modelOutput``, so everything
model-specific lives in two functions, :func:`build_model_input` and :func:`parse_model_output`,
one branch per family. The rest is shared by every family and by both sides of a job (the
submitter that writes input files, the collector that joins outputs back, the local emulator
that stands in for Bedrock): recordIds, input and output lines, ``manifest.json.out``, where
outputs land, and a price table for cost estimates.

Errors are split by whose fault they are. A record this entry cannot turn into a request
(missing field, not text, empty) raises :class:`~sinfer.errors.InvalidInputError`: the input
must change. A ``modelOutput`` in a shape the family never returns, or text that ``"output":
"json"`` cannot parse, raises :class:`ModelOutputError` (code ``invalid_model_output``: the
model, not the input, broke the contract). Callers turn both into per-record error lines;
neither stops a job.

Formats are those of the InvokeModel pages in the Bedrock user guide ("Anthropic Claude
Messages API", Amazon Nova "Complete request schema" / "Response structure highlights",
"Amazon Titan Text models", "Amazon Titan Embeddings G1 - Text" V2) and of "Format and upload
your batch inference data" / "View the results of a batch inference job".
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sinfer.batch.bedrock.entry import PLACEHOLDER, BedrockEntry, Family, base_model_id
from sinfer.codecs.jsontext import json_failure
from sinfer.codecs.outputs import DEEP_OUTPUT_MESSAGE, MAX_OUTPUT_DEPTH, nested_deeper_than
from sinfer.errors import InvalidInputError

ANTHROPIC_VERSION: Final = "bedrock-2023-05-31"
NOVA_SCHEMA_VERSION: Final = "messages-v1"
# Claude requires max_tokens and Nova's default is small; a summary-sized default that the
# entry's request overrides.
DEFAULT_MAX_TOKENS: Final = 1024


class ModelOutputError(Exception):
    """A ``modelOutput`` this family never returns, or text that is not the JSON asked for.

    It carries ``code`` and ``message`` like :class:`~sinfer.errors.SinferError`, so error
    lines are written the same way, but stays outside that tree on purpose: it only ever
    becomes an error line in batch results, never an HTTP response, and the OpenAPI document
    lists every ``SinferError`` code as something the API may answer.
    """

    code: str = "invalid_model_output"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- records → modelInput ------------------------------------------------------------------


def record_text(entry: BedrockEntry, value: Any) -> str:
    """The text of one record: a plain string, or the ``input_field`` of a record object."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        if entry.input_field not in value:
            fields = sorted(str(k) for k in value)[:10]
            raise InvalidInputError(
                f"record has no field {entry.input_field!r} (the model's input_field); it has {fields}"
            )
        text = value[entry.input_field]
        if not isinstance(text, str):
            raise InvalidInputError(f"record field {entry.input_field!r} must be text, got {_kind(text)}")
    else:
        raise InvalidInputError(
            f"expected text, or an object with a {entry.input_field!r} field, got {_kind(value)}"
        )
    if not text.strip():
        raise InvalidInputError("the record's text is empty; the model needs something to read")
    return text


def build_model_input(entry: BedrockEntry, value: Any) -> dict[str, Any]:
    """The ``modelInput`` (InvokeModel request body) for one record value."""
    if entry.family == "user":
        assert entry.template is not None  # guaranteed by BedrockEntry.from_manifest
        filled = _fill(entry.template, entry, value)
        assert isinstance(filled, dict)
        return filled
    text = record_text(entry, value)
    request = entry.request
    if entry.family == "anthropic":
        body: dict[str, Any] = {
            "anthropic_version": request.get("anthropic_version", ANTHROPIC_VERSION),
            "max_tokens": request.get("max_tokens", DEFAULT_MAX_TOKENS),
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        }
        for key in ("system", "temperature", "top_p", "top_k", "stop_sequences"):
            if key in request:
                body[key] = request[key]
        return body
    if entry.family == "nova":
        config = dict(request.get("inferenceConfig", {}))
        if "maxTokens" not in config and "max_new_tokens" not in config:
            config["maxTokens"] = DEFAULT_MAX_TOKENS
        body = {
            "schemaVersion": request.get("schemaVersion", NOVA_SCHEMA_VERSION),
            "messages": [{"role": "user", "content": [{"text": text}]}],
            "inferenceConfig": config,
        }
        if "system" in request:
            body["system"] = [{"text": request["system"]}]
        return body
    if entry.family == "titan_text":
        body = {"inputText": text}
        if "textGenerationConfig" in request:
            body["textGenerationConfig"] = dict(request["textGenerationConfig"])
        return body
    # titan_embed
    body = {"inputText": text}
    for key in ("dimensions", "normalize", "embeddingTypes"):
        if key in request:
            body[key] = request[key]
    return body


def _fill(template: Any, entry: BedrockEntry, value: Any) -> Any:
    """The template with each placeholder replaced by the record's value.

    Substitution works on the parsed template, never on JSON text: a value full of quotes,
    newlines or braces is just a Python string here, and ``json.dumps`` escapes it when the
    line is written. Values are inserted once and never rescanned, so a record containing
    ``{text}`` cannot reach other fields. A string that is exactly one placeholder takes the
    field's JSON value as it is (a number stays a number); inside longer text, non-string
    values appear as compact JSON. Object keys are not templated.
    """
    if isinstance(template, dict):
        return {key: _fill(item, entry, value) for key, item in template.items()}
    if isinstance(template, list):
        return [_fill(item, entry, value) for item in template]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole is not None and whole.group(1) is not None:
        return _lookup(whole.group(1), entry, value)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]  # "{{" → "{", "}}" → "}"
        found = _lookup(name, entry, value)
        if isinstance(found, str):
            return found
        return json.dumps(found, ensure_ascii=False, separators=(",", ":"))

    return PLACEHOLDER.sub(replace, template)


def _lookup(name: str, entry: BedrockEntry, value: Any) -> Any:
    # {text} is the record's text wherever it lives (the string, or input_field of an object).
    if name == "text":
        return record_text(entry, value)
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"the template needs field {name!r}, so each record must be an object; got {_kind(value)}"
        )
    if name not in value or value[name] is None:
        raise InvalidInputError(f"record has no value for {name!r}, which the model's template needs")
    return value[name]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


# --- modelOutput → prediction --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """What one ``modelOutput`` means: the prediction, its token counts and why it stopped."""

    prediction: Any
    input_tokens: int
    output_tokens: int
    stop_reason: str | None


def parse_model_output(entry: BedrockEntry, model_output: Mapping[str, Any]) -> ParsedOutput:
    """Read one ``modelOutput`` as the entry says (``output``: text, json, embedding or raw)."""
    if not isinstance(model_output, Mapping):
        raise ModelOutputError(f"modelOutput must be a JSON object, got {_kind(model_output)}")
    family = entry.response_family
    input_tokens, output_tokens = token_usage(family, model_output)
    if family is None and entry.output_path is not None:
        found = _at_path(model_output, entry.output_path)
        if entry.output == "raw":
            return ParsedOutput(_shallow(found), input_tokens, output_tokens, None)
        if not isinstance(found, str):
            raise ModelOutputError(f"modelOutput.{_dotted(entry.output_path)} is {_kind(found)}, not text")
        prediction = _shallow(_json_text(found)) if entry.output == "json" else found
        return ParsedOutput(prediction, input_tokens, output_tokens, None)
    if family is None or entry.output == "raw":
        stop = _stop_reason(family, model_output) if family is not None else None
        return ParsedOutput(_shallow(dict(model_output)), input_tokens, output_tokens, stop)
    if family == "titan_embed":
        embedding = model_output.get("embedding")
        if not isinstance(embedding, list) or not all(_is_number(v) for v in embedding):
            raise ModelOutputError("Titan Embeddings modelOutput has no 'embedding' list of numbers")
        return ParsedOutput(embedding, input_tokens, output_tokens, None)
    text = _text(family, model_output)
    prediction = _shallow(_json_text(text)) if entry.output == "json" else text
    return ParsedOutput(prediction, input_tokens, output_tokens, _stop_reason(family, model_output))


def _at_path(value: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` in a modelOutput (keys of objects, indexes of lists)."""
    for depth, step in enumerate(path):
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(value, Mapping) and str(step) in value:
            value = value[str(step)]
        else:
            raise ModelOutputError(f"modelOutput has no {_dotted(path[: depth + 1])} (output_path)")
    return value


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(step) for step in path)


def _shallow(prediction: Any) -> Any:
    if nested_deeper_than(prediction, MAX_OUTPUT_DEPTH):
        raise ModelOutputError(DEEP_OUTPUT_MESSAGE)
    return prediction


def token_usage(family: Family | None, model_output: Mapping[str, Any]) -> tuple[int, int]:
    """``(input_tokens, output_tokens)`` a ``modelOutput`` reports; 0 for what it leaves out.

    Lenient on purpose: counts feed summaries and cost estimates, and a missing count must not
    turn a good prediction into an error. ``family=None`` tries every family's fields.
    """
    usage = model_output.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    if family == "anthropic":
        return _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if family == "nova":
        return _count(usage.get("inputTokens")), _count(usage.get("outputTokens"))
    if family == "titan_text":
        results = model_output.get("results")
        results = results if isinstance(results, list) else []
        out = sum(_count(r.get("tokenCount")) for r in results if isinstance(r, Mapping))
        return _count(model_output.get("inputTextTokenCount")), out
    if family == "titan_embed":
        return _count(model_output.get("inputTextTokenCount")), 0
    for family_name in ("anthropic", "nova", "titan_text"):
        found = token_usage(family_name, model_output)
        if found != (0, 0):
            return found
    return 0, 0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(family: Family, model_output: Mapping[str, Any]) -> str:
    if family == "anthropic":
        content = model_output.get("content")
        if not isinstance(content, list):
            raise ModelOutputError("Claude modelOutput has no 'content' list")
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, Mapping)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
    if family == "nova":
        output = model_output.get("output")
        message = output.get("message") if isinstance(output, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            raise ModelOutputError("Nova modelOutput has no 'output.message.content' list")
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, Mapping) and isinstance(block.get("text"), str)
        )
    results = model_output.get("results")  # titan_text
    if not isinstance(results, list) or not results or not isinstance(results[0], Mapping):
        raise ModelOutputError("Titan Text modelOutput has no 'results' list")
    text = results[0].get("outputText")
    if not isinstance(text, str):
        raise ModelOutputError("Titan Text modelOutput has no 'results[0].outputText' string")
    return text


def _stop_reason(family: Family, model_output: Mapping[str, Any]) -> str | None:
    if family == "anthropic":
        found = model_output.get("stop_reason")
    elif family == "nova":
        found = model_output.get("stopReason")
    elif family == "titan_text":
        results = model_output.get("results")
        first = results[0] if isinstance(results, list) and results else None
        found = first.get("completionReason") if isinstance(first, Mapping) else None
    else:
        found = None
    return found if isinstance(found, str) else None


_FENCE: Final = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


def _json_text(text: str) -> Any:
    # Chat models often wrap JSON in a Markdown code fence even when told not to; one
    # surrounding fence is unwrapped, anything else must be JSON as it stands.
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced is not None:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        shown = stripped[:80] + ("…" if len(stripped) > 80 else "")
        message = f"the model's text is not valid JSON ({json_failure(exc)}); it starts {shown!r}"
        raise ModelOutputError(message) from None


# --- batch records and files ---------------------------------------------------------------

RECORD_ID_WIDTH: Final = 11
MAX_RECORD_INDEX: Final = 10**RECORD_ID_WIDTH - 1


def record_id(index: int) -> str:
    """The recordId of a record: its index as 11 zero-padded decimal digits (``00000000042``).

    Bedrock wants an 11-character alphanumeric recordId; decimal keeps it reversible with
    :func:`record_index` and sortable, so outputs join back to inputs without a lookup table.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_RECORD_INDEX:
        raise ValueError(f"record index must be an integer from 0 to {MAX_RECORD_INDEX:,}, got {index!r}")
    return f"{index:0{RECORD_ID_WIDTH}d}"


def record_index(rid: str) -> int:
    """The record index a :func:`record_id` encodes; ``ValueError`` for any other recordId."""
    if not isinstance(rid, str) or len(rid) != RECORD_ID_WIDTH or not (rid.isascii() and rid.isdigit()):
        raise ValueError(f"not a sinfer recordId (11 decimal digits): {rid!r}")
    return int(rid)


def batch_input_line(rid: str, model_input: Mapping[str, Any]) -> bytes:
    """One line of a Bedrock batch input file: ``{"recordId", "modelInput"}`` and a newline."""
    return _jsonl({"recordId": rid, "modelInput": model_input})


def batch_output_line(
    rid: str,
    model_input: Any,
    model_output: Mapping[str, Any] | None = None,
    error: tuple[int | str, str] | None = None,
) -> bytes:
    """One line of a ``.jsonl.out`` file: ``modelOutput``, or ``error`` in its place."""
    line: dict[str, Any] = {"recordId": rid, "modelInput": model_input}
    if error is not None:
        line["error"] = {"errorCode": error[0], "errorMessage": error[1]}
    else:
        line["modelOutput"] = model_output
    return _jsonl(line)


def _jsonl(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


@dataclass(frozen=True, slots=True)
class BatchOutputRecord:
    """One line of a ``.jsonl.out`` file: a ``modelOutput``, or Bedrock's error for the record."""

    record_id: str
    model_input: Any
    model_output: dict[str, Any] | None = None
    error_code: int | str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.model_output is not None


def parse_batch_output_line(line: bytes | str) -> BatchOutputRecord:
    """Parse one output line; :class:`ModelOutputError` if it is not Bedrock's line format."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ModelOutputError(f"batch output line is not valid JSON: {json_failure(exc)}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("recordId"), str):
        raise ModelOutputError("batch output line has no 'recordId' string")
    rid = obj["recordId"]
    output = obj.get("modelOutput")
    if isinstance(output, dict):
        return BatchOutputRecord(rid, obj.get("modelInput"), model_output=output)
    error = obj.get("error")
    if isinstance(error, dict):
        code = error.get("errorCode")
        message = error.get("errorMessage")
        return BatchOutputRecord(
            rid,
            obj.get("modelInput"),
            error_code=code if isinstance(code, int | str) and not isinstance(code, bool) else None,
            error_message=str(message) if message is not None else "",
        )
    raise ModelOutputError(f"batch output line for record {rid!r} has neither 'modelOutput' nor 'error'")


_MANIFEST_KEYS: Final = (
    ("total_record_count", "totalRecordCount"),
    ("processed_record_count", "processedRecordCount"),
    ("success_record_count", "successRecordCount"),
    ("error_record_count", "errorRecordCount"),
    ("input_token_count", "inputTokenCount"),
    ("output_token_count", "outputTokenCount"),
)


@dataclass(slots=True)
class ManifestCounts:
    """``manifest.json.out``: the job's record and token totals."""

    total_record_count: int = 0
    processed_record_count: int = 0
    success_record_count: int = 0
    error_record_count: int = 0
    input_token_count: int = 0
    output_token_count: int = 0

    def to_json(self) -> dict[str, int]:
        return {wire: getattr(self, attr) for attr, wire in _MANIFEST_KEYS}


def output_uri_for(output_uri: str, job_id: str, input_uri: str) -> str:
    """Where Bedrock writes the outputs of one input file: ``<output>/<jobId>/<file>.out``."""
    return f"{output_uri.rstrip('/')}/{job_id}/{posixpath.basename(input_uri)}.out"


def manifest_uri(output_uri: str, job_id: str) -> str:
    """Where Bedrock writes a job's ``manifest.json.out``."""
    return f"{output_uri.rstrip('/')}/{job_id}/manifest.json.out"


# --- cost ----------------------------------------------------------------------------------

# USD per 1,000 tokens (input, output), on-demand, us-east-1, in-Region (cross-Region "global."
# profiles of newer models are priced differently). From the Amazon Bedrock pricing page as of
# 2025-06; not re-checked since, so treat estimates as indicative. Keys are model ids without
# the ":N" version suffix; a longer id (":0", ":0:200k") matches its key.
PRICES_AS_OF: Final = "2025-06"
PRICES_PER_1K: Final[dict[str, tuple[float, float]]] = {
    "anthropic.claude-3-haiku-20240307-v1": (0.00025, 0.00125),
    "anthropic.claude-3-5-haiku-20241022-v1": (0.0008, 0.004),
    "anthropic.claude-3-sonnet-20240229-v1": (0.003, 0.015),
    "anthropic.claude-3-5-sonnet-20240620-v1": (0.003, 0.015),
    "anthropic.claude-3-5-sonnet-20241022-v2": (0.003, 0.015),
    "anthropic.claude-3-7-sonnet-20250219-v1": (0.003, 0.015),
    "anthropic.claude-sonnet-4-20250514-v1": (0.003, 0.015),
    "anthropic.claude-3-opus-20240229-v1": (0.015, 0.075),
    "anthropic.claude-opus-4-20250514-v1": (0.015, 0.075),
    "amazon.nova-micro-v1": (0.000035, 0.00014),
    "amazon.nova-lite-v1": (0.00006, 0.00024),
    "amazon.nova-pro-v1": (0.0008, 0.0032),
    "amazon.titan-text-lite-v1": (0.00015, 0.0002),
    "amazon.titan-text-express-v1": (0.0002, 0.0006),
    "amazon.titan-text-premier-v1": (0.0005, 0.0015),
    "amazon.titan-embed-text-v1": (0.0001, 0.0),
    "amazon.titan-embed-text-v2": (0.00002, 0.0),
}
# Bedrock batch inference is billed at 50% of on-demand for the models that support it.
BATCH_DISCOUNT: Final = 0.5


def estimate_cost(model_id: str, input_tokens: int, output_tokens: int, batch: bool = True) -> float | None:
    """Estimated USD for these token counts, or ``None`` for a model not in the price table."""
    base = base_model_id(model_id)
    price = next(
        (p for key, p in PRICES_PER_1K.items() if base == key or base.startswith(key + ":")),
        None,
    )
    if price is None:
        return None
    cost = (input_tokens * price[0] + output_tokens * price[1]) / 1000
    if batch:
        cost *= BATCH_DISCOUNT
    return round(cost, 8)
