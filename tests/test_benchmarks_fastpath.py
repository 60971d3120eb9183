"""The fast path (channels-last convolution weights in the encoders and MTCNN) gives the plain path's results.

``FaceEncoder.use_channels_last`` is on by default; ``benchmarks/encode_speed.py`` and
``benchmarks/pipeline_speed.py`` measure both layouts. Here the two layouts of one model must agree
within float rounding: latents, boxes and scores, frontalized images, and the saved weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentface_sdk import FaceEncoder
from latentface_sdk.config import ModelConfig
from latentface_sdk.detection import crop_aligned
from latentface_sdk.images import to_rgb
from latentface_sdk.pipeline import crops_to_input

ATOL = 1e-4  # latents are O(1); float32 rounding of reordered sums is ~1e-6


@pytest.fixture(scope="module")
def enc() -> FaceEncoder:
    torch.manual_seed(0)
    return FaceEncoder.from_config(ModelConfig(name="fastpath-test"))


def _encoder_weights(enc: FaceEncoder) -> list[torch.Tensor]:
    ae = enc.autoencoder
    # 1x1 kernels: both layouts
    return [p for m in ae.encoders() for p in m.parameters() if p.ndim == 4 and p.shape[2] * p.shape[3] > 1]


def _both(enc: FaceEncoder, fn):  # type: ignore[no-untyped-def]
    """``fn()`` with the fast path on, then off (left on afterwards)."""
    try:
        enc.use_channels_last(True)
        fast = fn()
        enc.use_channels_last(False)
        plain = fn()
    finally:
        enc.use_channels_last(True)
    return fast, plain


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> None:
    assert a.shape == b.shape
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.allclose(a.nan_to_num(0.0), b.nan_to_num(0.0), rtol=1e-4, atol=atol), (
        (a - b).abs().nan_to_num(0).max())


def test_fast_path_is_the_default_and_switches_the_layout(enc: FaceEncoder) -> None:
    assert enc.channels_last
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
               for w in _encoder_weights(enc))
    enc.use_channels_last(False)
    try:
        assert not enc.channels_last
        assert all(w.is_contiguous() for w in _encoder_weights(enc))
    finally:
        enc.use_channels_last(True)


@pytest.mark.slow
def test_encode_fast_equals_plain_on_random_and_real_crops(enc: FaceEncoder) -> None:
    g = np.random.default_rng(0)
    crops = g.integers(0, 256, size=(37, 64, 64, 3), dtype=np.uint8)  # odd size: a partial last batch
    for bs in (1, 8, 32):
        fast, plain = _both(enc, lambda bs=bs: enc.encode(crops, detect=False, batch_size=bs))
        for key in ("texture", "shape", "pose", "light"):
            _close(getattr(fast, key), getattr(plain, key), atol=ATOL * (100 if key == "pose" else 1))
        assert torch.equal(fast.ok, plain.ok)
    # The bare network called on a plain NCHW tensor (not the SDK's channels-last input) agrees too.
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous().float() / 255.0
    with torch.inference_mode():
        fast_net, plain_net = _both(enc, lambda: enc(x))
    _close(fast_net.texture, plain_net.texture)
    _close(fast_net.shape, plain_net.shape)


def test_frontalize_and_disentangle_fast_equal_plain(enc: FaceEncoder) -> None:
    crops = np.random.default_rng(1).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    fast, plain = _both(enc, lambda: enc.frontalize(crops, detect=False, return_tensors=True))
    _close(fast.tensor, plain.tensor, atol=1e-3)
    _close(fast.mask, plain.mask, atol=1e-3)
    dfast, dplain = _both(enc, lambda: enc.disentangle(crops, detect=False, seed=3))
    _close(dfast.identity_texture, dplain.identity_texture, atol=1e-3)
    _close(dfast.identity_shape, dplain.identity_shape, atol=1e-3)


def test_saved_weights_do_not_depend_on_the_layout(enc: FaceEncoder, tmp_path: Path) -> None:
    enc.use_channels_last(True)
    enc.save_pretrained(tmp_path / "fast")
    enc.use_channels_last(False)
    try:
        enc.save_pretrained(tmp_path / "plain")
    finally:
        enc.use_channels_last(True)
    assert ((tmp_path / "fast" / "model.safetensors").read_bytes()
            == (tmp_path / "plain" / "model.safetensors").read_bytes())
    loaded = FaceEncoder.from_pretrained(tmp_path / "fast", device="cpu")
    assert loaded.channels_last
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _encoder_weights(loaded))
    crops = np.random.default_rng(2).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    _close(loaded.encode(crops, detect=False).texture, enc.encode(crops, detect=False).texture, atol=1e-6)


def test_detection_fast_equals_plain_on_real_photos(enc: FaceEncoder, shared_data: Path) -> None:
    """Real faces: the same faces found, boxes within 0.01 px, scores and latents within rounding."""
    celeba = sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[:12]
    photos = [shared_data / "photos" / n for n in ("obama_small.jpg", "two_people.jpg", "obama-1080p.jpg")]
    images = [to_rgb(p) for p in celeba + photos]
    fast, plain = _both(enc, lambda: enc.encode(images, faces="all"))
    assert int(fast.ok.sum()) >= len(images)  # every image has a face (two_people has two)
    assert torch.equal(fast.ok, plain.ok)
    assert torch.equal(fast.source, plain.source)
    _close(fast.boxes, plain.boxes, atol=1e-2)
    _close(fast.scores, plain.scores, atol=1e-4)
    # Latents of crops cut from boxes that differ by < 0.01 px: close, not bit-equal.
    _close(fast.texture, plain.texture, atol=1e-2)
    _close(fast.shape, plain.shape, atol=1e-2)
    assert enc.detector.mtcnn.onet.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_crop_aligned_input_layout_is_channels_last(enc: FaceEncoder, shared_data: Path) -> None:
    """The premise of the fast path: the SDK's network input is channels-last already."""
    crop = crop_aligned(to_rgb(sorted((shared_data / "celeba10k" / "images").glob("*.jpg"))[0]), 64)
    x = crops_to_input(np.stack([crop]), enc.device, enc.dtype)  # as the SDK stacks its crops
    assert x.is_contiguous(memory_format=torch.channels_last)
