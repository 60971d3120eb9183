"""Property tests: whatever bytes, arrays or lists come in, the answer is an RGB array or a typed error.

Never an untyped exception from PIL, numpy or torch, and never a silently wrong conversion of a
valid input. ``hypothesis.event`` records what each example got (see ``--hypothesis-show-statistics``).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

from latentface_sdk.errors import InvalidImageError
from latentface_sdk.images import FLOAT_TOLERANCE, to_rgb, to_rgb_list

from ._budget import examples
from .catalogue import jpeg_bytes, noise, png_bytes

EXTENSIONS = [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".webp"]
SIGNATURES = [
    b"",
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"RIFF\x00\x00\x00\x00WEBP",
]

# Valid files whose prefixes and damaged copies are tried.
_JPEG = jpeg_bytes(noise(48, 40))
_PNG = png_bytes(Image.fromarray(noise(48, 40)))
_PNG_PIXELS = np.asarray(Image.open(io.BytesIO(_PNG)).convert("RGB"))
_JPEG_PIXELS = np.asarray(Image.open(io.BytesIO(_JPEG)).convert("RGB"))

# Damaged and random bytes can carry a broken EXIF block; PIL warns about it while reading.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

#: The last bytes of a one-IDAT PNG that hold no pixel data: zlib's Adler-32 (4), the IDAT CRC (4) and
#: the IEND chunk (12). PIL does not verify those checksums, so a PNG cut there still decodes, identically.
PNG_CHECK_TAIL = 20

_settings = settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_bytes(data: bytes, suffix: str) -> np.ndarray | InvalidImageError:
    """Write ``data`` to a temporary file and read it; a typed refusal is returned, anything else raises."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        try:
            rgb = to_rgb(path)
        except InvalidImageError as exc:
            assert str(exc).startswith(str(path)), str(exc)
            return exc
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    return rgb


# ------------------------------------------------------------------------------------------ files


@_settings
@given(head=st.sampled_from(SIGNATURES), body=st.binary(max_size=3000), suffix=st.sampled_from(EXTENSIONS))
def test_random_bytes_are_refused_with_a_typed_error(head: bytes, body: bytes, suffix: str) -> None:
    got = _read_bytes(head + body, suffix)
    if not isinstance(got, InvalidImageError):
        event("decoded (random bytes after a signature can form a tiny valid image)")
        return
    event(f"refused: {type(got).__name__}")
    if head:
        # a file that starts like an image is called damaged (or too large), not "not an image"
        assert "not an image file PIL can identify" not in str(got), str(got)


@_settings
@given(cut=st.integers(min_value=0, max_value=len(_JPEG) - 1))
def test_every_prefix_of_a_jpeg_is_refused(cut: int) -> None:
    got = _read_bytes(_JPEG[:cut], ".jpg")
    assert isinstance(got, InvalidImageError), f"JPEG cut at {cut} of {len(_JPEG)} bytes was decoded"
    event("truncated or corrupt" if "truncated or corrupt" in str(got) else "empty or not recognisable")
    if cut >= 3:  # the JPEG signature is 3 bytes: shorter files are not recognisable
        assert "truncated or corrupt" in str(got), str(got)


@_settings
@given(cut=st.integers(min_value=0, max_value=len(_PNG) - 1))
def test_every_prefix_of_a_png_is_refused_unless_all_pixels_are_there(cut: int) -> None:
    got = _read_bytes(_PNG[:cut], ".png")
    if cut >= len(_PNG) - PNG_CHECK_TAIL:  # only checksums and the trailer are missing: every pixel is there
        assert not isinstance(got, InvalidImageError), str(got)
        np.testing.assert_array_equal(got, _PNG_PIXELS)
        event("only checksums/trailer missing: decoded, identical")
        return
    assert isinstance(got, InvalidImageError), f"PNG cut at {cut} of {len(_PNG)} bytes was decoded"
    if cut >= 8:  # the PNG signature is 8 bytes: shorter files are not recognisable
        assert "truncated or corrupt" in str(got), str(got)
    event("truncated or corrupt" if "truncated or corrupt" in str(got) else "empty or not recognisable")


