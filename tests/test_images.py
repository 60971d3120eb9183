"""Input conversion: every accepted input becomes the same RGB uint8 array; every refusal is typed and
named."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from latentface_sdk.errors import ImageTooLargeError, InvalidImageError
from latentface_sdk.images import (
    ImageInput,
    ImageItem,
    convert_batches,
    downscale_for_detection,
    to_rgb,
    to_rgb_list,
)


@pytest.fixture
def picture() -> np.ndarray:
    """A small random RGB picture (every value 0..255 appears in some channel)."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8)


def _png(path: Path, img: Image.Image) -> Path:
    img.save(path)
    return path


# ------------------------------------------------------------------------------------- same picture


def test_every_input_type_gives_the_identical_array(picture: np.ndarray, tmp_path: Path) -> None:
    path = _png(tmp_path / "pic.png", Image.fromarray(picture))
    chw = torch.from_numpy(picture).permute(2, 0, 1)
    rgba = np.concatenate([picture, np.full(picture.shape[:2] + (1,), 255, np.uint8)], axis=2)
    inputs: dict[str, ImageInput] = {
        "path str": str(path),
        "Path": path,
        "PIL": Image.open(path),
        "PIL from array": Image.fromarray(picture),
        "numpy uint8": picture,
        "numpy non-contiguous": np.asfortranarray(picture),
        "numpy float32": picture.astype(np.float32) / 255,
        "numpy float64": picture.astype(np.float64) / 255,
        "numpy uint16": picture.astype(np.uint16) * 257,
        "numpy int64": picture.astype(np.int64),
        "numpy opaque RGBA": rgba,
        "numpy 1xHxWx3": picture[None],
        "torch uint8 CHW": chw,
        "torch float CHW": chw.float() / 255,
        "torch half CHW": (chw.float() / 255).half(),
        "torch float64 requires_grad": (chw.double() / 255).requires_grad_(True),
        "torch 1xCxHxW": chw[None].float() / 255,
    }
    for label, item in inputs.items():
        out = to_rgb(item)
        assert out.dtype == np.uint8 and out.shape == picture.shape and out.flags.c_contiguous, label
        np.testing.assert_array_equal(out, picture, err_msg=label)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))))
def test_float_and_tensor_round_trip_is_exact(arr: np.ndarray) -> None:
    np.testing.assert_array_equal(to_rgb(arr.astype(np.float32) / 255), arr)
    np.testing.assert_array_equal(to_rgb(torch.from_numpy(arr.copy()).permute(2, 0, 1) / 255.0), arr)


def test_float_tolerance_is_clipped() -> None:
    img = np.array([[[1.0005, -0.0005, 0.5]]])
    np.testing.assert_array_equal(to_rgb(img), [[[255, 0, 128]]])


# -------------------------------------------------------------------------------------------- modes


