"""latentface_sdk.expression and FaceEncoder.expression_features: the expression readout of the encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny import tiny_config

from latentface_sdk import ExpressionFeatures, FaceEncoder, NoFaceError
from latentface_sdk.expression import EXPRESSION_READOUT, MapReadout, expression_features, readout_layout
from latentface_sdk.models.autoencoder import LatentAutoencoder


@pytest.fixture(scope="module")
def tiny() -> FaceEncoder:
    torch.manual_seed(0)
    return FaceEncoder.from_config(tiny_config()).to("cpu")


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_blocks_have_the_documented_shapes(tiny: FaceEncoder) -> None:
    x = torch.rand(2, 3, 64, 64)
    latent, maps = tiny.autoencoder.texture_encoder.forward_blocks(x)
    width = tiny.config.autoencoder.width
    assert [tuple(m.shape) for m in maps] == [(2, width * 2 ** k, 32 >> k, 32 >> k) for k in range(4)]
    assert torch.equal(latent, tiny.autoencoder.texture_encoder(x))


def test_features_are_the_latents_and_the_pooled_maps_in_layout_order(tiny: FaceEncoder) -> None:
    ae: LatentAutoencoder = tiny.autoencoder
    images = torch.rand(3, 3, 64, 64)
    feats = expression_features(ae, images)
    layout = readout_layout(ae)
    assert list(layout)[:2] == ["texture", "shape"] and feats.shape[1] == max(b for _, b in layout.values())
    lat = ae.encode(images)
    assert torch.allclose(feats[:, slice(*layout["texture"])], lat.texture, atol=1e-5)
    assert torch.allclose(feats[:, slice(*layout["shape"])], lat.shape, atol=1e-5)
    x = ae.normalize(images)
    for r in EXPRESSION_READOUT:
        enc = ae.texture_encoder if r.encoder == "texture" else ae.shape_encoder
        want = F.adaptive_avg_pool2d(enc.forward_blocks(x)[1][r.block - 1], r.grid).flatten(1)
        assert torch.allclose(feats[:, slice(*layout[r.name])], want, atol=1e-5), r.name


def test_bad_readouts_are_refused(tiny: FaceEncoder) -> None:
    for bad, what in [(MapReadout("pose", 3, 2), "encoder"), (MapReadout("texture", 5, 1), "block"),
                      (MapReadout("texture", 4, 8), "grid")]:
        with pytest.raises(ValueError, match=what):
            readout_layout(tiny.autoencoder, [bad])
    with pytest.raises(ValueError, match="twice"):
        readout_layout(tiny.autoencoder, [MapReadout("shape", 2, 2)] * 2)


def test_api_rows_match_the_pure_function_and_keep_bad_items(tiny: FaceEncoder) -> None:
    crops = _crops(2)
    out = tiny.expression_features([crops[0], "no/such/file.jpg", crops[1]], detect=False)
    assert isinstance(out, ExpressionFeatures) and len(out) == 3
    assert out.ok.tolist() == [True, False, True] and "no/such/file.jpg" in (out.errors[1] or "")
    assert torch.isnan(out.features[1]).all() and not torch.isnan(out.features[[0, 2]]).any()
    direct = expression_features(tiny.autoencoder, torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(out.features[[0, 2]], direct, atol=1e-4)
    enc = tiny.encode(list(crops), detect=False)
    assert torch.allclose(out.part("texture")[[0, 2]], enc.texture, atol=1e-5)
    arrays = out.numpy()
    assert arrays["features"].shape == tuple(out.features.shape) and arrays["ok"].tolist() == [True, False, True]
    with pytest.raises(KeyError, match="texture.block3"):
        out.part("mouth")


def test_single_input_without_a_face_raises(tiny: FaceEncoder) -> None:
    blank = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        tiny.expression_features(blank)
