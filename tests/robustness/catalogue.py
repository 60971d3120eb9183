"""The catalogue of bad and unusual image inputs, with what each must get.

Each :class:`Case` builds one input in a scratch folder and states the documented outcome: a typed
error whose message matches a pattern, or a conversion checked on the resulting array.
``test_catalogue.py`` asserts every row; run this file to print the table of ``docs/robustness.md``
with the messages the SDK really gives::

    OMP_NUM_THREADS=1 python tests/robustness/catalogue.py > /tmp/table.md
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentface_sdk.errors import ImageTooLargeError, InvalidImageError
from latentface_sdk.images import ImageItem, downscale_for_detection, to_rgb, to_rgb_list

# ---------------------------------------------------------------------------------------- file makers


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk (length, type, data, CRC)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what PIL will not write (16-bit RGB, zero size, lying headers)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random RGB ``uint8`` pixels (incompressible, so a cut lands in the pixel data)."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def jpeg_bytes(rgb: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _save(folder: Path, name: str, img: Image.Image, **kw: object) -> Path:
    path = folder / name
    img.save(path, **kw)
    return path


def _rgb16_png(folder: Path) -> Path:
    px = struct.pack(">HHH", 65535, 32896, 0)
    return _write(folder, "rgb16.png", raw_png(2, 2, 16, 2, (b"\x00" + px * 2) * 2))


def _rgba16_png(folder: Path) -> Path:
    px = struct.pack(">HHHH", 0, 0, 0, 0)  # fully transparent black
    return _write(folder, "rgba16.png", raw_png(2, 2, 16, 6, (b"\x00" + px * 2) * 2))


def _palette(transparent: bool) -> Image.Image:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    if transparent:
        img.info["transparency"] = 1
    return img


def exif_rotated(folder: Path) -> Path:
    """A 40x20 JPEG (red left half, blue right half) stored with EXIF orientation 6 (rotate 90 CW)."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    return _save(folder, "rotated.jpg", img, exif=exif, quality=95)


def _bad_exif(folder: Path) -> Path:
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03garbage"
    return _save(folder, "bad-exif.jpg", Image.new("RGB", (8, 8), (1, 2, 3)), exif=broken)


def _big_photo(folder: Path) -> Path:
    big = np.asarray(Image.fromarray(noise(40, 60)).resize((6000, 4000), Image.Resampling.BILINEAR))
    return _save(folder, "big.jpg", Image.fromarray(big), quality=80)


class _Marker:
    """Unpickling this creates a file: proof that a pickle was (or was not) executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def pickle_bytes(marker: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """A pickle whose loading would create ``marker``."""
    return pickle.dumps(_Marker(str(marker)), protocol=protocol)


def _text_bomb_png(folder: Path) -> Path:
    """A 4x4 PNG carrying a zTXt chunk that inflates to 20 MB (PIL's text-chunk limit is 1 MB)."""
    png = png_bytes(Image.new("RGB", (4, 4), (5, 6, 7)))
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (20 * 1024 * 1024), 9))
    return _write(folder, "text-bomb.png", png[:33] + bomb + png[33:])  # after the 33-byte signature + IHDR


def _animated_gif(folder: Path) -> Path:
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = folder / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def _jpeg_without_sof(folder: Path) -> Path:
    data = bytearray(jpeg_bytes(noise(32, 32)))
    at = data.find(b"\xff\xc0")  # the start-of-frame marker (image size, components)
    data[at : at + 2] = b"\xff\x01"
    return _write(folder, "no-sof.jpg", bytes(data))


def _png_with_bad_idat(folder: Path) -> Path:
    data = bytearray(png_bytes(Image.fromarray(noise(32, 32))))
    at = data.find(b"IDAT") + 40
    data[at] ^= 0xFF  # the chunk CRC no longer matches
    return _write(folder, "bad-crc.png", bytes(data))


# ---------------------------------------------------------------------------------------------- cases

Check = Callable[[np.ndarray], bool]
Make = Callable[[Path], object]


