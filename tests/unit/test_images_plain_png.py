"""The plain-PNG fast path of images.decode against the Image.open route, bit for bit.

``images._plain_png`` decodes the plainest PNGs without ``Image.open``; every other input, and
every input it has a doubt about, goes to ``images._open``. The claim checked here: for any
bytes, decode gives the same array (dtype, shape, bytes) or the same InvalidInputError as
forcing the ``Image.open`` route, and the fast path is really taken for the plain PNGs.
"""

from __future__ import annotations

import io
import itertools
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, PngImagePlugin

from sinfer.codecs import images
from sinfer.errors import InvalidInputError
from sinfer.model.manifest import ImageSpec

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type → (channels, Pillow's mode) for the 8-bit types the fast path reads
COLOUR_TYPES = {0: (1, "L"), 2: (3, "RGB"), 4: (2, "LA"), 6: (4, "RGBA")}
NHWC = ImageSpec(layout="NHWC", scale=1.0)


# --- building PNGs by hand -------------------------------------------------------------------


def chunk(kind: bytes, body: bytes, *, crc: int | None = None) -> bytes:
    check = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", check)


def ihdr(width: int, height: int, colour: int, *, depth: int = 8, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def png(header: bytes, idats: list[bytes], *, before: bytes = b"", after: bytes = b"") -> bytes:
    """Signature, header, ``before`` (other chunks), the IDAT chunks, IEND, ``after``."""
    body = b"".join(chunk(b"IDAT", part) for part in idats)
    return SIGNATURE + header + before + body + chunk(b"IEND", b"") + after


def scanlines(rng: np.random.Generator, width: int, rows: int, channels: int) -> bytes:
    """``rows`` filtered scanlines of random pixels, each with a random filter type (0-4)."""
    return b"".join(
        bytes([int(rng.integers(0, 5))]) + rng.integers(0, 256, width * channels, np.uint8).tobytes()
        for _ in range(rows)
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def stored_zlib(raw: bytes, *, empty_blocks_before: int = 0) -> bytes:
    """A zlib stream of stored (uncompressed) deflate blocks, so byte offsets are exact."""
    out = bytearray(b"\x78\x01")
    for _ in range(empty_blocks_before):
        out += b"\x00\x00\x00\xff\xff"  # not final, stored, LEN 0, NLEN 0xffff
    for start in range(0, max(len(raw), 1), 65535):
        block = raw[start : start + 65535]
        final = start + 65535 >= len(raw)
        out += bytes([final]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
    return bytes(out + struct.pack(">I", zlib.adler32(raw)))


def pillow_png(pixels: np.ndarray, mode: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG", **params)
    return buffer.getvalue()


# --- the two routes --------------------------------------------------------------------------


@contextmanager
def image_open_route() -> Iterator[None]:
    """Force the old route: the fast path declines everything."""
    with mock.patch.object(images, "_plain_png", return_value=None):
        yield


def outcome(data: bytes, spec: ImageSpec) -> tuple[Any, ...]:
    """What decode makes of the bytes: the array's dtype, shape and bytes, or the refusal's text.

    Any exception other than InvalidInputError fails the test: refusals must be 422s."""
    try:
        out = images.decode(data, spec)
    except InvalidInputError as exc:
        return ("refused", str(exc))
    return (out.dtype, out.shape, out.tobytes())


def assert_same(data: bytes, *specs: ImageSpec) -> bool:
    """Both routes agree on ``data`` for every spec; True if the fast path took it."""
    image = images._plain_png(data)
    if image is not None:  # then Image.open must accept it too, as the very same image
        with warnings.catch_warnings():
            # ...with no DecompressionBombWarning: the fast path declines what Image.open warns of
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            reference = images._open(data)
        assert (image.mode, image.size) == (reference.mode, reference.size)
        assert image.tobytes() == reference.tobytes()
    for spec in specs or (NHWC,):
        fast = outcome(data, spec)
        with image_open_route():
            assert fast == outcome(data, spec)
    return image is not None


# --- strategies ------------------------------------------------------------------------------

sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))
seeds = st.integers(0, 2**32 - 1)


@st.composite
def pixel_arrays(draw: st.DrawFn) -> np.ndarray:
    """Noise, flat colour or stripes (so the encoder's filters and block types vary)."""
    width, height = draw(sizes)
    rng = np.random.default_rng(draw(seeds))
    kind = draw(st.sampled_from(["noise", "flat", "stripes"]))
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 4), np.uint8)
    if kind == "flat":
        return np.full((height, width, 4), rng.integers(0, 256, 4, np.uint8), np.uint8)
    return np.tile(rng.integers(0, 256, (1, width, 4), np.uint8), (height, 1, 1))


@st.composite
def image_specs(draw: st.DrawFn) -> ImageSpec:
    """Every knob the manifest's ImageSpec has, mean/std one value or one per channel."""
    color_mode = draw(st.sampled_from(["L", "RGB", "BGR"]))
    channels = 1 if color_mode == "L" else 3
    pair = st.none() | st.tuples(st.integers(1, 30), st.integers(1, 30))
    stats = st.none() | st.lists(st.floats(0.5, 200.0, allow_nan=False), min_size=1, max_size=1).map(tuple)
    if channels == 3:
        stats = stats | st.lists(st.floats(0.5, 200.0), min_size=3, max_size=3).map(tuple)
    return ImageSpec(
        color_mode=color_mode,
        resize=draw(pair),
        crop=draw(pair),
        scale=draw(st.sampled_from([1.0, 1.0 / 255.0, 0.5])),
        mean=draw(stats),
        std=draw(stats),
        layout=draw(st.sampled_from(["NCHW", "NHWC", "flat"])),
        invert=draw(st.booleans()),
    )


@st.composite
def hand_built_pngs(draw: st.DrawFn) -> tuple[bytes, bool]:
    """PNGs written here, and whether they are plain: IDAT split anywhere, empty IDATs, bytes
    after IEND, sometimes a spare IDAT after the image (all plain) or an ancillary chunk
    before the image data (not plain)."""
    width, height = draw(sizes)
    colour = draw(st.sampled_from(sorted(COLOUR_TYPES)))
    rng = np.random.default_rng(draw(seeds))
    raw = scanlines(rng, width, height, COLOUR_TYPES[colour][0])
    compressed = zlib.compress(raw, draw(st.integers(0, 9)))
    parts = split(compressed, draw(st.lists(st.integers(0, 10**6), max_size=4)))
    for at in draw(st.lists(st.integers(0, 10), max_size=2)):
        parts.insert(at % (len(parts) + 1), b"")
    if draw(st.booleans()):
        parts.append(draw(st.binary(max_size=8)))  # an IDAT beyond the image: skipped by both
    before = b""
    if draw(st.booleans()):
        before = draw(
            st.sampled_from([chunk(b"tEXt", b"Comment\x00hi"), chunk(b"gAMA", struct.pack(">I", 45455))])
        )
    data = png(ihdr(width, height, colour), parts, before=before, after=draw(st.binary(max_size=6)))
    return data, not before


@st.composite
def corrupted_pngs(draw: st.DrawFn) -> bytes:
    """A valid PNG (often split into several IDATs), then damaged one way or another."""
    width, height = draw(sizes)
    colour = draw(st.sampled_from(sorted(COLOUR_TYPES)))
    rng = np.random.default_rng(draw(seeds))
    channels = COLOUR_TYPES[colour][0]
    rows = height
    damage = draw(st.sampled_from(["truncate", "flip", "ihdr-crc", "garbage-idat", "few-rows", "many-rows"]))
    if damage == "few-rows":  # a complete zlib stream holding fewer rows than the header says
        rows = draw(st.integers(0, height - 1)) if height > 1 else 0
    if damage == "many-rows":
        rows = height + draw(st.integers(1, 3))
    raw = scanlines(rng, width, rows, channels)
    compressed = zlib.compress(raw, draw(st.integers(0, 9)))
    if damage == "garbage-idat":
        compressed = draw(st.binary(min_size=1, max_size=64))
    parts = split(compressed, draw(st.lists(st.integers(0, 10**6), max_size=3)))
    header = ihdr(width, height, colour)
    if damage == "ihdr-crc":
        header = header[:-4] + bytes(b ^ 0xFF for b in header[-4:])
    data = bytearray(png(header, parts))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    if damage == "flip":
        for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=3)):
            data[position] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Palette images with Transparency:UserWarning")
