"""The local Bedrock batch emulator: per-request behaviour, and whole jobs against moto S3."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from sinfer.aws.clients import client, reset_clients
from sinfer.batch.bedrock.emulator import EmulatedJobError, EmulatedModelError, emulate, run_local_job
from sinfer.batch.bedrock.entry import BedrockEntry
from sinfer.batch.bedrock.families import (
    ManifestCounts,
    batch_input_line,
    build_model_input,
    parse_batch_output_line,
    parse_model_output,
    record_id,
    record_index,
    token_usage,
)

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
MODEL_IDS = {
    "anthropic": CLAUDE,
    "nova": "amazon.nova-micro-v1:0",
    "titan_text": "amazon.titan-text-express-v1",
    "titan_embed": "amazon.titan-embed-text-v2:0",
}
BUCKET = "sinfer-batch"


def model(family: str, **fields: Any) -> BedrockEntry:
    return BedrockEntry.from_manifest({"kind": "bedrock", "modelId": MODEL_IDS[family], **fields})


# --- one request ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(MODEL_IDS))
def test_emulated_outputs_have_the_real_shape_and_are_deterministic(family: str) -> None:
    entry = model(family)
    model_input = build_model_input(entry, "The quick brown fox jumps over the lazy dog")
    first = emulate(entry, model_input)
    assert emulate(entry, json.loads(json.dumps(model_input))) == first
    by_family = emulate(family, model_input)  # without an entry: same answer, bar Claude's model name
    assert {k: v for k, v in by_family.items() if k != "model"} == {
        k: v for k, v in first.items() if k != "model"
    }
    parsed = parse_model_output(entry, first)  # the real parser reads it
    assert parsed.input_tokens == 9
    other = emulate(entry, build_model_input(entry, "Something else entirely"))
    assert other != first


@pytest.mark.parametrize("family", ["anthropic", "nova", "titan_text"])
def test_emulated_text_names_the_emulator_and_counts_words(family: str) -> None:
    entry = model(family)
    parsed = parse_model_output(entry, emulate(entry, build_model_input(entry, "  Many   words\nhere  ")))
    assert parsed.prediction == f"[emulated {family}] Many words here"
    assert (parsed.input_tokens, parsed.output_tokens) == (3, 5)


def test_claude_counts_the_system_prompt_and_stops_at_max_tokens() -> None:
    entry = model("anthropic", request={"system": "Two words", "max_tokens": 3})
    output = emulate(entry, build_model_input(entry, "one two three four"))
    assert output["usage"] == {"input_tokens": 6, "output_tokens": 3}
    assert output["stop_reason"] == "max_tokens"
    assert output["content"] == [{"type": "text", "text": "[emulated anthropic] one"}]
    assert output["type"] == "message"
    assert output["role"] == "assistant"
    assert output["id"].startswith("msg_")


def test_titan_text_reports_length_when_cut() -> None:
    entry = model("titan_text", request={"textGenerationConfig": {"maxTokenCount": 2}})
    result = emulate(entry, build_model_input(entry, "a b c d"))["results"][0]
    assert (result["completionReason"], result["tokenCount"]) == ("LENGTH", 2)


def test_json_entries_get_json_text() -> None:
    entry = model("nova", output="json")
    parsed = parse_model_output(entry, emulate(entry, build_model_input(entry, "Rate this")))
    assert parsed.prediction == {"emulated": "nova", "summary": "Rate this"}


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_embeddings_are_deterministic_unit_vectors(dimensions: int) -> None:
    entry = model("titan_embed", request={"dimensions": dimensions})
    output = emulate(entry, build_model_input(entry, "hello world"))
    vector = output["embedding"]
    assert len(vector) == dimensions
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-4)
    assert output["embeddingsByType"] == {"float": vector}
    assert output["inputTextTokenCount"] == 2
    assert emulate(entry, build_model_input(entry, "hello world"))["embedding"] == vector
    assert emulate(entry, build_model_input(entry, "hello there"))["embedding"] != vector


def test_embedding_options() -> None:
    default = emulate("titan_embed", {"inputText": "x"})["embedding"]
    assert len(default) == 1024
    raw = emulate("titan_embed", {"inputText": "x", "normalize": False})["embedding"]
    assert abs(math.sqrt(sum(v * v for v in raw)) - 1.0) > 0.1
    both = emulate(
        "titan_embed", {"inputText": "x", "dimensions": 256, "embeddingTypes": ["float", "binary"]}
    )
    assert set(both["embeddingsByType"]) == {"float", "binary"}
    assert both["embeddingsByType"]["binary"] == [1 if v >= 0 else 0 for v in both["embedding"]]


def test_unknown_models_get_an_echo() -> None:
    llama = BedrockEntry.from_manifest(
        {
            "kind": "bedrock",
            "modelId": "meta.llama3-8b-instruct-v1:0",
            "family": "user",
            "template": {"prompt": "{text}"},
        }
    )
    output = emulate(llama, {"prompt": "hi"})
    assert output["modelInput"] == {"prompt": "hi"}
    assert parse_model_output(llama, output).prediction == output


VALID: dict[str, dict[str, Any]] = {
    "anthropic": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "nova": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    "titan_text": {"inputText": "hi"},
    "titan_embed": {"inputText": "hi"},
}


@pytest.mark.parametrize(
    ("family", "change", "message"),
    [
        ("anthropic", {"max_tokens": None}, "required key [max_tokens]"),
        ("anthropic", {"max_tokens": 0}, "max_tokens"),
        ("anthropic", {"anthropic_version": "2023-06-01"}, "anthropic_version"),
        ("anthropic", {"messages": []}, "non-empty array"),
        ("anthropic", {"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        ("anthropic", {"messages": [{"role": "bot", "content": "hi"}]}, "role"),
        (
            "anthropic",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "non-empty",
        ),
        ("anthropic", {"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "'type'"),
        ("anthropic", {"temperature": 3}, "temperature"),
        ("anthropic", {"prompt": "old completions API"}, "extraneous key [prompt]"),
        ("nova", {"messages": None}, "required key [messages]"),
        ("nova", {"messages": [{"role": "user", "content": "not blocks"}]}, "content blocks"),
        ("nova", {"schemaVersion": "messages-v2"}, "schemaVersion"),
        ("nova", {"system": "not a list"}, "system"),
        ("nova", {"inferenceConfig": {"maxTokens": -1}}, "maxTokens"),
        ("titan_text", {"inputText": None}, "required key [inputText]"),
        ("titan_text", {"inputText": " "}, "inputText"),
        ("titan_text", {"textGenerationConfig": {"maxTokens": 5}}, "extraneous key [maxTokens]"),
        ("titan_embed", {"dimensions": 300}, "dimensions"),
        ("titan_embed", {"normalize": "true"}, "normalize"),
        ("titan_embed", {"inputText": "x" * 50_001}, "maxLength"),
    ],
)
def test_invalid_model_inputs_fail_with_400(family: str, change: dict[str, Any], message: str) -> None:
    body = {**VALID[family], **change}
    body = {k: v for k, v in body.items() if v is not None}
    emulate(family, VALID[family])  # the unchanged body is accepted
    with pytest.raises(EmulatedModelError) as caught:
        emulate(family, body)
    assert caught.value.code == 400
    assert message in caught.value.message
    assert caught.value.message.startswith("Malformed input request")


# --- whole jobs ------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        reset_clients()
        s3_client = client("s3")
        s3_client.create_bucket(Bucket=BUCKET)
        yield s3_client
        reset_clients()


def _input_file(entry: BedrockEntry, texts: list[str], start: int, broken: Collection[int] = ()) -> bytes:
    """Bedrock input JSONL; records whose index is in ``broken`` get a modelInput the model rejects."""
    lines = []
    for offset, text in enumerate(texts):
        index = start + offset
        model_input = build_model_input(entry, text)
        if index in broken:
            model_input = {**model_input, "max_tokens": 0}
        lines.append(batch_input_line(record_id(index), model_input))
    return b"".join(lines)


def _keys(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _get(s3: Any, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def test_local_job_writes_bedrocks_layout_to_s3(s3: Any) -> None:
    # GIVEN two input files of 30 and 20 records, three of which Claude would reject
    entry = model("anthropic", request={"max_tokens": 50})
    broken = {3, 17, 41}
    s3.put_object(
        Bucket=BUCKET,
        Key="batch/in/part-00000.jsonl",
        Body=_input_file(entry, [f"text {i}" for i in range(30)], 0, broken),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key="batch/in/part-00001.jsonl",
        Body=_input_file(entry, [f"more {i}" for i in range(20)], 30, broken),
    )
    inputs = [f"s3://{BUCKET}/batch/in/part-00000.jsonl", f"s3://{BUCKET}/batch/in/part-00001.jsonl"]

    # WHEN the emulated job runs
    counts = run_local_job(inputs, f"s3://{BUCKET}/batch/out/", "abc123def456", entry)

    # THEN the outputs sit where Bedrock puts them, one .out per input plus the manifest
    assert _keys(s3, "batch/out/") == [
        "batch/out/abc123def456/manifest.json.out",
        "batch/out/abc123def456/part-00000.jsonl.out",
        "batch/out/abc123def456/part-00001.jsonl.out",
    ]
    seen: list[str] = []
    tokens = [0, 0]
    for name, expected in (("part-00000", range(0, 30)), ("part-00001", range(30, 50))):
        records = [
            parse_batch_output_line(line)
            for line in _get(s3, f"batch/out/abc123def456/{name}.jsonl.out").splitlines()
        ]
        ids = [r.record_id for r in records]
        assert sorted(record_index(rid) for rid in ids) == list(expected)  # each record exactly once
        assert ids != sorted(ids)  # not in input order, as Bedrock does not promise it
        for record in records:
            assert record.model_input is not None
            if record_index(record.record_id) in broken:
                assert not record.ok
                assert record.error_code == 400
                assert "max_tokens" in (record.error_message or "")
            else:
                assert record.model_output is not None
                assert parse_model_output(entry, record.model_output).prediction.startswith(
                    "[emulated anthropic]"
                )
                used = token_usage("anthropic", record.model_output)
                tokens[0] += used[0]
                tokens[1] += used[1]
        seen += ids
    assert len(seen) == len(set(seen)) == 50

    manifest = json.loads(_get(s3, "batch/out/abc123def456/manifest.json.out"))
    assert manifest == counts.to_json()
    assert manifest == {
        "totalRecordCount": 50,
        "processedRecordCount": 50,
        "successRecordCount": 47,
        "errorRecordCount": 3,
        "inputTokenCount": tokens[0],
        "outputTokenCount": tokens[1],
    }
    assert counts.total_record_count == counts.success_record_count + counts.error_record_count


def test_the_shuffle_is_reproducible_and_seeded_by_the_job_id(s3: Any) -> None:
    entry = model("titan_embed", request={"dimensions": 256})
    s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=_input_file(entry, [f"t{i}" for i in range(40)], 0))
    source = [f"s3://{BUCKET}/in/a.jsonl"]
    run_local_job(source, f"s3://{BUCKET}/one", "job1", entry)
    run_local_job(source, f"s3://{BUCKET}/two", "job1", entry)
    run_local_job(source, f"s3://{BUCKET}/three", "job2", entry)
    one = _get(s3, "one/job1/a.jsonl.out")
    assert _get(s3, "two/job1/a.jsonl.out") == one  # same job id: byte-identical output
    other = _get(s3, "three/job2/a.jsonl.out")
    assert sorted(other.splitlines()) == sorted(one.splitlines())  # same lines...
    assert other != one  # ...in another order


def test_local_paths_work_too(tmp_path: Path) -> None:
    entry = model("titan_text")
    source = tmp_path / "in" / "records.jsonl"
    source.parent.mkdir()
    body = _input_file(entry, ["a", "b", "c"], 0) + b"\n"  # a blank line is not a record
    source.write_bytes(body.replace(b"\n", b"\r\n", 1))  # nor does a CRLF upset it
    counts = run_local_job([str(source)], str(tmp_path / "out"), "j", entry)
    assert counts == ManifestCounts(3, 3, 3, 0, 3, counts.output_token_count)
    lines = (tmp_path / "out" / "j" / "records.jsonl.out").read_bytes().splitlines()
    assert sorted(parse_batch_output_line(line).record_id for line in lines) == [
        record_id(i) for i in range(3)
    ]
    assert json.loads((tmp_path / "out" / "j" / "manifest.json.out").read_text())["totalRecordCount"] == 3


def test_a_line_without_record_id_gets_one(tmp_path: Path) -> None:
    source = tmp_path / "x.jsonl"
    source.write_bytes(b'{"modelInput": {"inputText": "no id"}}\n')
    run_local_job([str(source)], str(tmp_path / "out"), "j", model("titan_embed"))
    (line,) = (tmp_path / "out" / "j" / "x.jsonl.out").read_bytes().splitlines()
    rid = parse_batch_output_line(line).record_id
    assert len(rid) == 11
    assert rid.isalnum()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.jsonl",
            b'{"recordId": "00000000000", "modelInput": {"inputText": "ok"}}\nnot json\n',
            "record 2: not valid JSON",
        ),
        ("bad.jsonl", b'{"recordId": "00000000000", "prompt": "no modelInput"}\n', "modelInput"),
        ("bad.jsonl", b'{"recordId": 7, "modelInput": {}}\n', "recordId"),
        ("bad.jsonl", b"\n\n", "no records"),
        ("bad.json", b'{"recordId": "a", "modelInput": {}}\n', ".jsonl"),
    ],
)
def test_malformed_input_fails_the_whole_job_before_any_output(
    s3: Any, name: str, content: bytes, message: str
) -> None:
    entry = model("titan_text")
    s3.put_object(Bucket=BUCKET, Key="in/good.jsonl", Body=_input_file(entry, ["fine"], 0))
    s3.put_object(Bucket=BUCKET, Key=f"in/{name}", Body=content)
    with pytest.raises(EmulatedJobError, match=message):
        run_local_job(
            [f"s3://{BUCKET}/in/good.jsonl", f"s3://{BUCKET}/in/{name}"], f"s3://{BUCKET}/out", "j", entry
        )
    assert _keys(s3, "out/") == []  # the valid first file was not processed either


def test_job_level_limits(s3: Any, tmp_path: Path) -> None:
    entry = model("titan_text")
    s3.put_object(Bucket=BUCKET, Key="in/big.jsonl", Body=_input_file(entry, ["x"] * 6, 0))
    with pytest.raises(EmulatedJobError, match="more than 5 records"):
        run_local_job(
            [f"s3://{BUCKET}/in/big.jsonl"], f"s3://{BUCKET}/out", "j", entry, max_records_per_file=5
        )
    with pytest.raises(EmulatedJobError, match="does not exist"):
        run_local_job([f"s3://{BUCKET}/in/missing.jsonl"], f"s3://{BUCKET}/out", "j", entry)
    with pytest.raises(EmulatedJobError, match="does not exist"):
        run_local_job([str(tmp_path / "missing.jsonl")], str(tmp_path / "out"), "j", entry)
    with pytest.raises(EmulatedJobError, match="distinct names"):
        run_local_job(
            [f"s3://{BUCKET}/a/big.jsonl", f"s3://{BUCKET}/in/big.jsonl"], f"s3://{BUCKET}/out", "j", entry
        )
    with pytest.raises(EmulatedJobError, match="at least one"):
        run_local_job([], f"s3://{BUCKET}/out", "j", entry)
    with pytest.raises(EmulatedJobError, match="job id"):
        run_local_job([f"s3://{BUCKET}/in/big.jsonl"], f"s3://{BUCKET}/out", "a/b", entry)
    assert _keys(s3, "out/") == []