def test_grey_inputs_repeat_to_rgb(tmp_path: Path) -> None:
    grey = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7)
    want = np.repeat(grey[:, :, None], 3, axis=2)
    path = _png(tmp_path / "grey.png", Image.fromarray(grey))
    assert Image.open(path).mode == "L"
    for item in (path, grey, grey[:, :, None], torch.from_numpy(grey), torch.from_numpy(grey)[None]):
        np.testing.assert_array_equal(to_rgb(item), want)
    bilevel = Image.fromarray(grey > 40).convert("1")
    np.testing.assert_array_equal(to_rgb(bilevel)[:, :, 0], np.where(grey > 40, 255, 0))


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (10, 100, 200)
    rgba[0, :, 3] = (0, 128, 255)
    want = np.empty((2, 3, 3), np.uint8)
    want[0, 0] = 255  # transparent: white
    want[0, 1] = [round((c * 128 + 255 * 127) / 255) for c in (10, 100, 200)]
    want[0, 2] = (10, 100, 200)  # opaque: unchanged
    want[1] = 255  # alpha 0 on the second row too
    np.testing.assert_array_equal(to_rgb(rgba), want)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(rgba, "RGBA")), want)
    np.testing.assert_array_equal(to_rgb(_png(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))), want)
    la = Image.fromarray(rgba[..., [1, 3]], "LA")
    np.testing.assert_array_equal(to_rgb(la)[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(to_rgb(la)[0, 2], [100, 100, 100])


def test_palette_images_convert_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    out = to_rgb(_png(tmp_path / "p.png", pal))
    np.testing.assert_array_equal(out[0, :2], [[255, 0, 0], [0, 0, 255]])
    pal.info["transparency"] = 1  # blue becomes transparent -> white
    out = to_rgb(_png(tmp_path / "pt.png", pal))
    np.testing.assert_array_equal(out[0, :2], [[255, 0, 0], [255, 255, 255]])


def test_16_bit_images_are_scaled(tmp_path: Path) -> None:
    data = np.array([[0, 128, 129, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(data).save(path)
    assert Image.open(path).mode.startswith("I;16")
    want = np.array([0, 0, 1, 100, 255], np.uint8)
    np.testing.assert_array_equal(to_rgb(path)[0, :, 0], want)
    np.testing.assert_array_equal(to_rgb(data)[0, :, 1], want)
    as_int32 = Image.fromarray(data.astype(np.int32))
    assert as_int32.mode == "I"
    np.testing.assert_array_equal(to_rgb(as_int32)[0, :, 2], want)
    with pytest.raises(InvalidImageError, match="65535"):
        to_rgb(Image.fromarray(np.array([[70000]], dtype=np.int32)))


def test_float_pil_image_uses_the_0_255_scale() -> None:
    img = Image.fromarray(np.array([[-3.0, 0.4, 100.6, 300.0]], dtype=np.float32))
    assert img.mode == "F"
    np.testing.assert_array_equal(to_rgb(img)[0, :, 0], [0, 0, 101, 255])


def test_cmyk_converts(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # full magenta + yellow = red
    path = tmp_path / "cmyk.tif"
    cmyk.save(path)
    assert Image.open(path).mode == "CMYK"
    np.testing.assert_array_equal(to_rgb(path)[1, 2], [255, 0, 0])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide: red left half, blue right half
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    assert Image.open(path).getexif().get(0x0112) == 6
    out = to_rgb(path)
    assert out.shape == (40, 20, 3)  # portrait once displayed
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # the left (red) half is now on top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60
    np.testing.assert_array_equal(to_rgb(Image.open(path)), out)


# ----------------------------------------------------------------------------------------- refusals


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good, quality=90)  # big enough that the cut falls in the pixel data
    raw = good.read_bytes()
    files = {
        "missing": tmp_path / "missing.jpg",
        "empty": tmp_path / "empty.jpg",
        "truncated": tmp_path / "truncated.jpg",
        "text": tmp_path / "notes.png",
        "folder": tmp_path / "folder.jpg",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["text"].write_text("this is not an image\n")
    files["folder"].mkdir()
    return files


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("truncated", "truncated or corrupt"),
        ("text", "not an image"),
        ("folder", "directory"),
    ],
)
def test_bad_files_are_refused_with_their_path(tmp_path: Path, kind: str, reason: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(InvalidImageError, match=reason) as info:
        to_rgb(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (np.zeros(5, np.uint8), "dimensions"),
        (np.zeros((2, 2, 4, 4, 3), np.uint8), "dimensions"),
        (np.zeros((4, 4, 2), np.uint8), "2 channels"),
        (np.zeros((4, 4, 5), np.uint8), "5 channels"),
        (np.zeros((4, 4, 3), bool), "bool"),
        (np.zeros((4, 4, 3), np.complex64), "complex"),
        (np.full((4, 4, 3), None, dtype=object), "object"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), np.inf), "infinite"),
        (np.full((4, 4, 3), 200.0, np.float32), r"\[0, 1\]"),
        (np.full((4, 4, 3), -0.5), r"\[0, 1\]"),
        (np.full((4, 4, 3), 300, np.int32), "uint16"),
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((4, 0), np.float32), "zero size"),
        (np.zeros((3, 4, 4, 3), np.uint8), "whole input"),
        (torch.zeros(8, 8, 3), "permute"),
        (torch.zeros(2, 8, 8), "2 channels"),
        (torch.zeros(3, 8, 8, dtype=torch.bool), "bool"),
        (torch.full((3, 8, 8), float("nan")), "NaN"),
        (torch.full((3, 8, 8), 255.0), r"\[0, 1\]"),
        (torch.zeros(3, 0, 8), "zero size"),
        (torch.zeros(8), "shape"),
        (Image.new("RGB", (0, 0)), "zero size"),
        (12, "unsupported input type int"),
        (b"\x89PNG\r\n\x1a\n", "starts like a PNG file but its header cannot be read"),
        (b"", "empty"),
        (b"GIF89 is not a picture", "not an image file PIL can identify"),
        (None, "unsupported input type NoneType"),
    ],
)
def test_bad_values_are_refused_naming_the_item(item: object, reason: str) -> None:
    good: list[object] = [np.zeros((4, 4, 3), np.uint8)] * 3
    items = to_rgb_list(good + [item])  # type: ignore[arg-type]
    assert [x.ok for x in items] == [True, True, True, False]
    err = items[3].error
    assert isinstance(err, InvalidImageError)
    assert str(err).startswith("item 3: ")
    assert re.search(reason, str(err)), str(err)
    with pytest.raises(InvalidImageError, match=reason):
        to_rgb(item)  # type: ignore[arg-type]


def test_the_bytes_of_a_file_read_like_the_file(tmp_path: Path) -> None:
    rgb = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    for fmt in ("PNG", "JPEG", "WEBP"):
        path = tmp_path / f"face.{fmt.lower()}"
        Image.fromarray(rgb).save(path, format=fmt)
        data = path.read_bytes()
        from_path = to_rgb(path)
        for kind in (bytes, bytearray, memoryview):
            np.testing.assert_array_equal(to_rgb(kind(data)), from_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[:40])
    with pytest.raises(InvalidImageError) as from_file:
        to_rgb(broken, name="x")
    with pytest.raises(InvalidImageError) as from_bytes:
        to_rgb(data[:40], name="x")
    assert str(from_bytes.value) == str(from_file.value)


def test_refusal_messages_say_what_is_accepted() -> None:
    with pytest.raises(InvalidImageError, match="accepted: a path to an image file"):
        to_rgb(np.zeros((4, 4, 3), bool))


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width x height`` pixels but that holds almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    # 8000x8000 = 64 MP: above our 50 MP default but below PIL's own guard. The file has no pixel
    # data, so reaching the decoder would say "truncated": the size check must come first.
    with pytest.raises(ImageTooLargeError, match="64,000,000 pixels") as info:
        to_rgb(_png_header_only(tmp_path / "bomb.png", 8000, 8000))
    assert "bomb.png" in str(info.value)
    # PIL's own DecompressionBombError (far above its limit) is turned into the same typed error.
    with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
        to_rgb(_png_header_only(tmp_path / "huge.png", 100_000, 100_000), max_pixels=10**12)
    # The limit applies to every input type and is configurable.
    with pytest.raises(ImageTooLargeError):
        to_rgb(np.zeros((100, 100, 3), np.uint8), max_pixels=9999)
    assert to_rgb(np.zeros((100, 100, 3), np.uint8), max_pixels=10000).shape == (100, 100, 3)
    assert issubclass(ImageTooLargeError, InvalidImageError)


def test_truncated_pil_image_passed_in_is_refused(tmp_path: Path) -> None:
    path = _bad_files(tmp_path)["truncated"]
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        to_rgb(Image.open(path), name="upload")


# --------------------------------------------------------------------------------------------- lists


def test_batches_expand_into_items() -> None:
    batch = torch.rand(3, 3, 8, 6)
    items = to_rgb_list(batch)
    assert [x.name for x in items] == ["item 0", "item 1", "item 2"]
    for i, x in enumerate(items):
        np.testing.assert_array_equal(x.rgb, to_rgb(batch[i]))
    np.testing.assert_array_equal(to_rgb_list(batch)[1].rgb, to_rgb(batch[1].permute(1, 2, 0).numpy()))
    nhwc = np.zeros((2, 5, 4, 3), np.uint8)
    nhwc[1] = 9
    items = to_rgb_list(nhwc)
    assert len(items) == 2 and items[1].rgb is not None and int(items[1].rgb.max()) == 9
    single = to_rgb_list(torch.rand(3, 8, 6))
    assert len(single) == 1 and single[0].name == "image" and single[0].ok


def test_mixed_list_keeps_order_and_marks_bad_items(picture: np.ndarray, tmp_path: Path) -> None:
    path = _png(tmp_path / "pic.png", Image.fromarray(picture))
    missing = tmp_path / "nope.jpg"
    items = to_rgb_list(
        [str(path), np.full((4, 4, 3), np.nan), Image.fromarray(picture), missing, torch.zeros(3, 4, 4)]
    )
    assert [x.name for x in items] == [str(path), "item 1", "item 2", str(missing), "item 4"]
    assert [x.ok for x in items] == [True, False, True, False, True]
    assert all(isinstance(x, ImageItem) for x in items)
    assert items[1].rgb is None and "item 1" in str(items[1].error)
    assert items[3].rgb is None and isinstance(items[3].error, InvalidImageError)
    np.testing.assert_array_equal(items[0].rgb, items[2].rgb)
    tupled = to_rgb_list((path,))
    assert tupled[0].name == str(path) and tupled[0].ok


def test_one_bad_input_raises_as_every_encoder_method_does() -> None:
    with pytest.raises(InvalidImageError, match="^image: "):
        to_rgb_list(np.zeros((4, 4, 7), np.uint8))
    # the same input inside a list is a marked item
    items = to_rgb_list([np.zeros((4, 4, 7), np.uint8)])
    assert len(items) == 1 and not items[0].ok and str(items[0].error).startswith("item 0: ")


@pytest.mark.parametrize("empty", [[], (), torch.zeros(0, 3, 8, 8), np.zeros((0, 8, 8, 3), np.uint8)])
def test_empty_inputs_raise(empty: object) -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        to_rgb_list(empty)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- downscale


def test_downscale_for_detection() -> None:
    big = np.zeros((2000, 3000, 3), np.uint8)
    big[1000:1200, 1500:1800] = 255
    small, scale = downscale_for_detection(big, max_side=1280)
    assert small.shape == (853, 1280, 3) and small.dtype == np.uint8
    assert scale == pytest.approx(1280 / 3000)
    ys, xs = np.nonzero(small[..., 0] > 127)
    # the bright rectangle maps back to where it was (within a pixel of the small image)
    assert xs.min() / scale == pytest.approx(1500, abs=1 / scale + 1)
    assert ys.max() / scale == pytest.approx(1200, abs=1 / scale + 1)
    same, one = downscale_for_detection(small, max_side=1280)
    assert same is small and one == 1.0


# ----------------------------------------------------------------------- decoding ahead in threads


def _mixed_items(tmp_path: Path) -> list[object]:
    rng = np.random.default_rng(3)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    return [str(good), str(broken), rng.integers(0, 256, (8, 9, 3), dtype=np.uint8), np.zeros((4, 4), bool),
            Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)), str(tmp_path / "missing.jpg"),
            good]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 10])
