"""A local, deterministic emulator of Bedrock batch inference. It is not a model.

``sinfer local``, the tests and the demos need Bedrock's *behaviour* without an AWS account:
the same request validation (a malformed ``modelInput`` fails its record with a 400, as the
real service does), the same response shapes per model family, and the same output layout
(``<output>/<jobId>/<file>.jsonl.out`` plus ``manifest.json.out``), so that the code joining
real outputs back to inputs is exercised as it will run against Bedrock. What comes back is a
fixed function of the request: text is ``"[emulated <family>] "`` plus the start of the
prompt, token counts are word counts, embeddings are unit vectors drawn from a hash of the
text. Same input, same output, on every machine.

Two things are deliberately *unlike* a model run and *like* Bedrock: output lines come in a
shuffled order (Bedrock does not promise input order; the shuffle is seeded by the job id and
file name, so it is reproducible), and every input line is validated before any output is
written, as Bedrock's ``Validating`` state does — a malformed file fails the whole job with
:class:`EmulatedJobError` and leaves no outputs.

Memory stays bounded by one input file: its raw lines are held to be shuffled (Bedrock caps a
file at 50,000 records); outputs stream through the record writers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from sinfer.aws import s3
from sinfer.batch.bedrock.entry import EMBED_DIMENSIONS, BedrockEntry, Family, base_model_id, strings_in
from sinfer.batch.bedrock.families import (
    ANTHROPIC_VERSION,
    NOVA_SCHEMA_VERSION,
    ManifestCounts,
    batch_output_line,
    manifest_uri,
    output_uri_for,
    token_usage,
)
from sinfer.records.writer import FileJsonlWriter, S3JsonlWriter

MAX_RECORDS_PER_FILE: Final = 50_000  # Bedrock's "records per input file per batch inference job"
SUMMARY_CHARS: Final = 60
TITAN_EMBED_MAX_CHARS: Final = 50_000  # Titan Text Embeddings V2 rejects longer inputText
TITAN_TEXT_DEFAULT_MAX_TOKENS: Final = 512


class EmulatedModelError(Exception):
    """The emulated model rejected a ``modelInput``, as Bedrock would with this status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmulatedJobError(Exception):
    """The emulated job failed as a whole (Bedrock's ``Failed`` after ``Validating``)."""


# --- one request ---------------------------------------------------------------------------


def emulate(entry_or_family: BedrockEntry | Family | str, model_input: Mapping[str, Any]) -> dict[str, Any]:
    """The ``modelOutput`` the emulated model returns for ``model_input``.

    Given a :class:`BedrockEntry`, responses follow its response family and, for
    ``"output": "json"``, the text is a JSON object so that JSON entries can be demonstrated.
    A model sinfer does not know (a ``user`` template for another provider) gets an echo, with
    the reply (from the request's text) where the entry's ``output_path`` says the text is.
    Raises :class:`EmulatedModelError` (400) for a ``modelInput`` the real model would reject.
    """
    entry = entry_or_family if isinstance(entry_or_family, BedrockEntry) else None
    family = entry.response_family if entry is not None else entry_or_family
    if not isinstance(model_input, Mapping):
        raise _malformed("#: expected type: JSONObject")
    wants_json = entry is not None and entry.output == "json"
    if family == "anthropic":
        model = base_model_id(entry.model_id) if entry is not None else "emulated"
        return _anthropic(model_input, wants_json, model)
    if family == "nova":
        return _nova(model_input, wants_json)
    if family == "titan_text":
        return _titan_text(model_input, wants_json)
    if family == "titan_embed":
        return _titan_embed(model_input)
    echo: dict[str, Any] = {
        "emulated": "no emulator for this model family; modelInput echoed",
        "modelInput": dict(model_input),
    }
    if entry is not None and entry.output_path is not None:
        text = _reply("user", " ".join(strings_in(model_input)), wants_json)
        _place(echo, entry.output_path, text)
    return echo


def _place(target: dict[str, Any], path: tuple[str | int, ...], text: str) -> None:
    """Put ``text`` at ``path``, making the objects and lists on the way (lists padded with {})."""
    node: Any = target
    for step, following in zip(path, (*path[1:], None), strict=True):
        child: Any = text if following is None else ([] if isinstance(following, int) else {})
        if isinstance(node, list):
            node.extend({} for _ in range(int(step) + 1 - len(node)))
            node[int(step)] = child
        else:
            node[str(step)] = child
        node = child


def _malformed(detail: str) -> EmulatedModelError:
    # The wording of Bedrock's ValidationException for a body that fails the model's schema.
    return EmulatedModelError(
        400, f"Malformed input request: {detail}, please reformat your input and try again."
    )


def _words(text: str) -> int:
    return len(text.split())


