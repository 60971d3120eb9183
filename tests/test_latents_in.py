"""Latents-in operations: an Encoding a caller already has, rendered, meshed or embedded without reading an
image again, equals what the image-in methods give for the same images (FaceFacade.render_from_latents,
mesh_from_latents; identity_from_latents is in tests/test_answers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale

from latentface_sdk import FaceEncoder, InvalidImageError


def _same_views(got, want) -> None:  # type: ignore[no-untyped-def]
    for name in ("tensor", "mask", "pose", "light", "albedo", "depth", "normal", "shading"):
        a, b = getattr(got, name), getattr(want, name)
        if b is None:
            assert a is None, name
            continue
        if name in ("tensor", "mask"):  # a pixel on a triangle's edge may flip under other rounding
            diff = (a - b).abs().nan_to_num(0.0)
            assert torch.isnan(a).equal(torch.isnan(b)) and float(diff.max()) < 2e-2, name
            assert float((diff > 1e-4).float().mean()) < 1e-3, name
            continue
        # other batches (batch_size=2 here) round differently; normals are differences of depths
        assert_close_to_scale(a, b, rel=1e-4, msg=name)
    assert got.encoding.names == want.encoding.names


@pytest.mark.parametrize(("texture", "size"), [("albedo", None), ("photo", None), ("photo", 96)])
def test_render_from_latents_equals_render(enc: FaceEncoder, crops: list[np.ndarray], texture: str,
                                          size: int | None) -> None:
    items: list[object] = [crops[0], "no/such/file.jpg", crops[1], crops[2]]
    kw = {"yaw": 25.0, "pitch": -10.0, "texture": texture, "size": size, "maps": True}
    want = enc.render(items, detect=False, **kw)  # type: ignore[arg-type]
    encoding = enc.encode(items, detect=False)
    got = enc.render_from_latents(encoding, photos=items if texture == "photo" else None, batch_size=2,
                                  **kw)  # type: ignore[arg-type]
    _same_views(got, want)
    assert got.encoding is encoding and got.images[1] is None and torch.isnan(got.tensor[1]).all()
    assert got.images[0] is not None and got.images[0].size == want.images[0].size  # type: ignore[union-attr]


@pytest.mark.parametrize("texture", ["albedo", "photo"])
def test_mesh_from_latents_equals_mesh(enc: FaceEncoder, crops: list[np.ndarray], texture: str) -> None:
    want = enc.mesh(crops[:3], detect=False, view="photo", texture=texture)  # type: ignore[arg-type]
    got = enc.mesh_from_latents(enc.encode(crops[:3], detect=False), view="photo", texture=texture,
                                photos=crops[:3] if texture == "photo" else None)  # type: ignore[arg-type]
    assert got.view == "photo" and len(got.meshes) == 3
    for a, b in zip(got.meshes, want.meshes, strict=True):
        assert a is not None and b is not None
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)
        assert np.abs(a.texture.astype(int) - b.texture.astype(int)).max() <= 1


def test_a_detected_face_rendered_from_its_latents_matches_the_photo_path(enc: FaceEncoder,
                                                                        shared_data: Path) -> None:
    """detect=True: the face is cut again from its row's box (the crop square around the MTCNN box)."""
    photo = str(shared_data / "photos" / "obama_small.jpg")
    want = enc.frontalize(photo, size=128)
    got = enc.render_from_latents(enc.encode(photo), texture="photo", photos=photo, size=128)
    # the box went through float32 in the Encoding: the square moves by a fraction of a pixel at most
    assert float((got.tensor - want.tensor).abs().mean()) < 2e-3
    torch.testing.assert_close(got.mask, want.mask, atol=0.02, rtol=0)


def test_latents_in_says_what_is_missing(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    encoding = enc.encode(crops[:2], detect=False)
    with pytest.raises(ValueError, match="photos"):
        enc.render_from_latents(encoding, texture="photo")
    with pytest.raises(InvalidImageError, match="1 photo"):
        enc.mesh_from_latents(encoding, texture="photo", photos=[crops[0]])
    with pytest.raises(ValueError, match="batch_size"):
        enc.render_from_latents(encoding, batch_size=0)
    with pytest.raises(ValueError, match="yaw"):
        enc.render_from_latents(encoding, yaw=float("nan"))
    empty = enc.render_from_latents(enc.encode(["no/such/file.jpg"], detect=False), return_tensors=True)
    assert not bool(empty.ok.any()) and torch.isnan(empty.tensor).all() and empty.images == []
