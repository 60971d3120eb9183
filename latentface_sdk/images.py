"""Any accepted image input -> an RGB ``uint8`` numpy array ``(H, W, 3)``.

Every conversion and every refusal of the SDK lives here, so that the rules are stated once:

Accepted inputs (:data:`ImageInput`)
    * a path (``str`` or ``os.PathLike``) to any image file PIL can read;
    * the bytes of such a file (``bytes``, ``bytearray``, ``memoryview``: an upload, a blob store's
      object, Ray Data's ``read_binary_files``), read exactly like the file;
    * a ``PIL.Image.Image``;
    * a numpy array ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` (a leading batch axis of 1 is dropped);
    * a torch tensor ``CxHxW`` with 1 or 3 channels, or ``HxW`` (a leading batch axis of 1 is dropped).

Conversions
    * ``uint8`` is taken as is; ``uint16`` is scaled to 8 bit (``round(v / 257)``, so 65535 -> 255);
      other integer dtypes are accepted when every value lies in ``[0, 255]``.
    * Floats must be finite and in ``[0, 1]`` (a tolerance of :data:`FLOAT_TOLERANCE` is clipped);
      they become ``round(v * 255)``. So ``uint8`` -> ``/ 255`` float -> back is exact.
    * Grey (1 channel) is repeated to RGB.
    * **Alpha is composited on white** (RGBA, LA, palette with transparency, ``HxWx4`` arrays):
      transparent pixels of a cut-out face keep whatever colour the file stored there, often black
      or garbage, so dropping alpha would show it; white is what image viewers show.
    * Files: EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`; a PIL image passed in
      gets the same, so a path and ``Image.open(path)`` give the same array). A malformed EXIF block
      is ignored (the pixels are kept as stored). 16-bit grey (``I;16``) is scaled like ``uint16``;
      32-bit integer images (``I``) are read as 16-bit data (values must lie in ``[0, 65535]``);
      float images (``F``) follow PIL's own convention of a ``[0, 255]`` scale (clipped); CMYK,
      YCbCr, LAB, HSV and bilevel images go through PIL's RGB conversion.

Refusals raise :class:`~latentface_sdk.errors.InvalidImageError` with a message that starts with the
input's name (the path, or ``item 3`` in a list) and says what was wrong and what is accepted:
missing, empty, truncated or non-image files, wrong number of dimensions or channels, ``bool`` /
complex / object dtypes, NaN or infinite values, floats outside ``[0, 1]`` and zero-size images. A video
file (known by its first bytes, or by its extension when PIL cannot read it) raises
:class:`VideoFileError`, which says to read it with :meth:`~latentface_sdk.FaceEncoder.encode_video` or
``latentface video``.
Images with more than ``max_pixels`` pixels raise :class:`~latentface_sdk.errors.ImageTooLargeError`;
for files the size is read from the header *before* any pixel is decoded (decompression-bomb guard).
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError, LatentFaceError, VideoFileError

#: What the SDK accepts as one image.
ImageInput: TypeAlias = (str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray
                         | torch.Tensor)

#: Images above this many pixels are refused (50 megapixels: a 8660x5773 photo still passes).
DEFAULT_MAX_PIXELS = 50_000_000

#: How far outside [0, 1] a float image may stray (rounding error) before it is refused; it is clipped.
FLOAT_TOLERANCE = 1e-3

ACCEPTED = (
    "accepted: a path to an image file or its bytes, a PIL image, a numpy array HxW / HxWx1 / HxWx3 / HxWx4 "
    "(uint8, uint16, or float in [0, 1]), or a torch tensor CxHxW with 1 or 3 channels "
    "(uint8 or float in [0, 1])"
)

#: Extensions of video files, and the container each names: such a file is refused as an image with a
#: pointer to the video API (:func:`video_kind`).
VIDEO_EXTENSIONS: dict[str, str] = {
    ".mp4": "MP4", ".m4v": "MP4", ".mov": "QuickTime", ".qt": "QuickTime", ".3gp": "3GP", ".3g2": "3GP",
    ".mkv": "Matroska", ".webm": "WebM", ".avi": "AVI", ".wmv": "ASF/WMV", ".asf": "ASF/WMV",
    ".flv": "FLV", ".mpg": "MPEG", ".mpeg": "MPEG", ".m2v": "MPEG", ".vob": "MPEG", ".ts": "MPEG-TS",
    ".mts": "MPEG-TS", ".m2ts": "MPEG-TS", ".ogv": "Ogg",
}

#: ISO base media brands (bytes 8-12 after ``ftyp``) of still images (HEIF, AVIF): not videos.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
                           b"avif", b"avis"})


def video_kind(path: str | os.PathLike[str] | None = None, head: bytes | None = None) -> str | None:
    """The video container a file is (``"MP4"``, ``"Matroska"``, ...), or ``None`` for anything else.

    ``head`` is the file's first bytes (at least 12; read from ``path`` when not given and ``path`` is a
    readable file): MP4/QuickTime/3GP (an ``ftyp`` box whose brand is not a still image's), Matroska/WebM,
    AVI, FLV, ASF and MPEG program streams are known by them. Otherwise the extension of ``path`` decides
    (:data:`VIDEO_EXTENSIONS`), so a damaged ``clip.mp4`` is still called a video.
    """
    if head is None and path is not None:
        try:
            with open(os.fspath(path), "rb") as fh:
                head = fh.read(12)
        except OSError:
            head = None
    if head:
        kind = _video_signature(head)
        if kind is not None or _signature(head) is not None:
            return kind  # the bytes decide: a video, or an image whatever its extension
    if path is None:
        return None
    return VIDEO_EXTENSIONS.get(Path(os.fspath(path)).suffix.lower())


def _video_signature(head: bytes) -> str | None:
    """The video container a file starts like (by its first 12 bytes ``head``), or ``None``."""
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        brand = head[8:12]
        return "QuickTime" if brand == b"qt  " else "3GP" if brand.startswith(b"3g") else "MP4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "MPEG"
    return None


def video_error(name: str, kind: str) -> VideoFileError:
    """The :class:`VideoFileError` for the input ``name``, a ``kind`` video (see :func:`video_kind`)."""
    return VideoFileError(
        f"{name}: is a video file ({kind}), not an image: read its frames with "
        f"FaceEncoder.encode_video(...) or `latentface video VIDEO -o rows.npz` (docs/video-and-3d.md)"
    )


@dataclass
class ImageItem:
    """One input of a (possibly batched) call after conversion.

    Exactly one of ``rgb`` (``uint8`` ``(H, W, 3)``) and ``error`` is set. ``name`` is the path
    string for paths and ``item {i}`` otherwise; it is what error messages and results refer to.
    """

    name: str
    rgb: np.ndarray | None
    error: LatentFaceError | None = None

    @property
    def ok(self) -> bool:
        """True when the input was converted."""
        return self.rgb is not None


# --------------------------------------------------------------------------------------------- public


def to_rgb(item: ImageInput, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert one image input to a contiguous RGB ``uint8`` array ``(H, W, 3)``.

    ``name`` is used in error messages (default: the path for paths, else ``"image"``).
    Raises :class:`InvalidImageError` (or its child :class:`ImageTooLargeError`) with the reason.
    """
    if isinstance(item, (str, os.PathLike)):
        label = name if name is not None else os.fspath(item)
        return _finish(_read_path(item, str(label), max_pixels))
    label = name if name is not None else "image"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _finish(_read_bytes(bytes(item), label, max_pixels))
    if isinstance(item, Image.Image):
        return _finish(_from_pil(item, label, max_pixels))
    if isinstance(item, torch.Tensor):
        return _finish(_from_torch(item, label, max_pixels))
    if isinstance(item, np.ndarray):
        return _finish(_from_numpy(item, label, max_pixels, what="numpy array"))
    raise InvalidImageError(f"{label}: unsupported input type {type(item).__name__}; {ACCEPTED}")


def split_inputs(images: ImageInput | Sequence[ImageInput]) -> tuple[list[Any], bool]:
    """The inputs of a call as a list, and whether the call was for a single image.

    A list or tuple is many images; a 4-D torch tensor ``BxCxHxW`` or numpy array ``BxHxWxC`` is split
    into its ``B`` images; anything else is one image. An empty list or batch raises
    :class:`InvalidImageError`.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise InvalidImageError(f"empty list of images: pass at least one image; {ACCEPTED}")
        return list(images), False
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        if images.shape[0] == 0:
            raise InvalidImageError(
                f"empty batch of images (shape {tuple(images.shape)}): pass at least one image"
            )
        return [images[i] for i in range(images.shape[0])], False
    return [images], True


def input_name(item: object, index: int, single: bool) -> str:
    """How results and errors name an input: its path, ``"image"`` for one other input, else
    ``"item {index}"``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return "image" if single else f"item {index}"


def convert_items(
    items: Sequence[Any], *, start: int = 0, single: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[ImageItem]:
    """:func:`to_rgb` of every item, in order; the ``k``-th is named as input ``start + k``.

    For a batch a refused item is returned with its error (nothing dropped); for a single image
    (``single=True``) the error is raised, the public rule of every ``FaceEncoder`` method.
    """
    return [_convert_one(x, start + k, single, max_pixels) for k, x in enumerate(items)]


def _convert_one(item: Any, index: int, single: bool, max_pixels: int) -> ImageItem:
    """:func:`to_rgb` of input ``index`` as an :class:`ImageItem` (``single``: its error is raised)."""
    name = input_name(item, index, single)
    try:
        return ImageItem(name=name, rgb=to_rgb(item, name=name, max_pixels=max_pixels))
    except LatentFaceError as exc:
        if single:
            raise
        return ImageItem(name=name, rgb=None, error=exc)


def convert_batches(
    items: Sequence[Any], batch_size: int, *, single: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0, ahead: int = 2,
) -> Generator[tuple[int, list[ImageItem]], None, None]:
    """``(start, convert_items(items[start:start + batch_size]))`` for consecutive batches, in order.

    ``workers > 0`` decodes in that many threads (PIL releases the GIL while it decodes), at most
    ``ahead`` batches beyond the one being consumed, so memory stays bounded; every item gets the same
    :class:`ImageItem` (or, for ``single``, the same raised error) as without threads. ``workers=0``
    converts each batch when it is asked for, in the calling thread. Closing the iterator early cancels
    the decoding not yet started.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive (got {batch_size})")
    starts = range(0, len(items), batch_size)
    if workers <= 0 or single or len(items) <= 1:
        for start in starts:
            yield start, convert_items(items[start:start + batch_size], start=start, single=single,
                                       max_pixels=max_pixels)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="latentface-decode")
    pending: deque[tuple[int, list[Future[ImageItem]]]] = deque()
    try:
        queued = iter(starts)
        for start in queued:
            pending.append((start, [pool.submit(_convert_one, items[i], i, False, max_pixels)
                                    for i in range(start, min(start + batch_size, len(items)))]))
            if len(pending) > ahead:
                first, futures = pending.popleft()
                yield first, [f.result() for f in futures]
        while pending:
            first, futures = pending.popleft()
            yield first, [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def to_rgb_list(
    images: ImageInput | Sequence[ImageInput], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[ImageItem]:
    """Every input of a call converted, as ``FaceEncoder`` converts them (:func:`split_inputs`, then
    :func:`convert_items`): a batch's refused items carry their error; one bad single image raises."""
    items, single = split_inputs(images)
    return convert_items(items, single=single, max_pixels=max_pixels)


def downscale_for_detection(rgb: np.ndarray, max_side: int = 1280) -> tuple[np.ndarray, float]:
    """Shrink ``rgb`` so its long side is at most ``max_side`` (bilinear, antialiased).

    Returns ``(image, scale)``; coordinates found on the small image map back to the original by
    dividing by ``scale`` (``scale == 1.0`` and the input itself when no resize was needed).
    """
    if max_side <= 0:
        raise ValueError(f"max_side must be positive (got {max_side})")
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    if long_side <= max_side:
        return rgb, 1.0
    scale = max_side / long_side
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(small)), scale


# ------------------------------------------------------------------------------------------- internals


def _finish(rgb: np.ndarray) -> np.ndarray:
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    return np.ascontiguousarray(rgb)


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name}: image has zero size ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,} (decompression-bomb guard); downscale it or raise max_pixels"
        )


