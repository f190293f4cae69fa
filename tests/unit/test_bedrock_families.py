"""Bedrock store entries and wire formats: model.json → entry, record → modelInput, modelOutput → prediction.

Response samples follow the shapes on AWS's pages (Claude Messages API, Nova "Response structure
highlights", Titan Text, Titan Text Embeddings V2, "View the results of a batch inference job").
InvokeModel's body is opaque to botocore, so the Stubber checks the call around it and the
tests assert the body's shape themselves.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from sinfer.batch.bedrock.emulator import emulate
from sinfer.batch.bedrock.entry import BedrockEntry, family_of, is_bedrock_manifest
from sinfer.batch.bedrock.families import (
    MAX_RECORD_INDEX,
    ManifestCounts,
    ModelOutputError,
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
from sinfer.errors import InvalidInputError, ManifestError
from sinfer.model.manifest import Manifest

MODELS = Path(__file__).resolve().parents[2] / "models"

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
TITAN_TEXT = "amazon.titan-text-express-v1"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"


def entry(**fields: Any) -> BedrockEntry:
    return BedrockEntry.from_manifest({"kind": "bedrock", "modelId": CLAUDE, **fields})


def user_entry(
    template: dict[str, Any], model_id: str = "meta.llama3-8b-instruct-v1:0", **fields: Any
) -> BedrockEntry:
    return BedrockEntry.from_manifest(
        {"kind": "bedrock", "modelId": model_id, "family": "user", "template": template, **fields}
    )


# --- the store entry -------------------------------------------------------------------------


def test_the_documented_example_parses() -> None:
    parsed = BedrockEntry.from_manifest(
        {
            "kind": "bedrock",
            "modelId": CLAUDE,
            "family": "anthropic",
            "request": {"system": "Summarise in one sentence.", "max_tokens": 256, "temperature": 0},
            "input_field": "text",
            "output": "text",
            "batch_backend": "bedrock",
        }
    )
    assert parsed.family == "anthropic"
    assert parsed.request == {"system": "Summarise in one sentence.", "max_tokens": 256, "temperature": 0}
    assert (parsed.input_field, parsed.output, parsed.batch_backend) == ("text", "text", "bedrock")


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        (CLAUDE, "anthropic"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic"),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        (NOVA, "nova"),
        ("global.amazon.nova-2-lite-v1:0", "nova"),
        (TITAN_TEXT, "titan_text"),
        ("amazon.titan-tg1-large", "titan_text"),
        (TITAN_EMBED, "titan_embed"),
        ("meta.llama3-8b-instruct-v1:0", None),
        ("amazon.titan-image-generator-v2:0", None),
    ],
)
def test_family_comes_from_the_model_id(model_id: str, family: str | None) -> None:
    assert family_of(model_id) == family


def test_committed_demo_entries_load_from_json_and_from_the_stores_manifest() -> None:
    for name, family, output in (
        ("claude_summarize", "anthropic", "text"),
        ("titan_embed", "titan_embed", "embedding"),
    ):
        path = MODELS / name / "1" / "model.json"
        assert not (path.parent / "model.onnx").exists()
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert is_bedrock_manifest(raw)
        from_json = BedrockEntry.from_manifest(raw, source=str(path))
        assert (from_json.family, from_json.output, from_json.name) == (family, output, name)
        manifest = Manifest.load(path)  # what the model store builds: our keys land in extra
        assert is_bedrock_manifest(manifest)
        assert BedrockEntry.from_manifest(manifest) == from_json


def test_defaults_follow_the_family() -> None:
    embed = BedrockEntry.from_manifest({"kind": "bedrock", "modelId": TITAN_EMBED})
    assert (embed.family, embed.output, embed.input_field, embed.batch_backend) == (
        "titan_embed",
        "embedding",
        "text",
        "bedrock",
    )
    assert entry().output == "text"
    assert user_entry({"prompt": "{text}"}).output == "raw"
    # a user template for a model sinfer can read: responses are read as that family
    claude_template = user_entry({"messages": "{messages}"}, model_id=CLAUDE, output="json")
    assert claude_template.response_family == "anthropic"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"modelid": CLAUDE}, "modelid"),
        ({"kind": "onnx"}, "kind"),
        ({"modelId": ""}, "modelId"),
        ({"modelId": "anthropic claude"}, "modelId"),
        ({"modelId": "meta.llama3-8b-instruct-v1:0"}, "family"),
        ({"family": "nova"}, "does not match"),
        ({"family": "gpt"}, "family"),
        ({"request": {"max_token": 10}}, "max_token"),
        ({"request": {"max_tokens": 0}}, "request.max_tokens"),
        ({"request": {"max_tokens": True}}, "request.max_tokens"),
        ({"request": {"temperature": 1.5}}, "request.temperature"),
        ({"request": {"system": ["not", "a", "string"]}}, "request.system"),
        ({"request": {"stop_sequences": "END"}}, "request.stop_sequences"),
        ({"request": "max_tokens=10"}, "request"),
        ({"input_field": ""}, "input_field"),
        ({"output": "embedding"}, "output"),
        ({"output": "xml"}, "output"),
        ({"batch_backend": "sagemaker"}, "batch_backend"),
        ({"template": {"prompt": "{text}"}}, "template"),
        ({"name": 3}, "name"),
    ],
)
def test_invalid_entries_name_the_field(fields: dict[str, Any], named: str) -> None:
    raw = {"kind": "bedrock", "modelId": CLAUDE, **fields}
    if "modelid" in fields:
        del raw["modelId"]
    with pytest.raises(ManifestError) as caught:
        BedrockEntry.from_manifest(raw, source="models/x/1/model.json")
    assert named in caught.value.message
    assert caught.value.message.startswith("models/x/1/model.json")
    assert caught.value.status == 503  # a model that cannot load is not ready, as for ONNX


@pytest.mark.parametrize(
    ("model_id", "request_", "named"),
    [
        (NOVA, {"inferenceConfig": {"maxTokens": 10, "max_new_tokens": 10}}, "not both"),
        (NOVA, {"inferenceConfig": {"max_tokens": 10}}, "max_tokens"),
        (NOVA, {"schemaVersion": "messages-v2"}, "schemaVersion"),
        (TITAN_TEXT, {"textGenerationConfig": {"maxTokens": 10}}, "maxTokens"),
        (TITAN_TEXT, {"textGenerationConfig": []}, "textGenerationConfig"),
        (TITAN_EMBED, {"dimensions": 300}, "dimensions"),
        (TITAN_EMBED, {"normalize": "yes"}, "normalize"),
        (TITAN_EMBED, {"embeddingTypes": ["int8"]}, "embeddingTypes"),
    ],
)
def test_request_parameters_are_checked_per_family(
    model_id: str, request_: dict[str, Any], named: str
) -> None:
    with pytest.raises(ManifestError, match=named):
        BedrockEntry.from_manifest({"kind": "bedrock", "modelId": model_id, "request": request_})


def test_nova_accepts_either_documented_spelling() -> None:
    for config in ({"maxTokens": 64, "topP": 0.9}, {"max_new_tokens": 64, "top_p": 0.9}):
        nova = BedrockEntry.from_manifest(
            {"kind": "bedrock", "modelId": NOVA, "request": {"inferenceConfig": config}}
        )
        assert build_model_input(nova, "hi")["inferenceConfig"] == config


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({}, "needs a template"),
        ({"template": {"prompt": "no placeholder here"}}, "no placeholder"),
        ({"template": {"prompt": "{{text}} is escaped, so not a placeholder"}}, "no placeholder"),
        ({"template": "{text}"}, "needs a template"),
        ({"template": {"prompt": "{text}"}, "request": {"max_tokens": 5}}, "drop request"),
        ({"template": {"prompt": "{text}"}, "output": "text"}, "output"),
    ],
)
def test_user_family_needs_a_usable_template(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=named):
        BedrockEntry.from_manifest(
            {"kind": "bedrock", "modelId": "cohere.command-r-v1:0", "family": "user", **fields}
        )


def test_onnx_only_manifest_fields_are_rejected_for_a_bedrock_entry() -> None:
    manifest = Manifest.from_dict({"kind": "bedrock", "modelId": CLAUDE, "labels": ["a", "b"]})
    with pytest.raises(ManifestError, match="labels"):
        BedrockEntry.from_manifest(manifest)


# --- records → modelInput --------------------------------------------------------------------


def test_claude_model_input_is_the_messages_api_body() -> None:
    claude = entry(
        request={"system": "Be brief.", "max_tokens": 256, "temperature": 0, "stop_sequences": ["END"]}
    )
    assert build_model_input(claude, {"text": "Summarise me", "id": 7}) == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise me"}]}],
        "system": "Be brief.",
        "temperature": 0,
        "stop_sequences": ["END"],
    }
    # max_tokens is required by Claude: a default fills it when the entry leaves it out
    assert build_model_input(entry(), "plain string record")["max_tokens"] == 1024
    assert "system" not in build_model_input(entry(), "x")


def test_nova_model_input_is_the_messages_v1_body() -> None:
    nova = BedrockEntry.from_manifest(
        {
            "kind": "bedrock",
            "modelId": NOVA,
            "request": {"system": "Be brief.", "inferenceConfig": {"maxTokens": 300, "temperature": 0.2}},
        }
    )
    assert build_model_input(nova, "Hello") == {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2},
        "system": [{"text": "Be brief."}],
    }
    bare = BedrockEntry.from_manifest({"kind": "bedrock", "modelId": NOVA})
    assert build_model_input(bare, "Hello")["inferenceConfig"] == {"maxTokens": 1024}


def test_titan_model_inputs() -> None:
    text = BedrockEntry.from_manifest(
        {
            "kind": "bedrock",
            "modelId": TITAN_TEXT,
            "request": {"textGenerationConfig": {"maxTokenCount": 100}},
        }
    )
    assert build_model_input(text, "Roses are red, violets are") == {
        "inputText": "Roses are red, violets are",
        "textGenerationConfig": {"maxTokenCount": 100},
    }
    embed = BedrockEntry.from_manifest(
        {
            "kind": "bedrock",
            "modelId": TITAN_EMBED,
            "request": {"dimensions": 512, "normalize": True},
            "input_field": "body",
        }
    )
    assert build_model_input(embed, {"body": "embed me"}) == {
        "inputText": "embed me",
        "dimensions": 512,
        "normalize": True,
    }


def _invoke_stubbed(model_id: str, model_input: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """InvokeModel through a Stubber, which checks the call against bedrock-runtime's API model."""
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
    body = json.dumps(model_input)
    payload = json.dumps(response).encode()
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(payload), len(payload)), "contentType": "application/json"},
            expected_params={
                "modelId": model_id,
                "body": body,
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        answer = runtime.invoke_model(
            modelId=model_id, body=body, contentType="application/json", accept="application/json"
        )
        stub.assert_no_pending_responses()
    decoded: dict[str, Any] = json.loads(answer["body"].read())
    return decoded


CLAUDE_RESPONSE: dict[str, Any] = {
    "id": "msg_bdrk_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-haiku-20240307",
    "content": [{"type": "text", "text": "Bedrock hosts"}, {"type": "text", "text": " foundation models."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 9},
}
NOVA_RESPONSE: dict[str, Any] = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [{"text": "Machine learning is"}, {"text": " pattern finding."}],
        }
    },
    "stopReason": "end_turn",
    "usage": {"inputTokens": 6, "outputTokens": 7, "totalTokens": 13, "cacheReadInputTokenCount": 0},
}
TITAN_TEXT_RESPONSE: dict[str, Any] = {
    "inputTextTokenCount": 8,
    "results": [{"tokenCount": 3, "outputText": "blue\n", "completionReason": "FINISH"}],
}
TITAN_EMBED_RESPONSE: dict[str, Any] = {
    "embedding": [0.6, -0.8, 0.0, 0.0],
    "inputTextTokenCount": 4,
    "embeddingsByType": {"float": [0.6, -0.8, 0.0, 0.0]},
}