def test_convert_batches_in_threads_gives_what_the_serial_path_gives(tmp_path: Path, batch_size: int) -> None:
    items = _mixed_items(tmp_path)
    serial = list(convert_batches(items, batch_size))
    threaded = list(convert_batches(items, batch_size, workers=3, ahead=1))
    assert [s for s, _ in serial] == [s for s, _ in threaded] == list(range(0, len(items), batch_size))
    flat_s = [it for _, b in serial for it in b]
    flat_t = [it for _, b in threaded for it in b]
    assert [it.name for it in flat_t] == [it.name for it in flat_s]
    assert [it.ok for it in flat_t] == [True, False, True, False, True, False, True]  # bad ones marked
    assert [str(it.error) for it in flat_t] == [str(it.error) for it in flat_s]
    assert [type(it.error) for it in flat_t] == [type(it.error) for it in flat_s]
    for a, b in zip(flat_s, flat_t, strict=True):
        assert (a.rgb is None and b.rgb is None) or np.array_equal(a.rgb, b.rgb)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="broken"):
        list(convert_batches([items[1]], 4, single=True, workers=3))  # one input: its error is raised
    with pytest.raises(ValueError, match="batch_size"):
        list(convert_batches(items, 0, workers=2))


def test_convert_batches_decodes_a_bounded_number_of_batches_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import latentface_sdk.images as images

    started: list[int] = []
    gate = threading.Event()
    real = images._convert_one

    def recording(item: object, index: int, single: bool, max_pixels: int) -> ImageItem:
        started.append(index)
        gate.wait(5)
        return real(item, index, single, max_pixels)

    monkeypatch.setattr(images, "_convert_one", recording)
    items = [np.zeros((3, 3, 3), np.uint8)] * 40
    gen = convert_batches(items, 4, workers=2, ahead=2)
    gate.set()
    start, first = next(gen)
    assert start == 0 and len(first) == 4
    assert len(started) <= 3 * 4  # the batch handed out and at most 2 more were queued
    gen.close()  # stops and cancels what has not started
    done = len(started)
    assert done <= 3 * 4 and sorted(started) == list(range(done))