def _read_path(path: str | os.PathLike, name: str, max_pixels: int) -> np.ndarray:
    p = Path(os.fspath(path))
    if not p.exists():
        raise InvalidImageError(f"{name}: no such file")
    if p.is_dir():
        raise InvalidImageError(f"{name}: is a directory, not an image file")
    try:
        if p.stat().st_size == 0:
            raise InvalidImageError(f"{name}: file is empty (0 bytes)")
        fh = open(p, "rb")
    except PermissionError as exc:
        raise InvalidImageError(f"{name}: cannot read the file (permission denied)") from exc
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot read the file ({exc})") from exc
    with fh:
        return _decode_file(fh, name, max_pixels, suffix=p.suffix)


def _read_bytes(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise InvalidImageError(f"{name}: file is empty (0 bytes)")
    return _decode_file(io.BytesIO(data), name, max_pixels)


def _decode_file(fh: BinaryIO, name: str, max_pixels: int, suffix: str = "") -> np.ndarray:
    """Decode an open image file (a file on disk or bytes in memory) with the refusals of :func:`to_rgb`;
    ``suffix`` is a file's extension (a video's names the video API when PIL cannot read it)."""
    try:
        with Image.open(fh) as img:
            # The header is parsed, no pixel decoded yet: refuse bombs before they cost memory.
            _check_size(img.size[0], img.size[1], name, max_pixels)
            return _from_pil(img, name, max_pixels)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: refused by PIL's decompression-bomb guard ({exc})") from exc
    except UnidentifiedImageError as exc:
        fh.seek(0)
        head = fh.read(12)
        kind = _signature(head)
        if kind is not None:  # the file starts like an image but its header cannot be parsed
            raise InvalidImageError(
                f"{name}: starts like a {kind} file but its header cannot be read: the image data is "
                f"truncated or corrupt (or declares a zero width or height)"
            ) from exc
        video = _video_signature(head) or VIDEO_EXTENSIONS.get(suffix.lower())
        if video is not None:
            raise video_error(name, video) from exc
        raise InvalidImageError(
            f"{name}: not an image file PIL can identify (wrong extension, or not an image); {ACCEPTED}"
        ) from exc
    except InvalidImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise InvalidImageError(f"{name}: image data is truncated or corrupt ({exc})") from exc


#: File signatures of common image formats, to tell a damaged image from a file that is not one.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _signature(head: bytes) -> str | None:
    """The image format a file starts like (by its first 12 bytes ``head``), or ``None``."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    return None


def _from_pil(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    _check_size(img.size[0], img.size[1], name, max_pixels)
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: refused by PIL's decompression-bomb guard ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise InvalidImageError(f"{name}: image data is truncated or corrupt ({exc})") from exc
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not lose valid pixels
        pass
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode == "L":
        return _channels(np.asarray(img)[:, :, None], name, "image")
    if mode == "1":
        return _channels(np.asarray(img.convert("L"))[:, :, None], name, "image")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _channels(np.asarray(img.convert("RGBA")), name, "image")
    if mode.startswith("I;16"):
        return _from_numpy(np.asarray(img).astype(np.uint16), name, max_pixels, what="16-bit image")
    if mode == "I":
        data = np.asarray(img)
        lo, hi = int(data.min()), int(data.max())
        if lo < 0 or hi > 65535:
            raise InvalidImageError(
                f"{name}: 32-bit integer image with values in [{lo}, {hi}]; integer images are read as "
                f"16-bit data and must lie in [0, 65535]"
            )
        return _from_numpy(data.astype(np.uint16), name, max_pixels, what="32-bit integer image")
    if mode == "F":
        data = np.asarray(img, dtype=np.float32)
        if not np.isfinite(data).all():
            raise InvalidImageError(f"{name}: float image contains NaN or infinite values")
        grey = np.rint(np.clip(data, 0.0, 255.0)).astype(np.uint8)
        return _channels(grey[:, :, None], name, "image")
    try:
        return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"{name}: cannot convert image mode {mode!r} to RGB ({exc})") from exc


def _from_torch(t: torch.Tensor, name: str, max_pixels: int) -> np.ndarray:
    shape = tuple(t.shape)
    if t.dtype == torch.bool or t.is_complex():
        raise InvalidImageError(f"{name}: torch tensor has dtype {t.dtype}, not an image dtype; {ACCEPTED}")
    if t.ndim == 4 and shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise InvalidImageError(
            f"{name}: torch tensor has shape {shape}; expected CxHxW (or HxW, or 1xCxHxW); "
            f"pass a BxCxHxW batch as the whole input, not inside a list"
        )
    if t.shape[0] not in (1, 3):
        hint = " (it looks like HxWxC: use tensor.permute(2, 0, 1))" if t.shape[-1] in (1, 3, 4) else ""
        raise InvalidImageError(
            f"{name}: torch tensor has shape {shape} with {t.shape[0]} channels; expected CxHxW with "
            f"1 or 3 channels{hint}"
        )
    t = t.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    try:
        arr = t.cpu().numpy()
    except (TypeError, RuntimeError) as exc:
        raise InvalidImageError(f"{name}: cannot read torch tensor of dtype {t.dtype} ({exc})") from exc
    return _from_numpy(np.moveaxis(arr, 0, -1), name, max_pixels, what="torch tensor", shape=shape)


def _from_numpy(
    arr: np.ndarray,
    name: str,
    max_pixels: int,
    *,
    what: str,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Array laid out HxW or HxWxC (any dtype) -> RGB uint8."""
    arr = np.asarray(arr)
    shown = shape if shape is not None else arr.shape
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InvalidImageError(
            f"{name}: {what} has shape {shown} ({arr.ndim} dimensions); expected HxW, HxWx1, HxWx3 or "
            f"HxWx4; pass a BxHxWxC batch as the whole input, not inside a list"
        )
    if arr.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"{name}: {what} has shape {shown} with {arr.shape[2]} channels; expected 1, 3 or 4 channels "
            f"(HxWxC for numpy, CxHxW for torch)"
        )
    _check_size(arr.shape[1], arr.shape[0], name, max_pixels)
    return _channels(_to_uint8(arr, name, what), name, what)