@pytest.mark.parametrize(
    ("model_id", "response", "prediction", "tokens", "stop"),
    [
        (CLAUDE, CLAUDE_RESPONSE, "Bedrock hosts foundation models.", (25, 9), "end_turn"),
        (NOVA, NOVA_RESPONSE, "Machine learning is pattern finding.", (6, 7), "end_turn"),
        (TITAN_TEXT, TITAN_TEXT_RESPONSE, "blue\n", (8, 3), "FINISH"),
        (TITAN_EMBED, TITAN_EMBED_RESPONSE, [0.6, -0.8, 0.0, 0.0], (4, 0), None),
    ],
)
def test_invoke_model_round_trip_per_family(
    model_id: str, response: dict[str, Any], prediction: Any, tokens: tuple[int, int], stop: str | None
) -> None:
    # GIVEN an entry for the model, WHEN a record becomes a request body and the response
    # comes back through the (stubbed) real client, THEN it parses into the prediction.
    model = BedrockEntry.from_manifest({"kind": "bedrock", "modelId": model_id})
    model_input = build_model_input(model, {"text": "What is Bedrock?"})
    parsed = parse_model_output(model, _invoke_stubbed(model_id, model_input, response))
    assert parsed.prediction == prediction
    assert (parsed.input_tokens, parsed.output_tokens) == tokens
    assert parsed.stop_reason == stop


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"body": "text elsewhere"}, "no field 'text'"),
        ({"text": 42}, "must be text, got a number"),
        ({"text": None}, "must be text, got null"),
        ({"text": "   \n"}, "empty"),
        ("", "empty"),
        (3.5, "got a number"),
        (["a", "list"], "got a list"),
        (None, "got null"),
    ],
)
def test_records_the_model_cannot_read_are_invalid_input(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        build_model_input(entry(), value)
    assert caught.value.status == 422


# --- user templates ----------------------------------------------------------------------------

NASTY = "He said \"stop\"\nthen {left}: {{ok}} \\ \u2028 and 'quotes' {text}"


def test_template_values_are_escaped_by_json_not_pasted_into_it() -> None:
    llama = user_entry({"prompt": "Q: {text}\nA:", "max_gen_len": 128, "temperature": 0.1})
    model_input = build_model_input(llama, {"text": NASTY})
    # what goes on the wire is valid JSON that decodes to exactly the record's text
    line = batch_input_line("00000000000", model_input)
    assert json.loads(line)["modelInput"] == {
        "prompt": f"Q: {NASTY}\nA:",
        "max_gen_len": 128,
        "temperature": 0.1,
    }


def test_template_placeholders_braces_and_types() -> None:
    template = {
        "prompt": "{{literal}} {title}: {text} ({n} pages, tags {tags})",
        "max_gen_len": "{n}",
        "nested": [{"{text}": "{flag}"}],
        "json_in_prompt": '{"a": 1} stays as written',
    }
    record = {"text": "Body", "title": "T", "n": 12, "tags": ["x", "y"], "flag": False}
    assert build_model_input(user_entry(template), record) == {
        "prompt": '{literal} T: Body (12 pages, tags ["x","y"])',
        "max_gen_len": 12,  # a whole-string placeholder keeps the field's JSON type
        "nested": [{"{text}": False}],  # keys are never templated
        "json_in_prompt": '{"a": 1} stays as written',
    }


def test_text_placeholder_follows_input_field_and_values_are_not_rescanned() -> None:
    model = user_entry({"prompt": "{text}|{other}"}, input_field="body")
    assert build_model_input(model, {"body": "{other}", "other": "{text}"}) == {"prompt": "{other}|{text}"}
    assert build_model_input(user_entry({"prompt": "<{text}>"}), "a plain string") == {
        "prompt": "<a plain string>"
    }


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "x"}, "no value for 'title'"),
        ({"text": "x", "title": None}, "no value for 'title'"),
        ("just a string", "must be an object"),
    ],
)
def test_template_fields_must_be_present(record: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_model_input(user_entry({"prompt": "{title}: {text}"}), record)


@given(st.text(min_size=1).filter(str.strip))
def test_any_text_survives_a_template_round_trip(text: str) -> None:
    model_input = build_model_input(user_entry({"prompt": "<<{text}>>"}), {"text": text})
    assert json.loads(batch_input_line(record_id(0), model_input))["modelInput"]["prompt"] == f"<<{text}>>"


# --- modelOutput → prediction ------------------------------------------------------------------


def test_json_output_unwraps_one_code_fence() -> None:
    model = entry(output="json")
    fenced = {
        **CLAUDE_RESPONSE,
        "content": [{"type": "text", "text": '```json\n{"sentiment": "positive"}\n```'}],
    }
    assert parse_model_output(model, fenced).prediction == {"sentiment": "positive"}
    plain = {**CLAUDE_RESPONSE, "content": [{"type": "text", "text": " [1, 2] "}]}
    assert parse_model_output(model, plain).prediction == [1, 2]


def test_json_output_that_is_not_json_is_a_model_output_error() -> None:
    with pytest.raises(ModelOutputError, match="not valid JSON") as caught:
        parse_model_output(entry(output="json"), CLAUDE_RESPONSE)
    assert caught.value.code == "invalid_model_output"


@pytest.mark.parametrize("depth", [201, 1_000, 100_000])
def test_json_output_nested_past_the_limit_is_a_model_output_error(depth: int) -> None:
    # A model asked for JSON may print brackets without end: past 200 levels the batch results
    # could not be written (100,000 levels do not even parse), so the record is an error line.
    text = "[" * depth + "]" * depth
    deep = {**CLAUDE_RESPONSE, "content": [{"type": "text", "text": text}]}
    with pytest.raises(ModelOutputError, match="nested") as caught:
        parse_model_output(entry(output="json"), deep)
    assert caught.value.code == "invalid_model_output"
    at_the_limit = {**CLAUDE_RESPONSE, "content": [{"type": "text", "text": "[" * 200 + "]" * 200}]}
    assert parse_model_output(entry(output="json"), at_the_limit).prediction is not None


def test_raw_output_nested_past_the_limit_is_a_model_output_error() -> None:
    value: Any = 1
    for _ in range(200):  # with the modelOutput object itself, 201 levels
        value = [value]
    with pytest.raises(ModelOutputError, match="nested more than 200 levels"):
        parse_model_output(entry(output="raw"), {**CLAUDE_RESPONSE, "x": value})


def test_raw_output_is_the_whole_model_output() -> None:
    parsed = parse_model_output(entry(output="raw"), CLAUDE_RESPONSE)
    assert parsed.prediction == CLAUDE_RESPONSE
    assert (parsed.input_tokens, parsed.output_tokens, parsed.stop_reason) == (25, 9, "end_turn")


def test_user_entries_read_known_models_and_pass_unknown_ones_through() -> None:
    claude_template = user_entry({"messages": "{messages}"}, model_id=CLAUDE, output="text")
    assert (
        parse_model_output(claude_template, CLAUDE_RESPONSE).prediction == "Bedrock hosts foundation models."
    )
    llama = user_entry({"prompt": "{text}"})
    llama_output = {
        "generation": "Hi",
        "prompt_token_count": 3,
        "generation_token_count": 1,
        "stop_reason": "stop",
    }
    parsed = parse_model_output(llama, llama_output)
    assert parsed.prediction == llama_output
    assert (parsed.input_tokens, parsed.output_tokens, parsed.stop_reason) == (0, 0, None)


MISTRAL = "mistral.mistral-large-2402-v1:0"


def test_output_path_reads_the_text_of_a_model_sinfer_does_not_know() -> None:
    # Llama answers {"generation": ...}, Mistral {"outputs": [{"text": ...}]}: output_path says
    # where, and output what a prediction is (text by default)
    llama = user_entry({"prompt": "{text}"}, output_path="generation")
    assert llama.output == "text"
    assert parse_model_output(llama, {"generation": "Hi", "stop_reason": "stop"}).prediction == "Hi"
    mistral = user_entry({"prompt": "{text}"}, model_id=MISTRAL, output_path="outputs.0.text", output="json")
    answer = {"outputs": [{"text": '```json\n{"sentiment": "positive"}\n```', "stop_reason": "stop"}]}
    assert parse_model_output(mistral, answer).prediction == {"sentiment": "positive"}
    raw = user_entry({"prompt": "{text}"}, model_id=MISTRAL, output_path="outputs.0", output="raw")
    assert parse_model_output(raw, answer).prediction == answer["outputs"][0]


@pytest.mark.parametrize(
    ("model_output", "message"),
    [
        ({"outputs": []}, "modelOutput has no outputs.0 (output_path)"),
        ({"outputs": [{"txt": "x"}]}, "modelOutput has no outputs.0.text (output_path)"),
        ({"outputs": {"0": {"text": 5}}}, "modelOutput.outputs.0.text is a number, not text"),
    ],
)
def test_output_path_that_finds_no_text_is_a_model_output_error(model_output: Any, message: str) -> None:
    mistral = user_entry({"prompt": "{text}"}, model_id=MISTRAL, output_path="outputs.0.text")
    with pytest.raises(ModelOutputError) as caught:
        parse_model_output(mistral, model_output)
    assert (caught.value.code, caught.value.message) == ("invalid_model_output", message)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"output_path": ""}, "output_path must be dotted keys"),
        ({"output_path": "outputs..text"}, "output_path must be dotted keys"),
        ({"output_path": ["outputs", 0]}, "output_path must be dotted keys"),
        # an index is 0 to 999 written plainly: "-1" never matches a list (Bedrock's answers are
        # not Python's), "01" nothing, and a huge one made the emulator build a list that long
        (
            {"output_path": "outputs.-1.text"},
            "a list index is 0 to 999 written plainly (no sign, no leading zero), got '-1'",
        ),
        ({"output_path": "outputs.01.text"}, "got '01'"),
        ({"output_path": "outputs.1000000.text"}, "got '1000000'"),
        ({"output": "text"}, "output must be one of ['raw']"),  # without a path, only raw is known
    ],
)
def test_output_path_is_checked_on_load(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(named)):
        user_entry({"prompt": "{text}"}, **fields)
    with pytest.raises(ManifestError, match="output_path is for a model sinfer cannot read"):
        user_entry({"messages": "{messages}"}, model_id=CLAUDE, output_path="content.0.text")


