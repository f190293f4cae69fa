"""QuickImage: the ``{"b64": ...}`` image route answers exactly what ``to_sample`` answers, or None."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sinfer.codecs.instances import BadImageError, QuickImage, to_sample
from sinfer.errors import InvalidInputError
from sinfer.inference.batch import process_records
from sinfer.inference.model import LoadedModel
from sinfer.inference.registry import ModelRegistry
from sinfer.model.manifest import ImageSpec, InputDecl
from sinfer.model.signature import TensorSpec
from sinfer.model.store import LocalModelStore
from tests.conftest import MODELS, LineSink

DIGITS = ImageSpec(color_mode="L", resize=(8, 8), layout="flat", scale=16 / 255)


def spec(
    shape: tuple[int | None, ...], image: ImageSpec | None = None, dtype: Any = np.float32, name: str = "x"
) -> TensorSpec:
    return TensorSpec(name, "tensor(float)", np.dtype(dtype), shape, InputDecl(image=image))


def png(width: int = 6, height: int = 4, mode: str = "RGB", fmt: str = "PNG") -> str:
    rng = np.random.default_rng(width * 31 + height)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def general(specs: list[TensorSpec], instance: Any) -> Any:
    """to_sample's answer: the sample's arrays as (dtype, shape, bytes), or its error's text."""
    try:
        sample = to_sample(specs, instance, "record 0")
    except InvalidInputError as exc:
        return exc.message
    return arrays(sample)