@settings(max_examples=150, deadline=None)
@given(pixel_arrays(), st.sampled_from(["L", "RGB", "LA", "RGBA", "P", "1", "I;16"]), st.data())
def test_pillow_saved_pngs_decode_alike_and_only_8bit_grey_or_truecolour_take_the_fast_path(
    pixels: np.ndarray, mode: str, data: st.DataObject
) -> None:
    # GIVEN a PNG Pillow saved, at any compression level, optimised or not
    params = {"compress_level": data.draw(st.integers(0, 9)), "optimize": data.draw(st.booleans())}
    encoded = pillow_png(pixels, mode, **params)

    # WHEN both routes decode it THEN they agree, and the fast path took exactly the plain ones
    took = assert_same(encoded, data.draw(image_specs()), NHWC)
    assert took == (mode in ("L", "RGB", "LA", "RGBA"))


@settings(max_examples=200, deadline=None)
@given(hand_built_pngs(), image_specs())
def test_hand_built_pngs_decode_alike(built: tuple[bytes, bool], spec: ImageSpec) -> None:
    # GIVEN a PNG written chunk by chunk; WHEN both routes decode it THEN they agree, and the
    # fast path took it unless an ancillary chunk came before the image data
    data, plain = built
    assert assert_same(data, spec, NHWC) == plain