def test_a_path_segment_of_other_digits_is_a_key() -> None:
    # "²".isdigit() is true, and int("²") raised a ValueError past the manifest's checks
    entry = user_entry({"prompt": "{text}"}, output_path="scores.²")
    assert entry.output_path == ("scores", "²")
    assert parse_model_output(entry, {"scores": {"²": "squared"}}).prediction == "squared"


def test_the_emulator_answers_where_output_path_says() -> None:
    for path, output in (("generation", "text"), ("outputs.0.text", "json"), ("generations.2.text", "text")):
        llama = user_entry({"prompt": "Summarise: {text}"}, output_path=path, output=output)
        model_input = build_model_input(llama, {"text": "great product"})
        prediction = parse_model_output(llama, emulate(llama, model_input)).prediction
        if output == "json":
            assert prediction == {"emulated": "user", "summary": "Summarise: great product"}
        else:
            assert prediction == "[emulated user] Summarise: great product"


@pytest.mark.parametrize(
    ("model_id", "model_output"),
    [
        (CLAUDE, {"content": "not a list"}),
        (CLAUDE, {"type": "message"}),
        (NOVA, {"output": {"message": {}}}),
        (NOVA, {"output": "text"}),
        (TITAN_TEXT, {"results": []}),
        (TITAN_TEXT, {"results": [{"outputText": 5}]}),
        (TITAN_EMBED, {"embedding": ["a"]}),
        (TITAN_EMBED, {"inputTextTokenCount": 3}),
    ],
)
def test_unexpected_shapes_are_model_output_errors(model_id: str, model_output: dict[str, Any]) -> None:
    with pytest.raises(ModelOutputError):
        parse_model_output(BedrockEntry.from_manifest({"kind": "bedrock", "modelId": model_id}), model_output)