def arrays(sample: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    return {name: (a.dtype, a.shape, a.tobytes()) for name, a in sample.items()}


# Inputs the route takes whole: the decoder's array has the input's dtype and sample shape.
TAKEN = [
    spec((None, 64), DIGITS),  # digits: grey, resized, flat
    spec((None, 1, 8, 8)),  # implied NCHW
    spec((1, 3, 5, 7)),  # a fixed batch of one
    spec((None, 4, 6, 3)),  # implied NHWC
]


@pytest.mark.parametrize("input_spec", TAKEN, ids=lambda s: str(s.shape))
@pytest.mark.parametrize(
    "b64",
    [png(), png(8, 8, "L"), png(3, 9, "RGBA"), png(6, 4, "RGB", "JPEG")],
    ids=["rgb", "grey", "rgba", "jpeg"],
)
def test_the_usual_image_instance_gets_to_samples_arrays(input_spec: TensorSpec, b64: str) -> None:
    quick = QuickImage.of([input_spec])
    assert quick is not None

    for instance in ({"b64": b64}, base64.b64decode(b64)):  # as JSON, and an image object's bytes
        sample = quick.sample(instance)

        assert sample is not None, "the route should take a plain image of the input's own dtype and shape"
        assert arrays(sample) == general([input_spec], instance)


@pytest.mark.parametrize(
    "instance",
    [
        {"b64": "not base64!"},
        {"b64": 42},
        {"b64": png(), "extra": 1},
        {"x": {"b64": png()}},  # named by its input: to_sample's to unwrap
        {},
        [1.0, 2.0],
        png(),
        None,
        bytearray(base64.b64decode(png())),  # (to_sample takes these: not the route's)
        memoryview(base64.b64decode(png())),
    ],
    ids=[
        *("bad-base64", "not-str", "extra-key"),
        *("named", "empty", "list", "bare-str", "none"),
        *("bytearray", "memoryview"),
    ],
)
def test_anything_else_is_left_to_to_sample(instance: Any) -> None:
    quick = QuickImage.of([spec((None, 64), DIGITS)])
    assert quick is not None
    assert quick.sample(instance) is None


BAD_IMAGES = [
    b"not an image",
    base64.b64decode(png())[:-40],  # a cut PNG
    base64.b64decode(png(fmt="GIF")),  # an image, of a format sinfer does not decode
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,  # a PNG signature and nothing sound after it
]


@pytest.mark.parametrize("data", BAD_IMAGES, ids=["not-image", "cut", "gif", "bad-chunks"])
@pytest.mark.parametrize("as_json", [True, False], ids=["b64", "bytes"])
def test_a_bad_image_raises_to_samples_error_once_named(data: bytes, as_json: bool) -> None:
    # GIVEN an image the decoder refuses, as {"b64"} JSON and as an image object's bytes
    input_spec = spec((None, 64), DIGITS)
    quick = QuickImage.of([input_spec])
    assert quick is not None
    instance: Any = {"b64": base64.b64encode(data).decode()} if as_json else data

    # WHEN the route takes it
    with pytest.raises(BadImageError) as raised:
        quick.sample(instance)

    # THEN named as to_sample names it, it is to_sample's error, word for word
    error = raised.value.at("record 0")
    assert isinstance(error, InvalidInputError)
    assert error.code == "invalid_input"
    assert error.message == general([input_spec], instance)
    assert error.message.startswith("record 0 (input 'x'): expected a PNG or JPEG image")


@pytest.mark.parametrize(
    "input_spec",
    [
        spec((None, 1, 8, 8), dtype=np.float16),  # the decoder's float32 is cast by coerce
        spec((None, 8, 8), ImageSpec(color_mode="L", resize=(8, 8), layout="flat")),  # reshaped
        spec((None, 3, None, None), ImageSpec(resize=(6, 4))),  # a dynamic size
    ],
    ids=["float16", "reshaped", "dynamic"],
)
def test_images_needing_coerce_or_the_shape_check_are_left_to_to_sample(input_spec: TensorSpec) -> None:
    # (no route at all: it would decode each image, find the array unfit, and leave to_sample to
    # decode it again)
    assert QuickImage.of([input_spec]) is None
    assert isinstance(general([input_spec], {"b64": png()}), dict)  # to_sample takes them


@pytest.mark.parametrize(
    "specs",
    [
        [spec((None, 64))],  # numbers, no image preprocessing
        [spec((None, 1, 8, 8), name="b64")],  # {"b64": x} is that input's value x
        [spec((None, 1, 8, 8), name="a"), spec((None, 1, 8, 8), name="b")],  # two inputs
        [TensorSpec("x", "seq(map(string,float))", None, None, InputDecl())],  # not a tensor
    ],
    ids=["numbers", "input-named-b64", "two-inputs", "not-a-tensor"],
)
def test_models_without_one_image_input_have_no_route(specs: list[TensorSpec]) -> None:
    assert QuickImage.of(specs) is None


IMAGES = [png(), png(8, 8, "L"), png(5, 5, "LA"), png(4, 4, "P")]


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.fixed_dictionaries({"b64": st.sampled_from(IMAGES)}),
        st.fixed_dictionaries({"b64": st.text(alphabet="ABCabc0189+/=", max_size=24)}),
        st.fixed_dictionaries({"b64": st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())}),
        st.dictionaries(st.sampled_from(["b64", "x", "y"]), st.just(png()), max_size=3),
        st.sampled_from(IMAGES).map(base64.b64decode),
        st.binary(max_size=40),
    ),
    st.sampled_from(TAKEN),
)
def test_whatever_the_route_answers_is_to_samples_answer(instance: Any, input_spec: TensorSpec) -> None:
    quick = QuickImage.of([input_spec])
    assert quick is not None

    try:
        answer: Any = quick.sample(instance)
    except BadImageError as exc:
        answer = exc.at("record 0").message
    else:
        if answer is None:  # left to to_sample
            return
        answer = arrays(answer)

    assert answer == general([input_spec], instance)


# --- the model and the record pipeline, with the route and without it --------------------


@contextlib.contextmanager
def _without_route(model: LoadedModel) -> Iterator[None]:
    saved = model._quick_image
    model._quick_image = None
    try:
        yield
    finally:
        model._quick_image = saved


