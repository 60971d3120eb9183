"""The latentface feature sets, read off a stand-in encoder with FaceEncoder's documented interface (and,
last, off the tiny model itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from _tiny_model import save_tiny_model, synthetic_crops

from latentface_sdk.config import CropConfig, ModelConfig
from latentface_sdk.eval.features import FeatureContext, build_extractor, encoder_identity


@dataclass
class _FakeEncoder:
    """encode/disentangle return tensors whose values say which part and which image they are."""

    config: ModelConfig
    calls: int = 0

    def _rows(self, images: list[np.ndarray], dim: int, part: float) -> torch.Tensor:
        means = torch.tensor([float(im.mean()) for im in images])[:, None]
        return means + part + torch.zeros(len(images), dim)

    def encode(self, images: list[np.ndarray], *, detect: bool, batch_size: int, progress: bool) -> Any:
        assert detect is False and all(im.shape == (64, 64, 3) for im in images)
        self.calls += 1
        r = self._rows
        return SimpleNamespace(
            texture=r(images, 256, 1000),
            shape=r(images, 256, 2000),
            pose=r(images, 6, 3000),
            light=r(images, 4, 4000),
        )

    def disentangle(
        self, images: list[np.ndarray], *, detect: bool, seed: int, batch_size: int, num_samples: int = 1,
        init: str | None = None,
    ) -> Any:
        assert detect is False
        self.calls += 1
        self.num_samples = num_samples
        self.init = init
        ver = torch.cat([self._rows(images, 256, 5000 + k) for k in range(4)], dim=1)
        fer = torch.cat([self._rows(images, 256, 6000 + k) for k in range(4)], dim=1)
        return SimpleNamespace(verification_features=ver, fer_features=fer,
                               expression_texture=self._rows(images, 256, 6000),
                               expression_shape=self._rows(images, 256, 6001))

    def expression_features(self, images: list[np.ndarray], *, detect: bool, batch_size: int,
                            progress: bool) -> Any:
        assert detect is False
        self.calls += 1
        return SimpleNamespace(features=torch.cat([self._rows(images, 512, 7000),
                                                   self._rows(images, 100, 7001)], 1))


def _context() -> tuple[FeatureContext, _FakeEncoder]:
    cfg = ModelConfig(name="fake", checksum="abc123", crop=CropConfig(margin=0.3))
    enc = _FakeEncoder(cfg)
    return FeatureContext(_encoder=enc), enc


def test_latentface_feature_sets_pick_the_documented_parts() -> None:
    ctx, enc = _context()
    crops = np.stack([np.full((64, 64, 3), v, dtype=np.uint8) for v in (10, 20, 30)])
    expect = {
        "latentface": (512, [1000, 2000]),
        "latentface-exp": (512, [1000, 2000]),
        "latentface-full": (522, [1000, 2000, 3000, 4000]),
        "latentface-verify": (1024, [5000, 5001, 5002, 5003]),
        "latentface-id": (512, [5000, 5001]),
        "latentface-fer": (1024, [6000, 6001, 6002, 6003]),
        "latentface-expression": (612, [7000, 7001]),
        "expression+delta": (1124, [6000, 6001, 7000, 7001]),
    }
    for name, (dim, parts) in expect.items():
        ext = build_extractor(name, ctx)
        f = ext(crops)
        assert f.shape == (3, dim) and f.dtype == np.float32, name
        np.testing.assert_array_equal(np.unique(f[0] - 10), np.array(parts, dtype=np.float32))
        np.testing.assert_array_equal(f[2] - f[0], 20.0)  # rows follow the images
        assert ext.crop_config() == CropConfig(margin=0.3)  # evaluation crops like the model was trained
        assert "fake@abc123" in ext.identity()
    assert build_extractor("latentface-exp", ctx).cache_name == "latentface"  # identical: shares the cache
    assert (
        build_extractor("latentface-id", ctx).identity()
        != build_extractor("latentface-verify", ctx).identity()
    )


def test_rdm_samples_reach_disentangle_and_key_the_cache() -> None:
    ctx, enc = _context()
    crops = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    one = build_extractor("latentface-verify", ctx)
    ctx.rdm_samples = 8
    eight = build_extractor("latentface-verify", ctx)
    eight(crops)
    assert enc.num_samples == 8
    assert one.identity() != eight.identity()  # cached features of 1 and 8 samples never mix
    ctx.rdm_init = "zero"
    zero = build_extractor("latentface-verify", ctx)
    zero(crops)
    assert enc.init == "zero" and zero.identity() not in (one.identity(), eight.identity())
    assert build_extractor("latentface", ctx).identity() == build_extractor(
        "latentface", FeatureContext(_encoder=enc)).identity()  # encode features do not depend on it


def test_encoder_identity_falls_back_to_a_weights_digest() -> None:
    torch.manual_seed(0)
    holder = SimpleNamespace(config=SimpleNamespace(name="m", checksum=None), net=torch.nn.Linear(3, 2))
    a = encoder_identity(holder)
    assert a.startswith("m@") and a == encoder_identity(holder)
    with torch.no_grad():
        holder.net.weight.add_(1.0)
    assert encoder_identity(holder) != a


def test_eval_feature_sets_run_on_a_real_encoder(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "tiny-model")
    ctx = FeatureContext(model=model_dir, device="cpu", batch_size=2, seed=0)
    arr = np.stack(synthetic_crops())
    for name, dim in (("latentface", 512), ("latentface-full", 522), ("latentface-verify", 1024),
                      ("latentface-fer", 1024), ("latentface-id", 512)):
        ext = build_extractor(name, ctx)
        out = ext(arr)
        assert out.shape == (5, dim) and out.dtype == np.float32 and np.isfinite(out).all(), name
        assert "tiny-test@" in ext.identity()