def test_token_usage_is_lenient() -> None:
    assert token_usage("anthropic", {"content": []}) == (0, 0)
    assert token_usage("anthropic", {"usage": {"input_tokens": "5", "output_tokens": -1}}) == (0, 0)
    assert token_usage(None, NOVA_RESPONSE) == (6, 7)
    assert token_usage(None, TITAN_TEXT_RESPONSE) == (8, 3)


# --- recordIds, batch lines, manifest, locations ------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_RECORD_INDEX))
def test_record_ids_are_11_alphanumerics_and_reversible(index: int) -> None:
    rid = record_id(index)
    assert len(rid) == 11
    assert rid.isascii()
    assert rid.isalnum()
    assert record_index(rid) == index


def test_record_ids_sort_like_their_indexes() -> None:
    assert record_id(42) == "00000000042"
    assert sorted(record_id(i) for i in (10, 9, 100)) == [record_id(9), record_id(10), record_id(100)]


@pytest.mark.parametrize("bad", [-1, MAX_RECORD_INDEX + 1, True, 1.0])
def test_record_id_rejects_what_it_cannot_encode(bad: Any) -> None:
    with pytest.raises(ValueError, match="record index"):
        record_id(bad)


@pytest.mark.parametrize("bad", ["CALL0000001", "0000000042", "000000000042", "٠٠٠٠٠٠٠٠٠٤٢", ""])
def test_record_index_rejects_foreign_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="not a sinfer recordId"):
        record_index(bad)