def test_a_file_of_images_gives_the_same_lines_with_the_route_and_without() -> None:
    # GIVEN a JSONL file of digit images, good ones and every kind of bad one, in micro-batches
    # small enough that records take both the block writer and the per-record lines
    model = ModelRegistry(LocalModelStore(MODELS)).get("digits")
    assert model._quick_image is not None
    good = [{"b64": png(8, 8, "L")}, {"b64": png(13, 9)}, {"b64": png(6, 4, "RGB", "JPEG")}]
    bad = [
        {"b64": "not base64!"},
        {"b64": base64.b64encode(b"text").decode()},
        {"b64": 7},
        {"b64": png(), "x": 1},
        {"b64": base64.b64encode(base64.b64decode(png())[:-40]).decode()},  # a cut PNG
    ]
    lines = [json.dumps(good[i % 3] if i % 5 else bad[i // 5 % 5]) for i in range(150)]
    data = ("\n".join(lines) + "\n").encode()

    def run() -> bytes:
        writer = LineSink()
        counts = process_records(model, io.BytesIO(data), "images.jsonl", writer, batch_size=64)
        assert counts["records"] == 150
        assert counts["predictions"] + counts["errors"] == 150
        assert counts["errors"] == 30
        return writer.data

    # WHEN it runs with the quick route and without it
    quick = run()
    with _without_route(model):
        slow = run()

    # THEN the lines are the same bytes, errors and their words included
    assert quick == slow
    assert b"'b64' is not valid base64" in quick
    assert b"(input 'pixels'): expected a PNG or JPEG image; could not decode it" in quick


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the images sinfer's decoder is asked to decode, in order."""
    from sinfer.codecs import images

    seen: list[int] = []
    decode = images.decode

    def counted(data: bytes, spec: ImageSpec) -> Any:
        seen.append(len(data))
        return decode(data, spec)

    monkeypatch.setattr(images, "decode", counted)
    return seen


def test_a_bad_image_is_decoded_once(decodes: list[int]) -> None:
    # GIVEN the digits model, a good image and a cut one (in a file, a request and an object)
    model = ModelRegistry(LocalModelStore(MODELS)).get("digits")
    good, cut = base64.b64decode(png(8, 8, "L")), base64.b64decode(png())[:-40]
    data = b"".join(json.dumps({"b64": base64.b64encode(b).decode()}).encode() + b"\n" for b in (good, cut))

    # WHEN the record pipeline reads them, and the API's predict is asked for them
    writer = LineSink()
    counts = process_records(model, io.BytesIO(data), "images.jsonl", writer)
    expected = r"instances\[1\] \(input 'pixels'\): expected a PNG or JPEG"
    with pytest.raises(InvalidInputError, match=expected) as raised:
        model.predict([{"b64": base64.b64encode(good).decode()}, {"b64": base64.b64encode(cut).decode()}])
    one = LineSink()
    process_records(model, io.BytesIO(cut), "cut.png", one)

    # THEN each image was decoded once, and the cut one is an error record or a 422 naming it
    assert decodes == [len(good), len(cut)] * 2 + [len(cut)]
    assert counts == {"records": 2, "predictions": 1, "errors": 1}
    lines = [json.loads(line) for line in writer.data.splitlines()]
    assert lines[1]["error"]["code"] == "invalid_input"
    assert lines[1]["error"]["message"].startswith("record 1 (input 'pixels'): expected a PNG or JPEG image")
    assert raised.value.status == 422
    assert b'"error"' in one.data
    assert b"could not decode it" in one.data


def test_a_request_of_images_predicts_the_same_with_the_route_and_without() -> None:
    model = ModelRegistry(LocalModelStore(MODELS)).get("digits")
    instances = [{"b64": png(8, 8, "L")}, {"b64": png(3, 9, "RGBA")}, {"b64": png(6, 4, "RGB", "JPEG")}]

    quick = model.predict(instances)
    with _without_route(model):
        slow = model.predict(instances)
        with pytest.raises(InvalidInputError, match=r"instances\[1\] \(input 'pixels'\): 'b64' is not valid"):
            model.predict([instances[0], {"b64": "not base64!"}])

    assert quick == slow
    with pytest.raises(InvalidInputError, match=r"instances\[1\] \(input 'pixels'\): 'b64' is not valid"):
        model.predict([instances[0], {"b64": "not base64!"}])


def test_image_objects_give_the_same_lines_with_the_route_and_without() -> None:
    model = ModelRegistry(LocalModelStore(MODELS)).get("digits")
    objects = {
        "grey.png": base64.b64decode(png(8, 8, "L")),
        "photo.jpg": base64.b64decode(png(6, 4, "RGB", "JPEG")),
        "cut.png": base64.b64decode(png())[:-40],
    }

    def run(name: str, data: bytes) -> bytes:
        writer = LineSink()
        counts = process_records(model, io.BytesIO(data), name, writer)
        assert counts["records"] == 1
        return writer.data

    quick = {name: run(name, data) for name, data in objects.items()}
    with _without_route(model):
        slow = {name: run(name, data) for name, data in objects.items()}

    assert quick == slow
    assert b'"prediction"' in quick["grey.png"]
    assert b"truncated" in quick["cut.png"]