@dataclass(frozen=True)
class Case:
    """One input tried and its documented outcome.

    ``make`` builds the input in a scratch folder. With ``error`` set the call must raise it with a
    message matching ``match`` and naming the input; otherwise ``check`` must hold on the result.
    ``listed`` cases go through :func:`to_rgb_list` and ``check_items`` judges the items.
    """

    group: str
    label: str
    make: Make
    error: type[Exception] | None = None
    match: str = ""
    check: Check | None = None
    conversion: str = ""
    listed: bool = False
    check_items: Callable[[list[ImageItem]], bool] | None = None
    max_pixels: int | None = None


def _px(*value: int) -> Check:
    return lambda rgb: bool((rgb == np.array(value, np.uint8)).all())


def _near(*value: int, tol: int = 3) -> Check:
    """Every pixel within ``tol`` of ``value`` (for lossy JPEG)."""
    return lambda rgb: bool((np.abs(rgb.astype(int) - np.array(value)) <= tol).all())


def _shape(*shape: int) -> Check:
    return lambda rgb: rgb.shape == shape


def _rotated(rgb: np.ndarray) -> bool:
    top, bottom = rgb[5, 10], rgb[35, 10]
    return rgb.shape == (40, 20, 3) and top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


def _big(rgb: np.ndarray) -> bool:
    small, scale = downscale_for_detection(rgb)
    return rgb.shape == (4000, 6000, 3) and small.shape == (853, 1280, 3) and abs(scale - 1280 / 6000) < 1e-9


_GOOD = np.zeros((4, 4, 3), np.uint8)
_ACCEPTED = "accepted: a path"


def _refused(group: str, rows: list[tuple[str, Make, str]], *, listed: bool = False) -> list[Case]:
    """A case per ``(label, make, match)`` row: the input must raise :class:`InvalidImageError`."""
    return [Case(group, label, make, InvalidImageError, match, listed=listed) for label, make, match in rows]


def _converted(group: str, rows: list[tuple[str, Make, Check, str]]) -> list[Case]:
    """A case per ``(label, make, check, conversion)`` row: the input must convert and pass ``check``."""
    return [Case(group, label, make, check=check, conversion=conversion)
            for label, make, check, conversion in rows]


