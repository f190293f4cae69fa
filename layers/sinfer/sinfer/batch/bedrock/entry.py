"""A model-store entry that names a Bedrock foundation model instead of an ONNX file.

``<store>/<name>/<version>/model.json`` with ``"kind": "bedrock"`` and no ``model.onnx``::

    {"kind": "bedrock", "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
     "request": {"system": "Summarise in one sentence.", "max_tokens": 256, "temperature": 0},
     "input_field": "text", "output": "text", "batch_backend": "bedrock"}

* ``family`` says which request/response format the model speaks. It is optional for the
  families sinfer knows, because the ``modelId`` gives it away (``anthropic.`` → anthropic,
  ``amazon.nova`` → nova, ``amazon.titan-text``/``amazon.titan-tg1`` → titan_text,
  ``amazon.titan-embed`` → titan_embed). Any other model needs ``"family": "user"`` and a
  ``template``: the whole ``modelInput`` as JSON, with ``{text}`` / ``{field}`` placeholders.
* ``request`` holds the family's own parameters, spelled as in that family's InvokeModel
  documentation (``max_tokens`` for Claude, ``inferenceConfig.maxTokens`` for Nova,
  ``textGenerationConfig.maxTokenCount`` for Titan Text, ``dimensions`` for Titan Embeddings),
  so a parameter copied from AWS's pages works unchanged.
* ``input_field`` names the field of a record object that holds the text (plain-string records
  are the text themselves). ``output`` says what a prediction is: ``text``, ``json`` (the text
  parsed as JSON), ``embedding`` (Titan Embeddings) or ``raw`` (the whole ``modelOutput``).
* ``output_path`` (``user`` entries of a model sinfer cannot read: Llama, Mistral, Cohere...)
  says where the text is in its ``modelOutput``, as dotted keys and list indexes
  (``"generation"`` for Llama, ``"outputs.0.text"`` for Mistral); ``output`` may then be
  ``text`` (the default), ``json`` or ``raw`` (the value there, as it is).

Parsing is strict, as for ONNX manifests: an unknown key or a wrong type fails the load with a
:class:`~sinfer.errors.ManifestError` naming the field, instead of silently sending a request
Bedrock will reject record by record hours later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from sinfer.errors import ManifestError
from sinfer.model.manifest import Manifest

Family = Literal["anthropic", "nova", "titan_text", "titan_embed", "user"]
OutputMode = Literal["text", "json", "embedding", "raw"]

FAMILIES: Final[tuple[Family, ...]] = ("anthropic", "nova", "titan_text", "titan_embed", "user")
TEXT_FAMILIES: Final[frozenset[str]] = frozenset({"anthropic", "nova", "titan_text"})
BATCH_BACKENDS: Final = ("bedrock", "local")
EMBED_DIMENSIONS: Final = (256, 512, 1024)

# Longest prefix first is not needed: no prefix here is a prefix of another.
_PREFIXES: Final[tuple[tuple[str, Family], ...]] = (
    ("anthropic.", "anthropic"),
    ("amazon.nova", "nova"),
    ("amazon.titan-text", "titan_text"),
    ("amazon.titan-tg1", "titan_text"),
    ("amazon.titan-embed", "titan_embed"),
)
# Cross-region inference profiles put a geography in front of the model id
# ("us.anthropic.claude-…", "global.amazon.nova-…"); the family is the model's.
_GEO_PREFIX: Final = re.compile(r"^(?:us|eu|apac|us-gov|ca|jp|au|global)\.(?=[a-z])")

# {name} is a placeholder; {{ and }} are literal braces; any other brace is literal text.
PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

_TOP_LEVEL: Final = (
    "kind", "modelId", "family", "request", "input_field", "template", "output", "output_path",
    "batch_backend", "name", "version", "description",
)  # fmt: skip


def base_model_id(model_id: str) -> str:
    """The foundation-model id inside an ARN or a cross-region inference profile id."""
    tail = model_id.rsplit("/", 1)[-1]
    return _GEO_PREFIX.sub("", tail)


def family_of(model_id: str) -> Family | None:
    """The family a model id belongs to, or ``None`` when sinfer does not know it."""
    base = base_model_id(model_id)
    for prefix, family in _PREFIXES:
        if base.startswith(prefix):
            return family
    return None


def is_bedrock_manifest(raw: Mapping[str, Any] | Manifest) -> bool:
    """True for a model.json that describes a Bedrock model (``"kind": "bedrock"``)."""
    kind = raw.extra.get("kind") if isinstance(raw, Manifest) else raw.get("kind")
    return kind == "bedrock"


@dataclass(frozen=True, slots=True)
class BedrockEntry:
    """A validated Bedrock store entry. Build one with :meth:`from_manifest`."""

    model_id: str
    family: Family
    request: dict[str, Any] = field(default_factory=dict)
    input_field: str = "text"
    template: dict[str, Any] | None = None
    output: OutputMode = "text"
    output_path: tuple[str | int, ...] | None = None  # where the text is, for an unknown family
    batch_backend: str = "bedrock"
    name: str | None = None
    version: str | None = None
    description: str = ""

    @property
    def response_family(self) -> Family | None:
        """The format ``modelOutput`` comes back in.

        The family, except for ``user`` entries, whose template only changes how the request
        is built: their responses are read as the model id's family when sinfer knows it.
        """
        return _response_family(self.family, self.model_id)

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any] | Manifest, source: str = "model.json") -> BedrockEntry:
        """Validate a parsed model.json (or the :class:`Manifest` the store already built)."""
        if isinstance(raw, Manifest):
            raw = _raw_from_manifest(raw, source)
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{source}: expected a JSON object")
        unknown = sorted(str(k) for k in raw if k not in _TOP_LEVEL)
        if unknown:
            raise ManifestError(
                f"{source}: unknown field(s) {unknown} for a bedrock entry; "
                f"expected some of {list(_TOP_LEVEL)}"
            )
        if raw.get("kind") != "bedrock":
            raise ManifestError(f"{source}: kind must be 'bedrock' for a foundation-model entry")
        model_id = raw.get("modelId")
        if not isinstance(model_id, str) or not model_id or any(c.isspace() for c in model_id):
            raise ManifestError(
                f"{source}: modelId must be a Bedrock model id such as "
                "'anthropic.claude-3-haiku-20240307-v1:0' (a non-empty string without spaces)"
            )
        family = _family(raw.get("family"), model_id, source)
        template = _template(raw.get("template"), family, source)
        request = _request(raw.get("request"), family, source)
        input_field = raw.get("input_field", "text")
        if not isinstance(input_field, str) or not input_field:
            raise ManifestError(f"{source}: input_field must name the record field that holds the text")
        response_family = _response_family(family, model_id)
        output_path = _output_path(raw.get("output_path"), response_family, source)
        return cls(
            model_id=model_id,
            family=family,
            request=request,
            input_field=input_field,
            template=template,
            output=_output(raw.get("output"), response_family, output_path is not None, source),
            output_path=output_path,
            batch_backend=_batch_backend(raw.get("batch_backend"), source),
            name=_opt_str(raw.get("name"), "name", source),
            version=_opt_str(raw.get("version"), "version", source),
            description=_opt_str(raw.get("description"), "description", source) or "",
        )


def _response_family(family: Family, model_id: str) -> Family | None:
    return family if family != "user" else family_of(model_id)


def _raw_from_manifest(manifest: Manifest, source: str) -> dict[str, Any]:
    # Manifest.from_dict keeps unknown top-level keys in ``extra``; the ONNX-only fields must
    # be unset, since nothing would honour them for a foundation model.
    onnx_only = {
        "sha256": manifest.sha256,
        "labels": manifest.labels,
        "inputs": manifest.inputs or None,
        "postprocess": manifest.postprocess,
        "batch": manifest.max_batch_size,
    }
    present = sorted(name for name, value in onnx_only.items() if value is not None)
    if present:
        raise ManifestError(f"{source}: {present} apply to ONNX models, not to a bedrock entry")
    raw: dict[str, Any] = dict(manifest.extra)
    for key, value in (
        ("name", manifest.name),
        ("version", manifest.version),
        ("description", manifest.description or None),
        ("batch_backend", manifest.batch_backend),
    ):
        if value is not None:
            raw[key] = value
    return raw


def _opt_str(value: object, name: str, source: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ManifestError(f"{source}: {name} must be a string")


def _family(value: object, model_id: str, source: str) -> Family:
    derived = family_of(model_id)
    if value is None:
        if derived is None:
            raise ManifestError(
                f"{source}: cannot tell the family of modelId {model_id!r}; set family to one of "
                f"{list(FAMILIES[:-1])}, or to 'user' with a template giving the whole modelInput"
            )
        return derived
    if value not in FAMILIES:
        raise ManifestError(f"{source}: family must be one of {list(FAMILIES)}, got {value!r}")
    if value != "user" and derived is not None and value != derived:
        raise ManifestError(
            f"{source}: family {value!r} does not match modelId {model_id!r}, which is {derived!r}"
        )
    return value


def _batch_backend(value: object, source: str) -> str:
    if value is None:
        return "bedrock"
    if value not in BATCH_BACKENDS:
        raise ManifestError(f"{source}: batch_backend must be one of {list(BATCH_BACKENDS)}, got {value!r}")
    return str(value)


def _output(value: object, response_family: Family | None, has_path: bool, source: str) -> OutputMode:
    if response_family == "titan_embed":
        allowed: tuple[OutputMode, ...] = ("embedding", "raw")
    elif response_family in TEXT_FAMILIES or has_path:
        allowed = ("text", "json", "raw")
    else:  # a user template for a model sinfer cannot read, and no output_path: only raw is known
        allowed = ("raw",)
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise ManifestError(f"{source}: output must be one of {list(allowed)} for this model, got {value!r}")
    return value


MAX_PATH_INDEX: Final = 999
_INDEX: Final = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)  # 0..999
_NUMBER: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _output_path(value: object, response_family: Family | None, source: str) -> tuple[str | int, ...] | None:
    """``"outputs.0.text"`` → ``("outputs", 0, "text")``: keys, and list indexes in digits."""
    if value is None:
        return None
    if response_family is not None:
        raise ManifestError(
            f"{source}: output_path is for a model sinfer cannot read; it reads {response_family}'s "
            "modelOutput itself (choose what a prediction is with output)"
        )
    parts = value.split(".") if isinstance(value, str) else []
    if not parts or not all(parts):
        raise ManifestError(
            f"{source}: output_path must be dotted keys and list indexes naming the text in "
            "modelOutput, such as 'generation' (Llama) or 'outputs.0.text' (Mistral)"
        )
    for part in parts:
        if _NUMBER.fullmatch(part) and not _INDEX.fullmatch(part):
            raise ManifestError(
                f"{source}: output_path {value!r}: a list index is 0 to {MAX_PATH_INDEX} written "
                f"plainly (no sign, no leading zero), got {part!r}"
            )
    # (an index is ASCII digits: "²".isdigit() is true, int("²") is not a number)
    return tuple(int(part) if _INDEX.fullmatch(part) else part for part in parts)


# --- template --------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    """Every string value in a JSON document (objects' values, lists' items), in document order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def placeholders(template: Any) -> Iterator[str]:
    """Every placeholder name in a template's string values, in document order."""
    for text in strings_in(template):
        for match in PLACEHOLDER.finditer(text):
            if match.group(1) is not None:
                yield match.group(1)