def test_batch_input_line_is_one_json_object_per_line() -> None:
    line = batch_input_line("00000000003", {"inputText": "a\nb"})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"recordId": "00000000003", "modelInput": {"inputText": "a\nb"}}


def test_output_lines_parse_as_in_the_batch_results_page() -> None:
    ok = parse_batch_output_line(
        '{ "recordId" : "3223593EFGH", "modelInput" : {"inputText": "Roses are red, violets are"}, '
        '"modelOutput" : {"inputTextTokenCount": 8, "results": [{"tokenCount": 3, "outputText": "blue\\n", '
        '"completionReason": "FINISH"}]}}'
    )
    assert ok.ok
    assert ok.record_id == "3223593EFGH"
    assert ok.model_output == TITAN_TEXT_RESPONSE
    failed = parse_batch_output_line(
        b'{ "recordId" : "1223213ABCD", "modelInput" : {"inputText": "Hello world"}, '
        b'"error" : {"errorCode" : 400, "errorMessage" : "bad request" }}'
    )
    assert not failed.ok
    assert (failed.record_id, failed.error_code, failed.error_message) == ("1223213ABCD", 400, "bad request")
    assert failed.model_input == {"inputText": "Hello world"}


def test_our_output_lines_parse_back() -> None:
    written = batch_output_line("00000000001", {"inputText": "x"}, error=(400, "bad"))
    assert json.loads(written) == {
        "recordId": "00000000001",
        "modelInput": {"inputText": "x"},
        "error": {"errorCode": 400, "errorMessage": "bad"},
    }
    assert parse_batch_output_line(
        batch_output_line("00000000002", {}, TITAN_TEXT_RESPONSE)
    ).model_output == (TITAN_TEXT_RESPONSE)


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"modelOutput": {}}', '{"recordId": 5, "modelOutput": {}}', '{"recordId": "a"}'],
)
def test_malformed_output_lines_are_model_output_errors(line: str) -> None:
    with pytest.raises(ModelOutputError):
        parse_batch_output_line(line)