@settings(max_examples=400, deadline=None)
@given(corrupted_pngs())
def test_damaged_pngs_get_the_same_answer_both_ways(data: bytes) -> None:
    assert_same(data)


@pytest.mark.parametrize("color_mode", ["L", "RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "flat"])
@pytest.mark.parametrize("colour", sorted(COLOUR_TYPES))
def test_every_spec_variant_matches_the_image_open_route(color_mode: str, layout: str, colour: int) -> None:
    # GIVEN a 7x5 plain PNG of each colour type, split over two IDATs
    raw = scanlines(np.random.default_rng(colour), 7, 5, COLOUR_TYPES[colour][0])
    compressed = zlib.compress(raw)
    data = png(ihdr(7, 5, colour), [compressed[:9], compressed[9:]])
    assert images._plain_png(data) is not None

    # WHEN decoded under each combination of the other knobs THEN both routes agree
    for resize in (None, (7, 5), (3, 9)):
        for crop in (None, (4, 2), (9, 9)):
            for scale, mean, std, invert in (
                (1.0, None, None, False),
                (1.0 / 255.0, (0.5,), (0.25,), True),
                (1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),
            ):
                if color_mode == "L" and mean is not None and len(mean) == 3:
                    continue
                spec = ImageSpec(color_mode, resize, crop, scale, mean, std, layout, invert)
                assert_same(data, spec)


def test_a_plain_png_never_reaches_image_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a plain PNG Pillow saved, and an Image.open that fails the test if called
    pixels = np.random.default_rng(3).integers(0, 256, (6, 9, 4), np.uint8)
    data = pillow_png(pixels, "RGB")
    expected = outcome(data, NHWC)

    def no_open(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("Image.open was called for a plain PNG")

    monkeypatch.setattr(Image, "open", no_open)

    # WHEN it is decoded THEN the fast path answers alone, with Pillow's own pixels
    assert images._plain_png(data) is not None
    out = images.decode(data, NHWC)
    assert (out.dtype, out.shape, out.tobytes()) == expected
    assert np.array_equal(out, pixels[:, :, :3].astype(np.float32))


def test_the_modes_are_pillows_png_modes() -> None:
    for key, modes in images._PLAIN_PNG_MODES.items():
        assert PngImagePlugin._MODES[key] == modes


def test_images_over_the_pixel_limit_are_refused_with_the_same_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a plain 6x4 PNG and a limit of 20 pixels
    data = pillow_png(np.zeros((4, 6, 3), np.uint8), "RGB")
    monkeypatch.setattr(images, "MAX_PIXELS", 20)

    # WHEN it arrives THEN the fast path declines it and Image.open's route refuses it as before
    assert images._plain_png(data) is None
    with pytest.raises(InvalidInputError, match=r"^image is 6x4 pixels; at most 20 pixels are accepted$"):
        images.decode(data, NHWC)
    assert_same(data)

    # AND at exactly the limit the fast path takes it
    monkeypatch.setattr(images, "MAX_PIXELS", 24)
    assert assert_same(data)


def test_pillows_decompression_bomb_limits_stay_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pillow_png(np.zeros((4, 6, 3), np.uint8), "RGB")  # 24 pixels

    # Above MAX_IMAGE_PIXELS Image.open warns: the fast path declines, so the warning is given
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
    assert images._plain_png(data) is None
    with pytest.warns(Image.DecompressionBombWarning):
        images.decode(data, NHWC)

    # Above twice that it refuses, with the same message either way
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 11)
    assert images._plain_png(data) is None
    assert outcome(data, NHWC)[0] == "refused"
    assert_same(data)

    # At the limit, no warning, and the fast path takes it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 24)
    assert assert_same(data)


@pytest.mark.parametrize(
    ("parts", "accepted"),
    [
        # all of the stream's data in one read: the decoder sees its end with the last row
        (lambda z: [z], True),
        # its end (the Adler-32) in the next IDAT chunk: Image.open calls the file truncated
        (lambda z: [z[:-4], z[-4:]], False),
    ],
    ids=["end-in-same-chunk", "end-in-next-chunk"],
)
def test_a_stream_ending_short_of_the_image_is_judged_as_image_open_does(parts: Any, accepted: bool) -> None:
    # GIVEN a 3x4 grey PNG whose zlib stream ends after 2 rows
    raw = bytes([0, 1, 2, 3, 0, 4, 5, 6])
    data = png(ihdr(3, 4, 0), parts(stored_zlib(raw)))

    # WHEN decoded THEN both routes agree: the missing rows black, or a refusal
    assert_same(data)
    result = outcome(data, NHWC)
    if accepted:
        grey = np.array([1, 2, 3, 4, 5, 6] + [0] * 6, np.float32).reshape(4, 3, 1)
        assert result[1:] == ((4, 3, 3), np.repeat(grey, 3, axis=2).tobytes())
    else:
        assert result == (
            "refused",
            "expected a PNG or JPEG image; could not decode it: "
            "image file is truncated (0 bytes not processed)",
        )


@pytest.mark.parametrize("empty_blocks", [101, 100], ids=["row-ends-a-read", "row-inside-a-read"])
def test_image_data_is_read_in_pillows_blocks(empty_blocks: int) -> None:
    # GIVEN one IDAT chunk of more than MAXBLOCK (64 KiB) bytes holding 254 of 300 rows, 256 bytes
    # each, laid out so that the last row ends exactly at the first read's end (101 empty
    # blocks before the data), or 5 bytes before it (100), with the stream's end after it
    assert ImageFile.MAXBLOCK == 65536
    raw = b"".join(bytes([0]) + bytes([row % 256]) * 255 for row in range(254))
    compressed = stored_zlib(raw, empty_blocks_before=empty_blocks)
    data = png(ihdr(255, 300, 0), [compressed])
    row_end = 2 + 5 * empty_blocks + 5 + len(raw)
    assert row_end == (65536 if empty_blocks == 101 else 65531)

    # WHEN decoded THEN both routes agree: refused when the stream's end is in the next read,
    # the missing rows black when it is in the same one
    assert_same(data)
    result = outcome(data, NHWC)
    assert (result[0] == "refused") == (empty_blocks == 101)


def test_a_png_cut_in_a_later_chunk_header_is_an_invalid_input() -> None:
    # Pillow raises SyntaxError ("broken PNG file") while loading; decode must say 422 for it
    compressed = zlib.compress(scanlines(np.random.default_rng(1), 5, 5, 3))
    data = png(ihdr(5, 5, 2), [compressed[:10], compressed[10:]])
    cut = data[: data.index(b"IDAT", 45) - 4 + 6]
    with pytest.raises(InvalidInputError, match="could not decode it: broken PNG file"):
        images.decode(cut, NHWC)
    assert_same(cut)


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_interlaced_and_16_bit_pngs_take_the_image_open_route(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = scanlines(rng, 4, 4, 3)
    assert not assert_same(png(ihdr(4, 4, 2, interlace=1), [zlib.compress(raw)]))
    assert not assert_same(png(ihdr(4, 4, 2, depth=16), [zlib.compress(scanlines(rng, 8, 4, 3))]))
