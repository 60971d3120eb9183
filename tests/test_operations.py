"""latentface_sdk.operations: what FaceEncoder does with a batch's latents beyond encoding (identity
sampling, canonical maps, renders, expression maps), the ``light`` argument, and the assembly of their
rows into results (NaN and no image where a row failed).

The focused tests call the functions on the tiny model's parts (``tests/_tiny_model.py``); the rest go
through ``FaceEncoder.frontalize``/``render``/``disentangle``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny_model import synthetic_crops

from latentface_sdk import FaceEncoder, Frontalized
from latentface_sdk.encoder import NEUTRAL_LIGHT
from latentface_sdk.expression import EXPRESSION_READOUT, expression_features, readout_layout
from latentface_sdk.models.autoencoder import Latents
from latentface_sdk.operations import (
    RenderedViews,
    decode_maps,
    identity_noise,
    parse_light,
    read_expression,
    render_views,
    sample_identity,
)
from latentface_sdk.pipeline import CropBatch, Row, crops_to_input, encode_crops


@pytest.fixture(scope="module")
def latents(enc: FaceEncoder, crops: list[np.ndarray]) -> Latents:
    """The first three crops' latents."""
    return encode_crops(enc.autoencoder, np.stack(crops[:3]), 8)


def _batch(enc: FaceEncoder, crops: np.ndarray) -> CropBatch:
    return CropBatch(rows=[Row(f"item {i}", i) for i in range(len(crops))], crop_rows=list(range(len(crops))),
                     crops=crops, latents=encode_crops(enc.autoencoder, crops, 8))


# ----------------------------------------------------------------------------------------------- light


@pytest.mark.parametrize("spec", [(0.2, 0.7, 0.1, -0.3), [0.2, 0.7, 0.1, -0.3],
                                  np.array([0.2, 0.7, 0.1, -0.3]),
                                  torch.tensor([0.2, 0.7, 0.1, -0.3], dtype=torch.float64)])
def test_parse_light_takes_four_numbers_in_any_container(spec: object) -> None:
    light = parse_light(spec)  # type: ignore[arg-type]
    assert light is not None and light.shape == (1, 4) and light.dtype == torch.float32
    torch.testing.assert_close(light, torch.tensor([[0.2, 0.7, 0.1, -0.3]]))