def test_an_output_line_nested_too_deeply_to_parse_is_a_model_output_error() -> None:
    deep = '{"recordId": "00000000001", "modelOutput": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    with pytest.raises(ModelOutputError, match="nested too deeply"):
        parse_batch_output_line(deep)


def test_manifest_counts_use_bedrocks_names() -> None:
    counts = ManifestCounts(10, 10, 8, 2, 1200, 300)
    wire = counts.to_json()
    assert wire == {
        "totalRecordCount": 10,
        "processedRecordCount": 10,
        "successRecordCount": 8,
        "errorRecordCount": 2,
        "inputTokenCount": 1200,
        "outputTokenCount": 300,
    }


def test_output_locations() -> None:
    assert (
        output_uri_for("s3://b/outputs/claude/", "abc123def456", "s3://b/batch/in/part-00000.jsonl")
        == "s3://b/outputs/claude/abc123def456/part-00000.jsonl.out"
    )
    assert manifest_uri("s3://b/out", "j1") == "s3://b/out/j1/manifest.json.out"


# --- cost ------------------------------------------------------------------------------------


def test_estimate_cost_uses_the_price_table_and_the_batch_discount() -> None:
    # Claude 3 Haiku: $0.00025 / 1k input, $0.00125 / 1k output on demand
    assert estimate_cost(CLAUDE, 10_000, 2_000, batch=False) == pytest.approx(0.0025 + 0.0025)
    assert estimate_cost(CLAUDE, 10_000, 2_000) == pytest.approx(0.0025)
    assert estimate_cost("us." + CLAUDE, 1000, 0, batch=False) == pytest.approx(0.00025)
    assert estimate_cost(
        "arn:aws:bedrock:us-east-1::foundation-model/" + TITAN_EMBED, 1_000_000, 0, batch=False
    ) == (pytest.approx(0.02))
    assert estimate_cost("anthropic.claude-3-haiku-20240307-v1:0:200k", 1000, 0) is not None
    assert estimate_cost("meta.llama3-8b-instruct-v1:0", 1000, 1000) is None
    assert estimate_cost("anthropic.claude-3-haiku-20240307-v1-extra", 1000, 1000) is None