@_settings
@given(
    fmt=st.sampled_from(["jpeg", "png"]),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6
    ),
)
def test_damaged_files_are_refused_or_decoded_at_their_size(fmt: str, flips: list[tuple[float, int]]) -> None:
    data = bytearray(_JPEG if fmt == "jpeg" else _PNG)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    got = _read_bytes(bytes(data), "." + fmt)
    if isinstance(got, InvalidImageError):
        event(f"{fmt}: refused")
        return
    # A JPEG has no checksum: libjpeg decodes damaged scan data into damaged pixels. Whatever is
    # decoded keeps a size the header declares (a damaged header can declare another one).
    original = _PNG_PIXELS if fmt == "png" else _JPEG_PIXELS
    if got.shape != original.shape:
        event(f"{fmt}: decoded at another size")
    else:
        event(f"{fmt}: decoded, {'identical' if np.array_equal(got, original) else 'pixels differ'}")
    assert got.size > 0


# ---------------------------------------------------------------------------------------- arrays

_DTYPES = [
    np.uint8,
    np.uint16,
    np.uint32,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
    np.complex64,
]


def _expected(arr: np.ndarray) -> tuple[str, np.ndarray | None]:
    """The documented rule, written independently: ("accept", rgb) or ("refuse", None)."""
    a = arr[0] if arr.ndim == 4 and arr.shape[0] == 1 else arr
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        return "refuse", None
    kind = a.dtype.kind
    if kind in "bc":
        return "refuse", None
    if a.dtype == np.uint8:
        v = a.astype(np.int64)
    elif a.dtype == np.uint16:
        v = np.floor(a.astype(np.float64) / 257 + 0.5).astype(np.int64)
    elif kind in "ui":
        if a.min() < 0 or a.max() > 255:
            return "refuse", None
        v = a.astype(np.int64)
    else:
        f = a.astype(np.float64)
        if not np.isfinite(f).all() or f.min() < -FLOAT_TOLERANCE or f.max() > 1 + FLOAT_TOLERANCE:
            return "refuse", None
        v = np.floor(np.clip(f, 0, 1) * 255 + 0.5).astype(np.int64)
    if v.shape[2] == 1:
        v = np.repeat(v, 3, axis=2)
    elif v.shape[2] == 4:
        alpha = v[:, :, 3:4]
        v = (v[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return "accept", v


@st.composite
def any_array(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(_DTYPES))
    valid = st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3, 4]))
    shape = draw(
        st.one_of(
            valid,
            st.tuples(st.integers(1, 5), st.integers(1, 5)),
            st.tuples(st.just(1), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 3])),
            array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
        )
    )
    if np.dtype(dtype).kind == "f":
        width = 16 if dtype == np.float16 else 32
        if draw(st.integers(0, 3)) > 0:  # mostly valid values, sometimes anything (NaN, inf, 255.0, -3)
            return draw(arrays(dtype, shape, elements=st.floats(0.0, 1.0, width=width)))
        return draw(
            arrays(dtype, shape, elements=st.floats(allow_nan=True, allow_infinity=True, width=width))
        )
    if np.dtype(dtype).kind in "ui" and dtype not in (np.uint8, np.uint16):
        top = min(255, int(np.iinfo(dtype).max))
        bound = st.integers(0, top) if draw(st.booleans()) else None
        return draw(arrays(dtype, shape, elements=bound))
    return draw(arrays(dtype, shape))


def _check_conversion(
    value: np.ndarray | torch.Tensor, verdict: str, want: np.ndarray | None, label: str, tol: int
) -> None:
    """``to_rgb(value)`` refuses it with a typed error naming the input when ``verdict`` is ``"refuse"``;
    otherwise it gives uint8 pixels of ``want``'s shape, each within ``tol`` of ``want``."""
    try:
        got = to_rgb(value)
    except InvalidImageError as exc:
        event("refused")
        assert verdict == "refuse", f"{label} refused: {exc}"
        assert str(exc).startswith("image: ")
        return
    event("accepted")
    assert verdict == "accept" and want is not None, f"{label} accepted"
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(np.int64) - want).max(initial=0) <= tol