def test_parse_light_names() -> None:
    assert parse_light("same") is None  # each face's own estimated light
    neutral = parse_light("neutral")
    assert neutral is not None and neutral.dtype == torch.float32
    assert torch.equal(neutral, torch.tensor([NEUTRAL_LIGHT], dtype=torch.float32))
    assert torch.equal(parse_light((1, 0, 0, 0)), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "match"), [
    ("sunny", "'same', 'neutral' or \\(ambient, diffuse, dx, dy\\) \\(got 'sunny'\\)"),
    ("", "got ''"),
    ("NEUTRAL", "got 'NEUTRAL'"),  # names are case-sensitive
    ((1.0, 2.0), "4 finite numbers \\(got \\(1.0, 2.0\\)\\)"),
    ((1.0, 2.0, 3.0, 4.0, 5.0), "4 finite numbers"),
    ((0.5, float("nan"), 0.0, 0.0), "4 finite numbers"),
    ((0.5, 0.5, float("inf"), 0.0), "4 finite numbers"),
    (0.5, "4 finite numbers"),
    (None, "4 finite numbers"),
    ((), "4 finite numbers"),
])
def test_parse_light_refuses_anything_else_with_the_accepted_forms(spec: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_light(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [{"ambient": 1.0}, ("a", "b", "c", "d"), b"same", object()])
def test_parse_light_refuses_non_numbers_with_the_accepted_forms(spec: object) -> None:
    with pytest.raises(ValueError) as err:
        parse_light(spec)  # type: ignore[arg-type]
    assert "light must be" in str(err.value)


# ------------------------------------------------------------------------------------- maps and renders


def test_decode_maps_are_the_autoencoder_decode(enc: FaceEncoder, latents: Latents) -> None:
    with torch.inference_mode():  # as the pipeline runs its work
        maps = decode_maps(enc.autoencoder, latents)
        direct = enc.autoencoder.decode(latents.texture, latents.shape)
    assert maps.albedo.shape == (3, 3, 64, 64) and maps.depth.shape == (3, 64, 64)
    assert maps.pose is latents.pose
    assert float(maps.albedo.min()) >= 0.0 and float(maps.albedo.max()) <= 1.0
    assert torch.equal(maps.albedo, direct.albedo) and torch.equal(maps.depth, direct.depth)


def test_render_views_pose_light_and_maps(enc: FaceEncoder, latents: Latents) -> None:
    def draw(angles: tuple[float, float, float] = (0.0, 0.0, 0.0), light: torch.Tensor | None = None,
             maps: bool = False) -> RenderedViews:
        with torch.inference_mode():  # as the pipeline runs its work
            return render_views(enc.autoencoder, enc.renderer, latents, angles=angles, light=light, maps=maps,
                                backend="fast")

    own = draw()
    assert own.image.shape == (3, 3, 64, 64) and own.mask.shape == (3, 1, 64, 64)
    assert float(own.image.min()) >= 0.0 and float(own.image.max()) <= 1.0
    assert torch.equal(own.pose, torch.zeros(3, 6)) and torch.equal(own.light, latents.light)  # light=None
    assert own.albedo is None and own.depth is None and own.normal is None and own.shading is None
    turned = draw((30.0, -10.0, 5.0))
    assert turned.pose[:, 3:].tolist() == [[30.0, -10.0, 5.0]] * 3
    assert torch.equal(turned.pose[:, :3], torch.zeros(3, 3))  # no translation
    assert not torch.equal(turned.mask, own.mask)
    # A fixed light (1, 4) shades every face alike; ambient only: shading is the ambient term everywhere, and
    # the render is linear in it.
    flat = draw(light=torch.tensor([[1.0, 0.0, 0.0, 0.0]]), maps=True)
    half = draw(light=torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert torch.equal(flat.light, torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 3))
    assert flat.shading is not None and torch.equal(flat.shading, torch.ones(3, 1, 64, 64))
    torch.testing.assert_close(half.image, 0.5 * flat.image, atol=1e-6, rtol=1e-5)
    assert torch.equal(half.mask, flat.mask)  # the light changes colours, not where the face is
    with torch.inference_mode():
        maps = decode_maps(enc.autoencoder, latents)
    assert flat.albedo is not None and torch.equal(flat.albedo, maps.albedo)
    assert flat.depth is not None and torch.equal(flat.depth, maps.depth)
    assert flat.normal is not None and flat.normal.shape == (3, 3, 64, 64)
    torch.testing.assert_close(flat.normal.norm(dim=1), torch.ones(3, 64, 64), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------ identity sampling


def test_identity_noise_depends_only_on_the_crop_the_seed_and_the_rdm() -> None:
    crops = np.stack(synthetic_crops(3))
    noise = identity_noise(crops, "texture", seed=4, num_samples=2, dim=16)
    assert noise.shape == (6, 16) and noise.dtype == torch.float32
    per_sample = noise.view(2, 3, 16)  # sample-major: all crops' first sample, then the second
    assert not torch.equal(per_sample[0], per_sample[1])
    alone = identity_noise(crops[2:], "texture", seed=4, num_samples=2, dim=16).view(2, 1, 16)
    assert torch.equal(alone[:, 0], per_sample[:, 2])  # wherever the crop sits
    reordered = identity_noise(crops[[2, 0]], "texture", seed=4, num_samples=2, dim=16).view(2, 2, 16)
    assert torch.equal(reordered, per_sample[:, [2, 0]])
    twice = identity_noise(crops[[1, 1]], "texture", seed=4, num_samples=1, dim=16)
    assert torch.equal(twice[0], twice[1]) and torch.equal(twice[0], per_sample[0, 1])
    assert not torch.equal(identity_noise(crops, "shape", seed=4, num_samples=2, dim=16), noise)
    assert not torch.equal(identity_noise(crops, "texture", seed=5, num_samples=2, dim=16), noise)
    assert identity_noise(crops[:0], "texture", seed=4, num_samples=2, dim=16).shape == (0, 16)


def test_sample_identity_zero_start_and_seeded_noise(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    batch = _batch(enc, np.stack(crops[:3]))

    def sample(b: CropBatch, **kw: object):  # type: ignore[no-untyped-def]
        args: dict[str, object] = {"steps": 3, "init": "noise", "num_samples": 1, "seed": 1}
        args.update(kw)
        return sample_identity(enc.backend.identity_latents, b, **args)  # type: ignore[arg-type]

    zero1, zero2 = sample(batch, init="zero", seed=1), sample(batch, init="zero", seed=2, num_samples=3)
    assert zero1.texture.shape == (3, 256) and zero1.shape.shape == (3, 256)
    torch.testing.assert_close(zero1.texture, zero2.texture)  # z_T = 0: no seed, and samples all alike
    noisy = sample(batch)
    assert not torch.allclose(noisy.texture, zero1.texture)
    alone = sample(_batch(enc, np.stack(crops[1:2])))
    torch.testing.assert_close(alone.texture[0], noisy.texture[1], atol=1e-5, rtol=1e-5)  # batch-independent
    torch.testing.assert_close(alone.shape[0], noisy.shape[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(sample(batch, seed=2).texture, noisy.texture)
    many = sample(batch, num_samples=4)
    assert many.texture.shape == (3, 256) and not torch.allclose(many.texture, noisy.texture)


def test_read_expression_is_the_expression_features_of_the_crops(
    enc: FaceEncoder, crops: list[np.ndarray]
) -> None:
    batch = _batch(enc, np.stack(crops[:2]))
    width = max(stop for _, stop in readout_layout(enc.autoencoder, EXPRESSION_READOUT).values())
    x = crops_to_input(batch.crops, enc.device, enc.dtype)
    with torch.inference_mode():
        plain = read_expression(enc.autoencoder, batch)
        mirrored = read_expression(enc.autoencoder, batch, mirror=True)
        assert plain.features.shape == (2, width)
        torch.testing.assert_close(plain.features, expression_features(enc.autoencoder, x))
        torch.testing.assert_close(mirrored.features, expression_features(enc.autoencoder, x, mirror=True))


# ----------------------------------------------------------------------- through FaceEncoder, rows assembled


def test_disentangle_marks_failed_rows(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    d = enc.disentangle([crops[0], np.zeros((2, 2, 7), np.uint8)], detect=False, seed=0)
    assert d.ok.tolist() == [True, False] and "7 channels" in (d.errors[1] or "")
    assert torch.isnan(d.verification_features[1]).all() and torch.isfinite(d.verification_features[0]).all()


def test_frontalize_shapes_ranges_and_maps(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    f = enc.frontalize(crops[:3], detect=False, maps=True)
    assert isinstance(f, Frontalized) and len(f) == 3
    assert f.tensor.shape == (3, 3, 64, 64) and f.mask.shape == (3, 1, 64, 64)
    assert float(f.tensor.min()) >= 0.0 and float(f.tensor.max()) <= 1.0
    assert float(f.mask.min()) >= 0.0 and float(f.mask.max()) <= 1.0
    assert 0.4 < f.mask.mean() < 0.9  # the face, not the whole frame: the corners are background
    assert (f.mask[:, :, :4, :4] == 0).all() and (f.mask[:, :, 28:36, 28:36] == 1).all()
    assert (f.tensor * (f.mask == 0)).abs().max() == 0  # black outside the face
    assert torch.equal(f.pose, torch.zeros(3, 6))
    assert len(f.images) == 3
    assert all(im is not None and im.size == (64, 64) and im.mode == "RGB" for im in f.images)
    first = f.images[0]
    assert first is not None
    np.testing.assert_array_equal(np.asarray(first), f.numpy()["images"][0])
    assert f.albedo is not None and f.albedo.shape == (3, 3, 64, 64)
    assert f.depth is not None and f.depth.shape == (3, 64, 64)
    assert f.normal is not None and torch.allclose(f.normal.norm(dim=1), torch.ones(3, 64, 64), atol=1e-4)
    assert f.shading is not None and f.shading.shape == (3, 1, 64, 64)
    e = enc.encode(crops[:3], detect=False)
    assert torch.equal(f.light, e.light)  # light="same"
    plain = enc.frontalize(crops[:3], detect=False, return_tensors=True)
    assert plain.images == [] and plain.albedo is None and torch.equal(plain.tensor, f.tensor)


def test_frontalize_light_options_and_render_views(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    neutral = enc.frontalize(crops[:2], detect=False, light="neutral")
    assert torch.equal(neutral.light, torch.tensor([NEUTRAL_LIGHT] * 2))
    custom = enc.frontalize(crops[:2], detect=False, light=(1.0, 0.0, 0.0, 0.0))
    assert not torch.equal(custom.tensor, neutral.tensor)
    turned = enc.render(crops[:2], detect=False, yaw=30.0, light="neutral")
    assert torch.equal(turned.pose[:, 3], torch.tensor([30.0, 30.0]))
    assert not torch.equal(turned.mask, neutral.mask)
    same = enc.render(crops[:2], detect=False, light="neutral")
    assert torch.equal(same.tensor, neutral.tensor)  # frontalize is render at the canonical pose
    with pytest.raises(ValueError, match="light"):
        enc.frontalize(crops[0], detect=False, light="sunny")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="light"):
        enc.frontalize(crops[0], detect=False, light=(1.0, 2.0))
    with pytest.raises(ValueError, match="finite"):
        enc.render(crops[0], detect=False, yaw=float("nan"))


def test_frontalize_failed_rows(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    f = enc.frontalize([np.zeros((0, 5, 3), np.uint8), crops[0]], detect=False)
    assert f.ok.tolist() == [False, True] and f.images[0] is None and f.images[1] is not None
    assert torch.isnan(f.tensor[0]).all() and f.mask[0].sum() == 0