def _summary(text: str) -> str:
    collapsed = " ".join(text.split())
    return collapsed[:SUMMARY_CHARS] + ("…" if len(collapsed) > SUMMARY_CHARS else "")


def _reply(family: str, prompt: str, wants_json: bool) -> str:
    if wants_json:
        return json.dumps({"emulated": family, "summary": _summary(prompt)}, ensure_ascii=False)
    return f"[emulated {family}] {_summary(prompt)}"


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` words (the emulator's tokens), and whether it was cut."""
    words = text.split()
    if len(words) <= limit:
        return text, False
    return " ".join(words[:limit]), True


def _check_keys(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise _malformed(f"#: extraneous key [{key}] is not permitted")


def _require(body: Mapping[str, Any], key: str) -> Any:
    if key not in body:
        raise _malformed(f"#: required key [{key}] not found")
    return body[key]


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _malformed(f"#/{where}: expected an integer ≥ 1, got {value!r}")
    return value


def _optional_unit(body: Mapping[str, Any], key: str, where: str) -> None:
    if key in body:
        value = body[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise _malformed(f"#/{where}{key}: {value!r} is not a number from 0 to 1")


def _messages(body: Mapping[str, Any], text_of: Callable[[Any, str], str]) -> tuple[str, str]:
    """Validate ``messages``; return (the last user text, all text) for the reply and counts."""
    messages = _require(body, "messages")
    if not isinstance(messages, list) or not messages:
        raise _malformed("#/messages: expected a non-empty array")
    user_text = ""
    every = []
    for n, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _malformed(f"#/messages/{n}: expected type: JSONObject")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _malformed(f"#/messages/{n}/role: {role!r} is not a valid enum value")
        if n == 0 and role != "user":
            raise _malformed("#/messages/0/role: the first message must be the user's")
        text = text_of(message.get("content"), f"#/messages/{n}/content")
        every.append(text)
        if role == "user":
            user_text = text
    return user_text, " ".join(every)


def _anthropic_content(content: Any, where: str) -> str:
    if isinstance(content, str):
        if not content:
            raise _malformed(f"{where}: text content must be non-empty")
        return content
    if not isinstance(content, list) or not content:
        raise _malformed(f"{where}: expected a string or a non-empty array of content blocks")
    texts = []
    for n, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise _malformed(f"{where}/{n}: a content block needs a 'type'")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise _malformed(f"{where}/{n}/text: text content blocks must be non-empty")
            texts.append(block["text"])
    return " ".join(texts)


_ANTHROPIC_KEYS: Final = frozenset(
    {
        "anthropic_version", "max_tokens", "messages", "system", "temperature", "top_p", "top_k",
        "stop_sequences", "metadata", "tools", "tool_choice", "thinking", "anthropic_beta",
    }
)  # fmt: skip


def _anthropic(body: Mapping[str, Any], wants_json: bool, model: str) -> dict[str, Any]:
    _check_keys(body, _ANTHROPIC_KEYS)
    version = _require(body, "anthropic_version")
    if version != ANTHROPIC_VERSION:
        raise _malformed(f"#/anthropic_version: {version!r} is not a valid enum value")
    max_tokens = _positive_int(_require(body, "max_tokens"), "max_tokens")
    _optional_unit(body, "temperature", "")
    _optional_unit(body, "top_p", "")
    system = body.get("system", "")
    if not isinstance(system, str):
        system = _anthropic_content(system, "#/system")
    user_text, every = _messages(body, _anthropic_content)
    text, cut = _truncate(_reply("anthropic", user_text, wants_json), max_tokens)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "id": f"msg_emu_{digest[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if cut else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": _words(system) + _words(every), "output_tokens": _words(text)},
    }


def _nova_content(content: Any, where: str) -> str:
    if not isinstance(content, list) or not content:
        raise _malformed(f"{where}: expected a non-empty array of content blocks")
    texts = []
    for n, block in enumerate(content):
        if not isinstance(block, Mapping) or not block:
            raise _malformed(f"{where}/{n}: expected a content block object")
        if "text" in block:
            if not isinstance(block["text"], str):
                raise _malformed(f"{where}/{n}/text: expected type: String")
            texts.append(block["text"])
    return " ".join(texts)


_NOVA_KEYS: Final = frozenset({"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"})


def _nova(body: Mapping[str, Any], wants_json: bool) -> dict[str, Any]:
    _check_keys(body, _NOVA_KEYS)
    if body.get("schemaVersion", NOVA_SCHEMA_VERSION) != NOVA_SCHEMA_VERSION:
        raise _malformed(f"#/schemaVersion: {body['schemaVersion']!r} is not a valid enum value")
    system = body.get("system", [])
    if not isinstance(system, list) or not all(
        isinstance(s, Mapping) and isinstance(s.get("text"), str) for s in system
    ):
        raise _malformed("#/system: expected an array of {text} blocks")
    config = body.get("inferenceConfig", {})
    if not isinstance(config, Mapping):
        raise _malformed("#/inferenceConfig: expected type: JSONObject")
    limit_key = "max_new_tokens" if "max_new_tokens" in config else "maxTokens"
    max_tokens = _positive_int(config.get(limit_key, 5_000), f"inferenceConfig/{limit_key}")
    _optional_unit(config, "temperature", "inferenceConfig/")
    user_text, every = _messages(body, _nova_content)
    text, cut = _truncate(_reply("nova", user_text, wants_json), max_tokens)
    inputs = sum(_words(s["text"]) for s in system) + _words(every)
    outputs = _words(text)
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "max_tokens" if cut else "end_turn",
        "usage": {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs},
    }


def _input_text(body: Mapping[str, Any]) -> str:
    text = _require(body, "inputText")
    if not isinstance(text, str) or not text.strip():
        raise _malformed("#/inputText: expected a non-empty string")
    return text


def _titan_text(body: Mapping[str, Any], wants_json: bool) -> dict[str, Any]:
    _check_keys(body, frozenset({"inputText", "textGenerationConfig"}))
    prompt = _input_text(body)
    config = body.get("textGenerationConfig", {})
    if not isinstance(config, Mapping):
        raise _malformed("#/textGenerationConfig: expected type: JSONObject")
    _check_keys(config, frozenset({"maxTokenCount", "temperature", "topP", "stopSequences"}))
    limit = config.get("maxTokenCount", TITAN_TEXT_DEFAULT_MAX_TOKENS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise _malformed(f"#/textGenerationConfig/maxTokenCount: expected an integer ≥ 0, got {limit!r}")
    _optional_unit(config, "temperature", "textGenerationConfig/")
    _optional_unit(config, "topP", "textGenerationConfig/")
    text, cut = _truncate(_reply("titan_text", prompt, wants_json), limit)
    # "FINISH" is what the service's responses (and the batch results example) carry; the
    # Titan Text page lists "FINISHED". Parsers pass either through as the stop reason.
    return {
        "inputTextTokenCount": _words(prompt),
        "results": [
            {
                "tokenCount": _words(text),
                "outputText": text,
                "completionReason": "LENGTH" if cut else "FINISH",
            }
        ],
    }


def _titan_embed(body: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(body, frozenset({"inputText", "dimensions", "normalize", "embeddingTypes"}))
    text = _input_text(body)
    if len(text) > TITAN_EMBED_MAX_CHARS:
        raise _malformed(f"#/inputText: expected maxLength: {TITAN_EMBED_MAX_CHARS}, actual: {len(text)}")
    dimensions = body.get("dimensions", 1024)
    if dimensions not in EMBED_DIMENSIONS or isinstance(dimensions, bool):
        raise _malformed(f"#/dimensions: {dimensions!r} is not a valid enum value")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _malformed("#/normalize: expected type: Boolean")
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list) or not types or not set(types) <= {"float", "binary"}:
        raise _malformed("#/embeddingTypes: expected a non-empty array of 'float' and/or 'binary'")
    vector = hashed_vector(text, dimensions, normalize)
    by_type: dict[str, list[Any]] = {}
    if "float" in types:
        by_type["float"] = vector
    if "binary" in types:
        by_type["binary"] = [1 if v >= 0 else 0 for v in vector]
    return {"embedding": vector, "inputTextTokenCount": _words(text), "embeddingsByType": by_type}


def hashed_vector(text: str, dimensions: int, normalize: bool = True) -> list[float]:
    """A vector of ``dimensions`` floats from BLAKE2b of ``text``: a unit vector if ``normalize``.

    Rounded to 6 decimals to keep output files small; the norm stays within 1e-5 of 1.
    """
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        block = hashlib.blake2b(
            text.encode("utf-8", "surrogatepass"), digest_size=64, salt=counter.to_bytes(16, "big")
        )
        digest = block.digest()
        raw.extend(int.from_bytes(digest[i : i + 4], "big") / 2**31 - 1.0 for i in range(0, 64, 4))
        counter += 1
    raw = raw[:dimensions]
    if normalize:
        norm = math.sqrt(sum(v * v for v in raw)) or 1.0
        raw = [v / norm for v in raw]
    return [round(v, 6) for v in raw]


# --- a whole job ---------------------------------------------------------------------------


def run_local_job(
    input_uris: list[str],
    output_uri: str,
    job_id: str,
    entry: BedrockEntry,
    *,
    max_records_per_file: int = MAX_RECORDS_PER_FILE,
) -> ManifestCounts:
    """Emulate a Bedrock batch job over ``input_uris`` (``s3://`` URIs or local paths).

    Writes ``<output_uri>/<job_id>/<input basename>.out`` per input file and
    ``<output_uri>/<job_id>/manifest.json.out``, and returns the manifest's counts. Raises
    :class:`EmulatedJobError`, with nothing written, when an input cannot be a Bedrock batch
    file: not ``.jsonl``, a line that is not ``{"recordId", "modelInput"}``, too many records.
    """
    if not job_id or "/" in job_id:
        raise EmulatedJobError(f"job id must be a non-empty name without '/', got {job_id!r}")
    if not input_uris:
        raise EmulatedJobError("a batch job needs at least one input file")
    names = [posixpath.basename(_local_or_s3(uri)) for uri in input_uris]
    if len(set(names)) != len(names):
        raise EmulatedJobError(
            f"input files must have distinct names, since outputs are named after them: {names}"
        )
    for uri in input_uris:  # Bedrock's Validating state: the whole job, before any output
        _validate(uri, max_records_per_file)

    counts = ManifestCounts()
    for uri in input_uris:
        lines = list(_nonblank_lines(uri))
        order = list(range(len(lines)))
        random.Random(_seed(job_id, uri)).shuffle(order)  # noqa: S311 - reproducible order, not security
        with _writer(output_uri_for(output_uri, job_id, _local_or_s3(uri))) as out:
            for index in order:
                rid, model_input = _input_record(lines[index], index)
                try:
                    model_output = emulate(entry, model_input)
                except EmulatedModelError as exc:
                    out.write(batch_output_line(rid, model_input, error=(exc.code, exc.message)))
                    counts.error_record_count += 1
                    continue
                out.write(batch_output_line(rid, model_input, model_output))
                counts.success_record_count += 1
                tokens_in, tokens_out = token_usage(entry.response_family, model_output)
                counts.input_token_count += tokens_in
                counts.output_token_count += tokens_out
    counts.total_record_count = counts.processed_record_count = (
        counts.success_record_count + counts.error_record_count
    )
    with _writer(manifest_uri(output_uri, job_id), content_type="application/json") as out:
        out.write(json.dumps(counts.to_json()).encode("utf-8"))
    return counts


def _local_or_s3(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _seed(job_id: str, uri: str) -> int:
    name = posixpath.basename(_local_or_s3(uri))
    return int.from_bytes(hashlib.sha256(f"{job_id}\0{name}".encode()).digest()[:8], "big")


def _nonblank_lines(uri: str) -> Iterator[bytes]:
    """The lines of an input file that hold records, without their line endings."""
    for line in _lines(_local_or_s3(uri)):
        if line.strip():
            yield line.rstrip(b"\r\n")


def _lines(target: str) -> Iterator[bytes]:
    if target.startswith("s3://"):
        location = s3.S3Uri.parse(target)
        try:
            yield from s3.iter_lines(location.bucket, location.key)
        except s3.S3NotFoundError as exc:
            raise EmulatedJobError(str(exc)) from exc
        return
    try:
        handle = open(target, "rb")  # noqa: SIM115 - the with below closes it
    except FileNotFoundError as exc:
        raise EmulatedJobError(f"{target} does not exist") from exc
    with handle:
        yield from handle


def _validate(uri: str, max_records: int) -> None:
    target = _local_or_s3(uri)
    if not target.endswith(".jsonl"):
        raise EmulatedJobError(f"{uri}: Bedrock batch input files must end in .jsonl")
    count = 0
    for count, line in enumerate(_nonblank_lines(uri), start=1):
        if count > max_records:
            raise EmulatedJobError(
                f"{uri}: more than {max_records:,} records, Bedrock's limit per input file"
            )
        try:
            _input_record(line, count - 1)
        except ValueError as exc:
            raise EmulatedJobError(f"{uri}: record {count}: {exc}") from exc
    if count == 0:
        raise EmulatedJobError(f"{uri}: no records")


def _input_record(line: bytes, index: int) -> tuple[str, dict[str, Any]]:
    """``(recordId, modelInput)`` of one input line; ``ValueError`` if it is not that shape."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("modelInput"), dict):
        raise ValueError('expected {"recordId": "...", "modelInput": {...}}')
    rid = obj.get("recordId")
    if rid is None:
        # Bedrock adds a recordId when a line has none; an "X" prefix keeps the emulator's
        # from colliding with sinfer's all-digit ones.
        rid = f"X{index:010d}"
    if not isinstance(rid, str) or not rid:
        raise ValueError("recordId must be a non-empty string")
    return rid, obj["modelInput"]


def _writer(uri: str, content_type: str = "application/x-ndjson") -> S3JsonlWriter | FileJsonlWriter:
    if uri.startswith("s3://"):
        location = s3.S3Uri.parse(uri)
        return S3JsonlWriter(location.bucket, location.key, content_type=content_type)
    return FileJsonlWriter(os.fspath(uri))