@settings(max_examples=examples(50), deadline=None)
@given(arr=any_array())
def test_any_numpy_array_is_converted_by_the_documented_rule_or_refused(arr: np.ndarray) -> None:
    verdict, want = _expected(arr)
    tol = 1 if arr.dtype.kind == "f" else 0  # float32 rounding of v * 255
    _check_conversion(arr, verdict, want, f"{arr.dtype} {arr.shape}", tol)


@settings(max_examples=examples(40), deadline=None)
@given(
    arr=any_array(),
    torch_dtype=st.sampled_from([None, torch.bfloat16, torch.float16]),
)
def test_any_tensor_is_converted_like_its_numpy_twin_or_refused(
    arr: np.ndarray, torch_dtype: torch.dtype | None
) -> None:
    if arr.dtype in (np.uint16, np.uint32):  # torch has no such tensors: the values go in as int64
        arr = arr.astype(np.int64)
    tensor = torch.from_numpy(np.ascontiguousarray(arr))
    if tensor.ndim >= 3:
        tensor = tensor.movedim(-1, -3)  # HxWxC -> CxHxW
    if torch_dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(torch_dtype)
    twin = tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor
    ref = twin.movedim(-3, -1).numpy() if twin.ndim >= 3 else twin.numpy()
    verdict, want = _expected(ref)
    if tensor.ndim >= 3 and tensor.shape[-3] == 4:  # tensors take 1 or 3 channels, no alpha
        verdict, want = "refuse", None
    _check_conversion(tensor, verdict, want, f"{tensor.dtype} {tuple(tensor.shape)}", 1)


# ------------------------------------------------------------------------------------------- lists

_GOOD: list[tuple[str, object]] = [
    ("uint8", np.full((5, 4, 3), 7, np.uint8)),
    ("float", np.full((5, 4), 0.25, np.float32)),
    ("tensor", torch.full((3, 5, 4), 0.5)),
    ("pil", Image.new("RGBA", (4, 5), (1, 2, 3, 255))),
]
_BAD: list[tuple[str, object]] = [
    ("nan", np.full((5, 4, 3), np.nan)),
    ("hwc tensor", torch.zeros(5, 4, 3)),
    ("none", None),
    ("empty", np.zeros((0, 4, 3), np.uint8)),
    ("255 float", np.full((5, 4, 3), 255.0)),
]


@settings(max_examples=examples(40), deadline=None)
@given(picks=st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=1, max_size=12))
def test_mixed_lists_keep_order_and_mark_each_bad_item(
    picks: list[tuple[bool, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("mixed")
    items: list[object] = []
    for good, k in picks:
        pool = _GOOD if good else _BAD
        items.append(pool[k % len(pool)][1])
    # a good and a bad file among them, when there is room
    good_file = folder / "good.png"
    Image.new("RGB", (4, 5), (9, 9, 9)).save(good_file)
    items.append(good_file)
    items.append(folder / "missing.jpg")
    out = to_rgb_list(items)  # type: ignore[arg-type]
    assert len(out) == len(items)
    for i, (item, result) in enumerate(zip(items, out, strict=True)):
        expected_ok = (i == len(items) - 2) or (i < len(picks) and picks[i][0])
        assert result.ok == expected_ok, (i, result.name, result.error)
        assert result.name == (str(item) if isinstance(item, Path) else f"item {i}")
        if result.ok:
            assert result.rgb is not None and result.rgb.shape == (5, 4, 3) and result.error is None
            single = to_rgb(item)  # type: ignore[arg-type]
            np.testing.assert_array_equal(result.rgb, single)
        else:
            assert isinstance(result.error, InvalidImageError) and str(result.error).startswith(result.name)
    bad = sum(not r.ok for r in out)
    event(
        "1 bad item (the missing file)"
        if bad == 1
        else "2-4 bad items"
        if bad <= 4
        else "5 or more bad items"
    )