def _to_uint8(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        raise InvalidImageError(f"{name}: {what} has dtype bool (a mask, not an image); {ACCEPTED}")
    if kind not in "uif":
        raise InvalidImageError(f"{name}: {what} has dtype {arr.dtype}, not an image dtype; {ACCEPTED}")
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "ui":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise InvalidImageError(
                f"{name}: {what} of dtype {arr.dtype} has values in [{lo}, {hi}]; integer images must be "
                f"uint8 (or any integer dtype with values in [0, 255]) or uint16"
            )
        return arr.astype(np.uint8)
    # Checked in the input's own precision: a finite float64 above float32's range is out of [0, 1],
    # not "infinite".
    if not np.isfinite(arr).all():
        raise InvalidImageError(f"{name}: {what} contains NaN or infinite values")
    lo_f, hi_f = float(arr.min()), float(arr.max())
    if lo_f < -FLOAT_TOLERANCE or hi_f > 1.0 + FLOAT_TOLERANCE:
        raise InvalidImageError(
            f"{name}: float {what} has values in [{lo_f:.4g}, {hi_f:.4g}]; float images must lie in "
            f"[0, 1] (divide 0-255 data by 255, or pass uint8)"
        )
    data = np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)
    return np.rint(data * 255.0).astype(np.uint8)


def _channels(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    """uint8 HxWx{1,3,4} -> HxWx3 (grey repeated, alpha composited on white)."""
    c = arr.shape[2]
    if c == 3:
        return arr
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 4:
        rgb = arr[:, :, :3].astype(np.uint32)
        alpha = arr[:, :, 3:4].astype(np.uint32)
        out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
        return out.astype(np.uint8)
    raise InvalidImageError(f"{name}: {what} has {c} channels; expected 1, 3 or 4")


__all__ = [
    "ACCEPTED",
    "DEFAULT_MAX_PIXELS",
    "FLOAT_TOLERANCE",
    "ImageInput",
    "ImageItem",
    "VIDEO_EXTENSIONS",
    "VideoFileError",
    "convert_batches",
    "convert_items",
    "downscale_for_detection",
    "input_name",
    "split_inputs",
    "to_rgb",
    "to_rgb_list",
    "video_error",
    "video_kind",
]
