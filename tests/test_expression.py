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
    nets = {"texture": ae.texture_encoder, "shape": ae.shape_encoder, "pose": ae.pose_encoder,
            "light": ae.light_encoder}
    for r in EXPRESSION_READOUT:
        enc = nets[r.encoder]
        want = F.adaptive_avg_pool2d(enc.forward_blocks(x)[1][r.block - 1], r.grid).flatten(1)
        assert torch.allclose(feats[:, slice(*layout[r.name])], want, atol=1e-5), r.name


def test_bad_readouts_are_refused(tiny: FaceEncoder) -> None:
    for bad, what in [(MapReadout("mouth", 3, 2), "encoder"), (MapReadout("texture", 5, 1), "block"),
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
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(out.features[[0, 2]], expression_features(tiny.autoencoder, x, mirror=True),
                          atol=1e-4)
    plain = tiny.expression_features(list(crops), detect=False, mirror=False)
    assert torch.allclose(plain.features, expression_features(tiny.autoencoder, x), atol=1e-4)
    enc = tiny.encode(list(crops), detect=False)
    assert torch.allclose(plain.part("texture"), enc.texture, atol=1e-5)
    arrays = out.numpy()
    assert (arrays["features"].shape == tuple(out.features.shape)
            and arrays["ok"].tolist() == [True, False, True])
    with pytest.raises(KeyError, match="texture.block3"):
        out.part("mouth")


def test_single_input_without_a_face_raises(tiny: FaceEncoder) -> None:
    blank = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        tiny.expression_features(blank)


def test_pose_and_light_maps_and_the_mirror_average(tiny: FaceEncoder) -> None:
    ae = tiny.autoencoder
    images = torch.rand(2, 3, 64, 64)
    readout = [MapReadout("pose", 4, 2), MapReadout("light", 3, 1)]
    layout = readout_layout(ae, readout)
    feats = expression_features(ae, images, readout)
    x = ae.normalize(images)
    assert torch.allclose(feats[:, slice(*layout["pose.block4@2x2"])],
                          F.adaptive_avg_pool2d(ae.pose_encoder.forward_blocks(x)[1][3], 2).flatten(1),
                          atol=1e-5)
    assert torch.allclose(feats[:, slice(*layout["light.block3@1x1"])],
                          ae.light_encoder.forward_blocks(x)[1][2].mean((2, 3)), atol=1e-5)
    both = expression_features(ae, images, readout, mirror=True)
    want = (feats + expression_features(ae, images.flip(-1), readout)) / 2
    assert torch.allclose(both, want, atol=1e-5)
    symmetric = (images + images.flip(-1)) / 2  # a mirror-symmetric face: the mirror changes nothing
    assert torch.allclose(expression_features(ae, symmetric, readout, mirror=True),
                          expression_features(ae, symmetric, readout), atol=1e-5)
