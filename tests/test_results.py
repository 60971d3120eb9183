"""latentface_sdk.results: the typed results' rows (names, source, ok, errors), their short reprs,
``numpy()`` arrays, feature layouts and views (yaw/pitch/roll, latents, parts).

The focused tests build results by hand; the rest read them off the tiny model (``tests/_tiny_model.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from latentface_sdk import Disentangled, Encoding, ExpressionFeatures, FaceEncoder, FaceMeshes, Frontalized

NAN = float("nan")


def _encoding() -> Encoding:
    """Three rows: a face of input 0, a failed input 1, a face of input 2 (latents of width 3)."""
    ok = torch.tensor([True, False, True])
    rows = torch.arange(3, dtype=torch.float32)[:, None]

    def values(width: int, offset: float) -> torch.Tensor:
        out = rows + offset + torch.arange(width, dtype=torch.float32) / 10
        out[1] = NAN
        return out

    return Encoding(texture=values(3, 0), shape=values(3, 100), pose=values(6, 200), light=values(4, 300),
                    boxes=values(4, 400), scores=torch.tensor([0.9, NAN, 0.8]), ok=ok,
                    errors=[None, "item 1: not an image", None], names=["a.jpg", "item 1", "item 2"],
                    source=torch.tensor([0, 1, 2]))


def test_encoding_rows_views_and_numpy() -> None:
    e = _encoding()
    assert len(e) == 3
    for view, column in ((e.yaw, 3), (e.pitch, 4), (e.roll, 5)):
        assert view.data_ptr() == e.pose[:, column].data_ptr()  # views into pose, not copies
        torch.testing.assert_close(view, e.pose[:, column], equal_nan=True)
    assert e.latents.shape == (3, 6)
    torch.testing.assert_close(e.latents, torch.cat([e.texture, e.shape], 1), equal_nan=True)
    arrays = e.numpy()
    assert set(arrays) == {"texture", "shape", "pose", "light", "boxes", "scores", "names", "ok", "errors",
                           "source"}
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert arrays["ok"].dtype == bool and arrays["ok"].tolist() == [True, False, True]
    assert arrays["source"].dtype == np.int64 and arrays["names"].tolist() == ["a.jpg", "item 1", "item 2"]
    assert arrays["errors"].tolist() == ["", "item 1: not an image", ""]  # "" where ok: no objects to save
    assert arrays["names"].dtype.kind == "U" and arrays["errors"].dtype.kind == "U"
    np.testing.assert_array_equal(arrays["pose"], e.pose.numpy())
    assert np.isnan(arrays["texture"][1]).all() and arrays["texture"].dtype == np.float32
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.names = []  # type: ignore[misc]


def test_disentangled_feature_layout_rows_and_numpy() -> None:
    e = _encoding()
    idt, ids = e.texture * 0.5, e.shape * 0.25
    d = Disentangled(texture=e.texture, shape=e.shape, identity_texture=idt, identity_shape=ids,
                     expression_texture=e.texture - idt, expression_shape=e.shape - ids, encoding=e)
    assert len(d) == 3 and d.ok is e.ok and d.errors is e.errors and d.names is e.names
    assert d.source is e.source
    verification = torch.cat([idt, ids, e.texture, e.shape], 1)
    fer = torch.cat([e.texture - idt, e.shape - ids, e.texture, e.shape], 1)
    torch.testing.assert_close(d.verification_features, verification, equal_nan=True)
    torch.testing.assert_close(d.fer_features, fer, equal_nan=True)
    arrays = d.numpy()
    assert set(arrays) == set(e.numpy()) | {"identity_texture", "identity_shape", "expression_texture",
                                             "expression_shape", "verification_features", "fer_features"}
    assert arrays["verification_features"].shape == (3, 12) and arrays["errors"][1] == "item 1: not an image"
    assert repr(d).startswith("Disentangled(n=3, ok=2, texture=(3, 3)") and "item 1: not an image" in repr(d)


def test_expression_features_parts() -> None:
    e = _encoding()
    feats = torch.arange(3 * 10, dtype=torch.float32).reshape(3, 10)
    layout = {"texture": (0, 3), "shape": (3, 6), "texture.block3@2x2": (6, 10)}
    x = ExpressionFeatures(features=feats, layout=layout, encoding=e)
    assert len(x) == 3 and x.names == e.names
    assert torch.equal(x.part("shape"), feats[:, 3:6]) and x.part("texture.block3@2x2").shape == (3, 4)
    with pytest.raises(KeyError, match="no part 'mouth'.*'texture', 'shape', 'texture.block3@2x2'"):
        x.part("mouth")
    arrays = x.numpy()
    assert arrays["features"].shape == (3, 10) and "texture" in arrays and "ok" in arrays


def test_frontalized_numpy_images_and_optional_maps() -> None:
    e = _encoding()
    tensor = torch.full((3, 3, 4, 4), 0.5)
    tensor[0, 0] = 1.2  # renders are clamped to [0, 1] in the uint8 images
    tensor[1] = NAN  # the failed row
    f = Frontalized(tensor=tensor, mask=torch.ones(3, 1, 4, 4), pose=torch.zeros(3, 6),
                    light=torch.ones(3, 4), encoding=e)
    arrays = f.numpy()
    assert arrays["images"].shape == (3, 4, 4, 3) and arrays["images"].dtype == np.uint8
    assert arrays["images"][0, 0, 0].tolist() == [255, 128, 128] and (arrays["images"][1] == 0).all()
    assert not {"albedo", "depth", "normal", "shading"} & set(arrays) and f.images == []
    assert set(arrays) >= {"mask", "pose", "light", "names", "ok", "errors", "source"}
    with_maps = dataclasses.replace(f, albedo=torch.zeros(3, 3, 4, 4), depth=torch.ones(3, 4, 4))
    assert {"albedo", "depth"} <= set(with_maps.numpy()) and "normal" not in with_maps.numpy()
    assert repr(f).startswith("Frontalized(n=3, ok=2, tensor=(3, 3, 4, 4), mask=(3, 1, 4, 4)")


class _StubMesh:
    """Stands in for a FaceMesh: its vertices and a save that records the path."""

    vertices = np.zeros((7, 3), np.float32)

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def save(self, path: Path) -> list[Path]:
        self.saved.append(path)
        return [path, path.with_suffix(".mtl")]


def test_face_meshes_repr_and_save(tmp_path: Path) -> None:
    e = _encoding()
    mesh = _StubMesh()
    m = FaceMeshes(meshes=[mesh, None, mesh], view="frontal", encoding=e)  # type: ignore[list-item]
    assert len(m) == 3 and m.ok is e.ok and repr(m) == "FaceMeshes(n=3, ok=2, view='frontal', vertices=7)"
    assert m.save(tmp_path, ".ply") == [tmp_path / "face0.ply", None, tmp_path / "face2.ply"]
    assert mesh.saved == [tmp_path / "face0.ply", tmp_path / "face2.ply"]
    none = FaceMeshes(meshes=[None], view="photo", encoding=e)
    assert repr(none) == "FaceMeshes(n=1, ok=0, view='photo')" and none.save(tmp_path) == [None]


# --------------------------------------------------------------------------- read off the tiny model


def test_disentangle_parts_and_feature_layout(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    d = enc.disentangle(crops, detect=False, seed=0)
    assert isinstance(d, Disentangled) and len(d) == 5
    e = enc.encode(crops, detect=False)
    assert torch.equal(d.texture, e.texture) and torch.equal(d.shape, e.shape)
    torch.testing.assert_close(d.expression_texture, d.texture - d.identity_texture)
    torch.testing.assert_close(d.expression_shape, d.shape - d.identity_shape)
    v, f = d.verification_features, d.fer_features
    assert v.shape == (5, 1024) and f.shape == (5, 1024)
    assert torch.equal(v, torch.cat([d.identity_texture, d.identity_shape, d.texture, d.shape], 1))
    assert torch.equal(f, torch.cat([d.expression_texture, d.expression_shape, d.texture, d.shape], 1))
    assert not torch.equal(d.identity_texture, d.texture)  # the RDM did something
    assert torch.isfinite(v).all()
    arrays = d.numpy()
    assert arrays["verification_features"].shape == (5, 1024) and arrays["identity_shape"].shape == (5, 256)


def test_results_print_short(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    e = enc.encode([crops[0], np.zeros((2, 2, 7), np.uint8)], detect=False)
    text = repr(e)
    assert text.startswith("Encoding(n=2, ok=1, texture=(2, 256)")
    assert "first_error=" in text and "7 channels" in text
    assert len(text) < 400 and "tensor(" not in text
    d = repr(enc.disentangle(crops[:2], detect=False, seed=0))
    assert d.startswith("Disentangled(n=2, ok=2,") and "identity_texture=(2, 256)" in d
    assert "first_error" not in d
    f = repr(enc.frontalize(crops[:1], detect=False))
    assert f.startswith("Frontalized(n=1, ok=1,") and "tensor=(1, 3, 64, 64)" in f and len(f) < 400