def _template(value: object, family: Family, source: str) -> dict[str, Any] | None:
    if family != "user":
        if value is not None:
            raise ManifestError(
                f"{source}: template is for family 'user'; family {family!r} builds its modelInput "
                "itself (set its parameters in request)"
            )
        return None
    if not isinstance(value, dict) or not value:
        raise ManifestError(
            f"{source}: family 'user' needs a template: the modelInput as a JSON object, with "
            "{text} or {field_name} placeholders in its string values"
        )
    if not any(True for _ in placeholders(value)):
        raise ManifestError(
            f"{source}: template has no placeholder, so every record would send the same request; "
            "put {text} (the record's text) or {field_name} where the record goes"
        )
    return value


# --- request parameters, per family ------------------------------------------------------

_Check = Callable[[object, str], None]  # raises ManifestError naming ``where``


def _request(value: object, family: Family, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if family == "user":
        raise ManifestError(f"{source}: family 'user' takes its whole modelInput from template; drop request")
    if not isinstance(value, dict):
        raise ManifestError(f"{source}: request must be an object of {family} parameters")
    where = f"{source}: request"
    if family == "anthropic":
        _check_object(value, _ANTHROPIC, where)
    elif family == "nova":
        _check_object(value, _NOVA, where)
        config = value.get("inferenceConfig")
        if isinstance(config, dict):
            _no_double_spelling(config, f"{where}.inferenceConfig")
    elif family == "titan_text":
        _check_object(value, _TITAN_TEXT, where)
    else:
        _check_object(value, _TITAN_EMBED, where)
    return dict(value)


def _check_object(value: Mapping[str, Any], spec: Mapping[str, _Check], where: str) -> None:
    unknown = sorted(str(k) for k in value if k not in spec)
    if unknown:
        raise ManifestError(f"{where}: unknown parameter(s) {unknown}; expected some of {list(spec)}")
    for key, check in spec.items():
        if key in value:
            check(value[key], f"{where}.{key}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_at_least(low: int) -> _Check:
    def check(value: object, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ManifestError(f"{where}: expected an integer ≥ {low}, got {value!r}")

    return check


def _unit_interval(value: object, where: str) -> None:
    if not _is_number(value) or not 0 <= float(cast(float, value)) <= 1:
        raise ManifestError(f"{where}: expected a number from 0 to 1, got {value!r}")


def _string(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected a string")


def _nonempty_string(value: object, where: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: expected a non-empty string")


def _strings(value: object, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{where}: expected a list of non-empty strings")


def _const(expected: str) -> _Check:
    def check(value: object, where: str) -> None:
        if value != expected:
            raise ManifestError(f"{where}: expected {expected!r}, got {value!r}")

    return check


def _boolean(value: object, where: str) -> None:
    if not isinstance(value, bool):
        raise ManifestError(f"{where}: expected true or false")


def _dimensions(value: object, where: str) -> None:
    if value not in EMBED_DIMENSIONS or isinstance(value, bool):
        raise ManifestError(f"{where}: expected one of {list(EMBED_DIMENSIONS)}, got {value!r}")


def _embedding_types(value: object, where: str) -> None:
    if not isinstance(value, list) or not value or not set(value) <= {"float", "binary"}:
        raise ManifestError(f"{where}: expected a non-empty list of 'float' and/or 'binary'")


def _nested(spec: Mapping[str, _Check]) -> _Check:
    def check(value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object")
        _check_object(value, spec, where)

    return check


# Nova's own pages spell inference parameters both ways (maxTokens/topP/topK in the Nova 2
# guide, max_new_tokens/top_p/top_k in the Nova 1 schema); both reach the model, so both are
# accepted, but not two spellings of one parameter at once.
_NOVA_SPELLINGS: Final = (("maxTokens", "max_new_tokens"), ("topP", "top_p"), ("topK", "top_k"))


def _no_double_spelling(config: Mapping[str, Any], where: str) -> None:
    for one, other in _NOVA_SPELLINGS:
        if one in config and other in config:
            raise ManifestError(f"{where}: give {one} or {other}, not both")


_ANTHROPIC: Final[dict[str, _Check]] = {
    "anthropic_version": _nonempty_string,
    "max_tokens": _int_at_least(1),
    "system": _string,
    "temperature": _unit_interval,
    "top_p": _unit_interval,
    "top_k": _int_at_least(0),
    "stop_sequences": _strings,
}
_NOVA_CONFIG: Final[dict[str, _Check]] = {
    "maxTokens": _int_at_least(1),
    "max_new_tokens": _int_at_least(1),
    "temperature": _unit_interval,
    "topP": _unit_interval,
    "top_p": _unit_interval,
    "topK": _int_at_least(0),
    "top_k": _int_at_least(0),
    "stopSequences": _strings,
}
_NOVA: Final[dict[str, _Check]] = {
    "schemaVersion": _const("messages-v1"),
    "system": _string,
    "inferenceConfig": _nested(_NOVA_CONFIG),
}
_TITAN_TEXT: Final[dict[str, _Check]] = {
    "textGenerationConfig": _nested(
        {
            "maxTokenCount": _int_at_least(0),
            "temperature": _unit_interval,
            "topP": _unit_interval,
            "stopSequences": _strings,
        }
    ),
}
_TITAN_EMBED: Final[dict[str, _Check]] = {
    "dimensions": _dimensions,
    "normalize": _boolean,
    "embeddingTypes": _embedding_types,
}
