"""model.json parsing: every field, the shorthand forms, and strict errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sinfer.errors import ManifestError, ModelNotReadyError
from sinfer.model.manifest import ImageSpec, InputDecl, Manifest, Postprocess

SHA = "AB" * 32


def test_full_manifest_parses_every_field() -> None:
    # GIVEN a manifest using every field, with an extra top-level backend setting
    raw = {
        "name": "clf",
        "version": 3,
        "description": "demo",
        "sha256": SHA,
        "labels": ["cat", "dog"],
        "inputs": {
            "image": {
                "kind": "image",
                "image": {
                    "color_mode": "BGR",
                    "resize": 256,
                    "crop": [224, 200],
                    "scale": 1,
                    "mean": [0.5, 0.5, 0.5],
                    "std": 0.25,
                    "layout": "NHWC",
                    "invert": True,
                },
            },
            "table": {"kind": "tabular", "columns": ["a", "b"]},
        },
        "postprocess": {"kind": "top_k", "output": "scores", "k": 2, "softmax": True},
        "batch": {"max_batch_size": 8},
        "batch_backend": "sagemaker",
        "metadata": {"owner": "ml-team"},
    }

    # WHEN it is parsed
    manifest = Manifest.from_dict(raw)

    # THEN each field lands typed; free-form "metadata" is kept as it is
    assert manifest.name == "clf"
    assert manifest.version == "3"
    assert manifest.sha256 == SHA.lower()
    assert manifest.labels == ("cat", "dog")
    assert manifest.inputs["image"] == InputDecl(
        kind="image",
        image=ImageSpec(
            color_mode="BGR",
            resize=(256, 256),
            crop=(224, 200),
            scale=1.0,
            mean=(0.5, 0.5, 0.5),
            std=(0.25,),
            layout="NHWC",
            invert=True,
        ),
    )
    assert manifest.inputs["table"] == InputDecl(kind="tabular", columns=("a", "b"))
    assert manifest.postprocess == Postprocess(kind="top_k", output="scores", k=2, softmax=True)
    assert manifest.max_batch_size == 8
    assert manifest.batch_backend == "sagemaker"
    assert manifest.extra == {"metadata": {"owner": "ml-team"}}


def test_empty_manifest_means_derive_everything_from_the_graph() -> None:
    manifest = Manifest.from_dict({})
    assert manifest == Manifest.empty()
    assert manifest.sha256 is None
    assert manifest.inputs == {}
    assert manifest.postprocess is None
    assert manifest.max_batch_size is None


def test_postprocess_shorthand_and_image_defaults() -> None:
    manifest = Manifest.from_dict({"postprocess": "argmax", "inputs": {"x": {"kind": "image"}}})
    assert manifest.postprocess == Postprocess(kind="argmax")
    assert manifest.inputs["x"].image == ImageSpec()  # RGB, NCHW, scale 1/255, no resize


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ([], "JSON object"),
        ({"sha256": "abc"}, "sha256"),
        ({"labels": []}, "labels"),
        ({"labels": "cat"}, "labels"),
        ({"inputs": []}, "inputs"),
        ({"inputs": {"x": "image"}}, "inputs.x"),
        ({"inputs": {"x": {"kind": "audio"}}}, "inputs.x.kind"),
        ({"inputs": {"x": {"kind": "tabular"}}}, "columns"),
        ({"inputs": {"x": {"kind": "tabular", "columns": []}}}, "inputs.x.columns"),
        ({"inputs": {"x": {"kind": "tabular", "colums": ["a"]}}}, "colums"),
        ({"inputs": {"x": {"kind": "image", "image": {"color_mode": "CMYK"}}}}, "color_mode"),
        ({"inputs": {"x": {"kind": "image", "image": {"layout": "CHW"}}}}, "layout"),
        ({"inputs": {"x": {"kind": "image", "image": {"resize": [8]}}}}, "resize"),
        ({"inputs": {"x": {"kind": "image", "image": {"crop": [0, 8]}}}}, "crop"),
        ({"inputs": {"x": {"kind": "image", "image": {"scale": "1/255"}}}}, "scale"),
        ({"inputs": {"x": {"kind": "image", "image": {"mean": ["a"]}}}}, "mean"),
        ({"inputs": {"x": {"kind": "image", "image": {"resise": [8, 8]}}}}, "resise"),
        ({"postprocess": {"kind": "sigmoid"}}, "postprocess.kind"),
        ({"postprocess": {"kind": "top_k", "k": 0}}, "postprocess.k"),
        ({"postprocess": {"kind": "argmax", "softmx": True}}, "softmx"),
        ({"postprocess": 3}, "postprocess"),
        ({"batch": "large"}, "batch"),
        ({"batch": {"max_batch_size": 0}}, "max_batch_size"),
        ({"batch": {"max_batch": 10}}, "max_batch"),
    ],
)
def test_invalid_manifest_names_the_field(raw: Any, names: str) -> None:
    with pytest.raises(ManifestError, match=names.replace(".", r"\.")) as caught:
        Manifest.from_dict(raw, source="m/1/model.json")
    assert "m/1/model.json" in caught.value.message
    # an invalid manifest makes the model unable to serve: 503, not a client error
    assert isinstance(caught.value, ModelNotReadyError)
    assert caught.value.status == 503


def test_load_reads_a_file_and_reports_bad_json_with_its_path(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"labels": ["a"]}), encoding="utf-8")
    assert Manifest.load(good).labels == ("a",)

    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad\.json"):
        Manifest.load(bad)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"sha_256": "0" * 64}, "unknown field(s) ['sha_256']"),  # a typo must not turn pinning off
        ({"postproces": {"kind": "argmax"}}, "unknown field(s) ['postproces']"),
        ({"sha256": "z" * 64}, "sha256 must be 64 hex characters"),
        ({"labels": ["a", "a", "b"]}, "labels must be distinct; ['a'] repeat"),
        ({"postprocess": {"kind": "argmax", "softmax": "false"}}, "softmax: expected true or false"),
        ({"postprocess": {"kind": "top_k", "k": True}}, "postprocess.k must be a positive integer"),
        ({"batch": {"max_batch_size": True}}, "max_batch_size must be a positive integer"),
        (
            {"inputs": {"x": {"kind": "image", "image": {"invert": "false"}}}},
            "invert: expected true or false",
        ),
        ({"inputs": {"x": {"kind": "image", "image": {"resize": -3}}}}, "positive whole pixels"),
        ({"inputs": {"x": {"kind": "image", "image": {"resize": 0}}}}, "positive whole pixels"),
        ({"inputs": {"x": {"kind": "image", "image": {"mean": [1, 2]}}}}, "2 values for RGB's 3 channel(s)"),
        ({"inputs": {"x": {"kind": "image", "image": {"std": 0}}}}, "std: must not be 0"),
        ({"inputs": {"x": {"kind": "image", "image": {"resize": 1, "crop": 2}}}}, "larger than the resized"),
        ({"inputs": {"x": {"kind": "tensor", "image": {"resize": 2}}}}, "'image' options need kind 'image'"),
    ],
    ids=[
        *("sha-typo", "postprocess-typo", "sha-not-hex", "duplicate-labels", "softmax-string"),
        *("k-bool", "max-batch-bool", "invert-string", "resize-negative", "resize-zero"),
        *("mean-channels", "std-zero", "crop-over-resize", "image-on-tensor"),
    ],
)
def test_a_manifest_that_would_serve_wrong_answers_fails_naming_the_field(
    raw: dict[str, Any], says: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        Manifest.from_dict(raw)
    assert says in raised.value.message


def test_a_bedrock_entrys_own_fields_are_left_to_its_parser() -> None:
    raw = {"kind": "bedrock", "modelId": "anthropic.claude-3-haiku-20240307-v1:0", "input_field": "text"}
    assert Manifest.from_dict(raw).extra == {k: raw[k] for k in ("kind", "modelId", "input_field")}