CASES: list[Case] = [
    # ------------------------------------------------------------------ files that cannot be read
    *_refused("file", [
        ("missing file", lambda d: d / "missing.jpg", "no such file"),
        ("empty file (0 bytes) named .jpg", lambda d: _write(d, "empty.jpg", b""),
         r"file is empty \(0 bytes\)"),
        ("a folder named face.jpg", lambda d: (d / "face.jpg").mkdir() or d / "face.jpg", "is a directory"),
        ("JPEG cut in half", lambda d: _write(d, "half.jpg", jpeg_bytes(noise(128, 128))[:3000]),
         "truncated or corrupt"),
        ("JPEG cut to its first 20 bytes", lambda d: _write(d, "head.jpg", jpeg_bytes(noise(32, 32))[:20]),
         "starts like a JPEG file.*truncated or corrupt"),
        ("PNG cut in half", lambda d: _write(d, "half.png", png_bytes(Image.fromarray(noise(64, 64)))[:6000]),
         "truncated or corrupt"),
        ("PNG signature only (8 bytes)", lambda d: _write(d, "sig.png", b"\x89PNG\r\n\x1a\n"),
         "starts like a PNG file.*truncated or corrupt"),
        ("PNG with a damaged IDAT chunk (bad CRC)", _png_with_bad_idat, "truncated or corrupt"),
        ("JPEG without its start-of-frame marker", _jpeg_without_sof, "truncated or corrupt"),
        ("PNG declaring 0x0 pixels", lambda d: _write(d, "zero.png", raw_png(0, 0, 8, 2, b"")),
         "starts like a PNG file.*zero width or height"),
        ("text file named .png", lambda d: _write(d, "notes.png", b"this is not an image\n"),
         "not an image file PIL can identify.*" + _ACCEPTED),
        ("HTML error page saved as .jpg",
         lambda d: _write(d, "page.jpg", b"<!doctype html><html><body>404 Not Found</body></html>"),
         "not an image file PIL can identify"),
        ("PDF named .png", lambda d: _write(d, "doc.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
         "not an image file PIL can identify"),
        ("ZIP archive named .jpg", lambda d: _write(d, "arch.jpg", b"PK\x03\x04" + bytes(60)),
         "not an image file PIL can identify"),
        ("pickle named .png (never unpickled)", lambda d: _write(d, "x.png", pickle_bytes(d / "PWNED")),
         "not an image file PIL can identify"),
        ("random bytes named .jpg", lambda d: _write(d, "rand.jpg", np.random.default_rng(1).bytes(5000)),
         "not an image file PIL can identify"),
    ]),
    Case("file", "PNG header declaring 8000x8000 (64 MP), no pixel data",
         lambda d: _write(d, "bomb.png", raw_png(8000, 8000, 8, 2, b"\x00" * 100)),
         ImageTooLargeError, "8000x8000 = 64,000,000 pixels, above the limit of 50,000,000"),
    Case("file", "PNG header declaring 100000x100000 (PIL's own guard), max_pixels=1e12",
         lambda d: _write(d, "huge.png", raw_png(100_000, 100_000, 8, 2, b"\x00" * 100)),
         ImageTooLargeError, "decompression-bomb guard", max_pixels=10**12),
    Case("file", "PNG with a zTXt chunk inflating to 20 MB (text bomb)", _text_bomb_png,
         InvalidImageError, "truncated or corrupt.*Decompressed data too large"),
    # ------------------------------------------------------------------ files that are converted
    *_converted("file", [
        ("1x1 PNG", lambda d: _save(d, "one.png", Image.new("RGB", (1, 1), (9, 8, 7))),
         lambda rgb: rgb.shape == (1, 1, 3) and _px(9, 8, 7)(rgb),
         "kept; encode then raises NoFaceError (detect=False encodes it)"),
        ("PNG missing only its 12-byte IEND trailer",
         lambda d: _write(d, "noend.png", png_bytes(Image.new("RGB", (6, 5), (1, 2, 3)))[:-12]),
         lambda rgb: rgb.shape == (5, 6, 3) and _px(1, 2, 3)(rgb), "read: every pixel is present"),
        ("16-bit grey PNG (value 1000)",
         lambda d: _save(d, "g16.png", Image.fromarray(np.full((3, 3), 1000, np.uint16))),
         _px(4, 4, 4), "scaled to 8 bit, round(v / 257): 1000 -> 4, grey repeated"),
        ("16-bit RGB PNG (65535, 32896, 0)", _rgb16_png, _px(255, 128, 0),
         "8 bit per channel (PIL keeps the high byte): (255, 128, 0)"),
        ("16-bit RGBA PNG, fully transparent", _rgba16_png, _px(255, 255, 255), "alpha composited on white"),
        ("16-bit grey TIFF (I;16, value 1000)",
         lambda d: _save(d, "g16.tif", Image.fromarray(np.full((3, 3), 1000, np.uint16))),
         _px(4, 4, 4), "scaled like 16-bit PNG"),
        ("float TIFF (mode F, value 128.4)",
         lambda d: _save(d, "f.tif", Image.fromarray(np.full((3, 3), 128.4, np.float32))),
         _px(128, 128, 128), "PIL's 0-255 scale, rounded and clipped (so 0.5 -> 0)"),
        ("CMYK JPEG (0, 255, 0, 0)",
         lambda d: _save(d, "cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 0, 0))),
         lambda rgb: bool(rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60 and rgb[0, 0, 2] > 200),
         "PIL's CMYK -> RGB: magenta"),
        ("CMYK TIFF (0, 0, 0, 255)",
         lambda d: _save(d, "cmyk.tif", Image.new("CMYK", (3, 3), (0, 0, 0, 255))),
         _px(0, 0, 0), "PIL's CMYK -> RGB: black"),
        ("grey JPEG (L)", lambda d: _save(d, "grey.jpg", Image.new("L", (8, 8), 77)),
         lambda rgb: bool((rgb == rgb[..., :1]).all() and abs(int(rgb[0, 0, 0]) - 77) <= 1),
         "grey repeated to 3 channels"),
        ("grey+alpha PNG (LA), transparent", lambda d: _save(d, "la.png", Image.new("LA", (3, 3), (10, 0))),
         _px(255, 255, 255), "alpha composited on white"),
        ("RGBA PNG, black at alpha 128",
         lambda d: _save(d, "rgba.png", Image.new("RGBA", (3, 3), (0, 0, 0, 128))),
         _px(127, 127, 127), "alpha composited on white: (127, 127, 127)"),
        ("palette PNG (P)", lambda d: _save(d, "p.png", _palette(False)), _px(10, 20, 30), "palette colours"),
        ("palette PNG with a transparent index", lambda d: _save(d, "pt.png", _palette(True)),
         _px(255, 255, 255), "transparent index composited on white"),
        ("bilevel PNG (mode 1)", lambda d: _save(d, "bw.png", Image.new("1", (3, 3), 1)), _px(255, 255, 255),
         "0/255 grey repeated"),
        ("lossless WebP (any format PIL reads)",
         lambda d: _save(d, "x.webp", Image.new("RGB", (4, 4), (0, 200, 0)), lossless=True),
         _px(0, 200, 0), "read like any other file"),
        ("animated GIF (3 frames: red, green, blue)", _animated_gif, _px(255, 0, 0), "the first frame"),
        ("JPEG with EXIF orientation 6", exif_rotated, _rotated,
         "orientation applied: 40x20 landscape becomes 20x40 portrait"),
        ("JPEG with a malformed EXIF block", _bad_exif, _near(1, 2, 3),
         "EXIF ignored, pixels kept as stored"),
        ("6000x4000 JPEG photo (24 MP)", _big_photo, _big,
         "read at full size; detection runs on a 1280x853 copy, boxes mapped back"),
    ]),
    # ------------------------------------------------------------------ numpy arrays
    *_refused("numpy", [
        ("1-D array (5,)", lambda d: np.zeros(5, np.uint8), r"1 dimensions\); expected HxW"),
        ("5-D array", lambda d: np.zeros((2, 2, 4, 4, 3), np.uint8), "dimensions"),
        ("4-D batch inside to_rgb (3,4,4,3)", lambda d: np.zeros((3, 4, 4, 3), np.uint8), "whole input"),
        ("channels-first numpy (3,64,64)", lambda d: np.zeros((3, 64, 64), np.uint8),
         r"64 channels; expected 1, 3 or 4 channels \(HxWxC for numpy"),
        ("2 channels (4,4,2)", lambda d: np.zeros((4, 4, 2), np.uint8), "2 channels"),
        ("5 channels (4,4,5)", lambda d: np.zeros((4, 4, 5), np.uint8), "5 channels"),
        ("zero height (0,4,3)", lambda d: np.zeros((0, 4, 3), np.uint8), "zero size"),
        ("zero width grey (4,0)", lambda d: np.zeros((4, 0), np.float32), "zero size"),
        ("bool", lambda d: np.zeros((4, 4, 3), bool), "bool.*" + _ACCEPTED),
        ("complex64", lambda d: np.zeros((4, 4, 3), np.complex64), "complex"),
        ("object", lambda d: np.full((4, 4, 3), None, dtype=object), "object"),
        ("strings", lambda d: np.full((4, 4, 3), "a"), "not an image dtype"),
        ("datetime64", lambda d: np.zeros((4, 4, 3), "datetime64[s]"), "not an image dtype"),
        ("float32 with a NaN",
         lambda d: np.where(np.eye(4, dtype=bool)[..., None], np.nan, np.zeros((4, 4, 3), np.float32)),
         "NaN or infinite"),
        ("float64 +inf", lambda d: np.full((4, 4, 3), np.inf), "NaN or infinite"),
        ("float64 -inf", lambda d: np.full((4, 4, 3), -np.inf), "NaN or infinite"),
        ("float 0..255 (forgot to divide)", lambda d: np.full((4, 4, 3), 200.0, np.float32), r"\[0, 1\]"),
        ("float -0.5", lambda d: np.full((4, 4, 3), -0.5), r"\[0, 1\]"),
        ("int8 with negative values", lambda d: np.full((4, 4, 3), -1, np.int8), r"values in \[-1, -1\]"),
        ("uint32 above 255", lambda d: np.full((4, 4, 3), 300, np.uint32), r"values in \[300, 300\]"),
    ]),
    *_converted("numpy", [
        ("float 1.0005 (rounding error)", lambda d: np.full((4, 4, 3), 1.0005, np.float32),
         _px(255, 255, 255), "clipped (tolerance 1e-3) then round(v * 255)"),
        ("float16 0.5", lambda d: np.full((4, 4, 3), 0.5, np.float16), _px(128, 128, 128), "round(v * 255)"),
        ("uint16 65535", lambda d: np.full((4, 4, 3), 65535, np.uint16), _px(255, 255, 255),
         "round(v / 257)"),
        ("int64 in [0, 255]", lambda d: np.full((4, 4, 3), 200, np.int64), _px(200, 200, 200),
         "taken as 8-bit values"),
        ("RGBA uint8 (4,4,4), alpha 0", lambda d: np.zeros((4, 4, 4), np.uint8), _px(255, 255, 255),
         "alpha composited on white"),
        ("grey (4,4,1)", lambda d: np.full((4, 4, 1), 9, np.uint8), _px(9, 9, 9), "grey repeated"),
    ]),
    Case("numpy", "above max_pixels", lambda d: np.zeros((100, 100, 3), np.uint8), ImageTooLargeError,
         "above the limit of 9,999", max_pixels=9999),
    # ------------------------------------------------------------------ torch tensors
    *_refused("torch", [
        ("HxWxC tensor (8,8,3)", lambda d: torch.zeros(8, 8, 3), r"permute\(2, 0, 1\)"),
        ("2 channels (2,8,8)", lambda d: torch.zeros(2, 8, 8), "2 channels"),
        ("RGBA tensor (4,8,8)", lambda d: torch.zeros(4, 8, 8), "4 channels; expected CxHxW with 1 or 3"),
        ("1-D tensor", lambda d: torch.zeros(8), "expected CxHxW"),
        ("batch of 2 inside to_rgb (2,3,8,8)", lambda d: torch.zeros(2, 3, 8, 8),
         "pass a BxCxHxW batch as the whole input"),
        ("zero size (3,0,8)", lambda d: torch.zeros(3, 0, 8), "zero size"),
        ("bool", lambda d: torch.zeros(3, 8, 8, dtype=torch.bool), "bool"),
        ("complex64", lambda d: torch.zeros(3, 8, 8, dtype=torch.complex64), "complex64, not an image dtype"),
        ("NaN", lambda d: torch.full((3, 8, 8), float("nan")), "NaN or infinite"),
        ("float 0..255", lambda d: torch.full((3, 8, 8), 255.0), r"\[0, 1\]"),
        ("int64 300", lambda d: torch.full((3, 8, 8), 300), r"values in \[300, 300\]"),
        ("meta tensor (no data)", lambda d: torch.zeros(3, 8, 8, device="meta"), "cannot read torch tensor"),
        ("sparse tensor", lambda d: torch.zeros(3, 8, 8).to_sparse(), "cannot read torch tensor"),
    ]),
    *_converted("torch", [
        ("bfloat16 0.5 with requires_grad",
         lambda d: torch.full((3, 8, 8), 0.5, dtype=torch.bfloat16, requires_grad=True),
         _px(128, 128, 128), "detached, round(v * 255)"),
        ("1xCxHxW tensor", lambda d: torch.ones(1, 3, 5, 7), _shape(5, 7, 3),
         "leading batch axis of 1 dropped"),
    ]),
    # ------------------------------------------------------------------ other objects
    *_refused("other", [
        ("PIL image of 0x0", lambda d: Image.new("RGB", (0, 0)), r"zero size \(0x0"),
        ("None", lambda d: None, "unsupported input type NoneType.*" + _ACCEPTED),
        ("int", lambda d: 12, "unsupported input type int"),
    ]),
    *_converted("other", [
        ("PNG file bytes (not a path)", lambda d: png_bytes(Image.new("RGB", (2, 3), (5, 6, 7))),
         lambda rgb: rgb.shape == (3, 2, 3) and _px(5, 6, 7)(rgb), "read exactly like the file"),
    ]),
    *_refused("other", [
        ("bytes that are no image file", lambda d: b"GIF89 is not an image",
         "not an image file PIL can identify"),
        ("nested Python lists of pixels", lambda d: [[[0, 0, 0]]], "unsupported input type list"),
    ]),
    # ------------------------------------------------------------------ lists and batches
    *_refused("list", [
        ("empty list", lambda d: [], "empty list of images"),
        ("empty tuple", lambda d: (), "empty list of images"),
        ("empty batch tensor (0,3,8,8)", lambda d: torch.zeros(0, 3, 8, 8),
         r"empty batch of images \(shape \(0, 3, 8, 8\)\)"),
        ("empty batch array (0,8,8,3)", lambda d: np.zeros((0, 8, 8, 3), np.uint8), "empty batch of images"),
    ], listed=True),
    Case(
        "list",
        "mixed list [good, missing, NaN array, good]",
        lambda d: [_GOOD, d / "missing.jpg", np.full((4, 4, 3), np.nan), torch.zeros(3, 4, 4)],
        listed=True,
        check_items=lambda items: (
            [x.ok for x in items] == [True, False, False, True]
            and items[2].name == "item 2"
            and str(items[2].error).startswith("item 2: ")
            and items[1].name.endswith("missing.jpg")
        ),
        conversion="4 items in input order; items 1 and 2 carry their InvalidImageError, "
        "0 and 3 their pixels",
    ),
    Case(
        "list",
        "a batch tensor inside a list",
        lambda d: [torch.zeros(2, 3, 4, 4), _GOOD],
        listed=True,
        check_items=lambda items: (
            [x.ok for x in items] == [False, True] and "whole input" in str(items[0].error)
        ),
        conversion="item 0 marked (pass the batch as the whole input), item 1 kept",
    ),
    Case("list", "a generator of images", lambda d: (x for x in [_GOOD]), InvalidImageError,
         "image: unsupported input type generator", listed=True),
]


# ----------------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """What one case really got."""

    error: Exception | None
    rgb: np.ndarray | None
    items: list[ImageItem] | None


def run(case: Case, folder: Path) -> Outcome:
    """Build the case's input in ``folder`` and convert it; typed errors are returned, others raise."""
    value = case.make(folder)
    kw = {} if case.max_pixels is None else {"max_pixels": case.max_pixels}
    try:
        if case.listed:
            return Outcome(None, None, to_rgb_list(value, **kw))  # type: ignore[arg-type]
        return Outcome(None, to_rgb(value, **kw), None)  # type: ignore[arg-type]
    except InvalidImageError as exc:
        return Outcome(exc, None, None)


def excerpt(message: str, folder: Path, limit: int = 160) -> str:
    """The message with the scratch folder removed and the long list of accepted inputs shortened."""
    text = message.replace(str(folder) + os.sep, "")
    text = re.sub(r"; accepted: .*", "; accepted: ... (the list of accepted inputs)", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table() -> str:
    """The markdown table of every case and what it really got (run in a scratch folder)."""
    lines = ["| input | kind | outcome |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(CASES):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            got = run(case, folder)
            if got.error is not None:
                what = f"`{type(got.error).__name__}`: {excerpt(str(got.error), folder)}"
            elif got.items is not None:
                what = f"converted per item: {case.conversion}"
            else:
                assert got.rgb is not None
                what = f"converted, {got.rgb.shape} uint8: {case.conversion}"
            what = what.replace("|", "\\|")
            lines.append(f"| {case.label} | {case.group} | {what} |")
    return "\n".join(lines)


def prefix_study() -> str:
    """Read every prefix of one JPEG and one PNG (the files of the property tests): what each gets.

    The exhaustive version of ``test_every_prefix_of_a_*``: run with ``--prefixes``.
    """
    rng_jpeg = jpeg_bytes(noise(48, 40))
    rng_png = png_bytes(Image.fromarray(noise(48, 40)))
    full = to_rgb(Image.open(io.BytesIO(rng_png)))
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, data in (("JPEG", rng_jpeg), ("PNG", rng_png)):
            refused = decoded = identical = 0
            first_decoded = None
            path = Path(tmp) / f"cut.{kind.lower()}"
            for cut in range(len(data)):
                path.write_bytes(data[:cut])
                try:
                    rgb = to_rgb(path)
                except InvalidImageError:
                    refused += 1
                    continue
                decoded += 1
                first_decoded = cut if first_decoded is None else first_decoded
                identical += kind == "PNG" and bool(np.array_equal(rgb, full))
            tail = "" if first_decoded is None else f"; decoded from {len(data) - first_decoded} bytes short"
            lines.append(
                f"{kind} of {len(data)} bytes: {len(data)} prefixes, {refused} refused, {decoded} decoded "
                f"({identical} identical to the whole file){tail}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # PIL's warnings about the malformed EXIF row
    sys.stdout.write((prefix_study() if "--prefixes" in sys.argv else table()) + "\n")
