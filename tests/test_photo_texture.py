"""Frontal views and meshes textured from the photo (issue 38): latentface_sdk.render.photo_texture on
synthetic faces with known colours, then FaceEncoder.frontalize/render/mesh(texture=..., size=...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from latentface_sdk import FaceEncoder
from latentface_sdk.detection import _resample_square, crop_face
from latentface_sdk.models.autoencoder import Latents
from latentface_sdk.operations import IdentityLatents
from latentface_sdk.photo_views import canonical_texture
from latentface_sdk.pipeline import FacePipeline, crop_inputs
from latentface_sdk.render import geometry as geo
from latentface_sdk.render import photo_texture as pt
from latentface_sdk.render.renderer import FaceRenderer

S = 64
R = FaceRenderer(S, 10.0, 1.0)
CAMERA: dict[str, Any] = {"focal": R.focal, "centre_depth": R.centre_depth, "fov_deg": R.fov_deg}


def _face_depth(relief: float = 0.08) -> torch.Tensor:
    """(1, S, S): a rounded face, nearest in the middle (a half-ellipsoid over the face region)."""
    g = geo.image_grid(S, S)
    inside = (1.0 - (g[..., 0] / 0.95) ** 2 - (g[..., 1] / 1.1) ** 2).clamp(min=0.0)
    return (1.0 + relief / 2 - relief * inside.sqrt())[None]


def _pattern() -> torch.Tensor:
    """(1, 3, S, S): a smooth pattern that differs on the two halves of the face (so a mirrored sample is
    told from its own): red rises to the right, green down, blue a slow wave."""
    g = geo.image_grid(S, S)
    u, v = g[..., 0], g[..., 1]
    return torch.stack([0.5 + 0.4 * u, 0.5 + 0.35 * v, 0.5 + 0.3 * torch.sin(2.0 * v)])[None]


def _photo_of(texture: torch.Tensor, depth: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """What a camera sees of the textured face under ``pose``: the synthetic input photo (S x S)."""
    return R.render(texture, depth, pose, backend="fast").image


def _texture(photo: torch.Tensor, depth: torch.Tensor, pose: torch.Tensor, *,
             albedo: torch.Tensor | None = None, size: int | None = None) -> pt.PhotoTexture:
    """The photo texture under one flat light, the albedo a uniform grey unless given."""
    flat = torch.ones(1, 1, S, S)
    fill = albedo if albedo is not None else torch.full((1, 3, S, S), 0.5)
    return pt.photo_texture(photo, depth, pose, **CAMERA, albedo=fill, photo_shading=flat, size=size)


def test_frontal_photo_reproduces_the_photo_where_it_sees_the_face() -> None:
    depth, pattern = _face_depth(), _pattern()
    pose = torch.zeros(1, 6)
    photo = _photo_of(pattern, depth, pose)
    tex = _texture(photo, depth, pose)
    inner = geo.face_region(S) > 0.99
    assert float(tex.own[0, 0][inner].min()) > 0.99  # the frontal face is all seen
    err = (tex.texture - pattern)[0].abs().amax(0)[inner]
    assert float(err.max()) < 0.01  # each pixel reads its own colour back


@pytest.mark.parametrize("yaw", [-25.0, 25.0])
def test_a_turned_face_gives_back_its_canonical_colours(yaw: float) -> None:
    depth, pattern = _face_depth(), _pattern()
    pose = torch.tensor([[0.0, 0.0, 0.0, yaw, 5.0, 3.0]])
    photo = _photo_of(pattern, depth, pose)
    tex = _texture(photo, depth, pose)
    seen = (tex.own[0, 0] > 0.99) & (geo.face_region(S) > 0.99)
    assert int(seen.sum()) > 0.5 * int((geo.face_region(S) > 0.99).sum())
    err = (tex.texture - pattern)[0].abs().amax(0)
    assert float(err[seen].mean()) < 0.01 and float(err[seen].quantile(0.98)) < 0.05


def test_the_hidden_side_is_filled_by_symmetry() -> None:
    depth, pattern = _face_depth(relief=0.2), _pattern()
    yaw = 40.0  # turned so far that one side of this deep face is hidden
    pose = torch.tensor([[0.0, 0.0, 0.0, yaw, 0.0, 0.0]])
    photo = _photo_of(pattern, depth, pose)
    tex = _texture(photo, depth, pose)
    region = geo.face_region(S) > 0.99
    own = tex.own[0, 0]
    hidden = (own < 0.01) & region
    assert int(hidden.sum()) > 100
    cols = hidden.nonzero()[:, 1].float()
    side = torch.sign(cols.mean() - (S - 1) / 2)  # one side of the face, the far one
    assert float(side * (cols - (S - 1) / 2).sign().mean()) > 0.9
    # those pixels take the mirrored pixel's photo colour: the other half's pattern (red flipped)
    assert float(tex.mirrored[0, 0][hidden].mean()) > 0.95
    mirrored = pattern.flip(-1)
    err = (tex.texture - mirrored)[0].abs().amax(0)[hidden & (tex.mirrored[0, 0] > 0.99)]
    assert float(err.mean()) < 0.02
    assert float((tex.texture - pattern)[0, 0][hidden].abs().mean()) > 0.1  # not its own (unseen) colour


def test_where_neither_side_is_seen_the_albedo_fills_in() -> None:
    depth, pattern = _face_depth(), _pattern()
    pose = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    photo = _photo_of(pattern, depth, pose)
    away = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0, 0.0]])  # the face is out of the crop: nothing is seen
    albedo = torch.full((1, 3, S, S), 0.3)
    tex = _texture(photo, depth, away, albedo=albedo)
    assert float(tex.own.max()) < 1e-6 and float(tex.mirrored.max()) < 1e-6
    assert torch.allclose(tex.albedo, torch.ones_like(tex.albedo))
    assert torch.allclose(tex.texture, albedo, atol=1e-6)  # nothing seen to match it to: the albedo as is


def test_larger_textures_and_renders() -> None:
    depth, pattern = _face_depth(), _pattern()
    pose = torch.tensor([[0.0, 0.0, 0.0, 15.0, 0.0, 0.0]])
    big_photo = torch.nn.functional.interpolate(_photo_of(pattern, depth, pose), size=(256, 256),
                                                mode="bilinear", align_corners=False)
    tex = _texture(big_photo, depth, pose, size=256)
    assert tex.texture.shape == (1, 3, 256, 256) and tex.own.shape == (1, 1, 256, 256)
    image, mask = pt.render_texture(tex.texture, depth, torch.zeros(1, 6), **CAMERA, size=256)
    assert image.shape == (1, 3, 256, 256) and mask.shape == (1, 1, 256, 256)
    region = geo.face_region(256)
    inner = region > 0.99
    inner[:4], inner[-4:], inner[:, :4], inner[:, -4:] = False, False, False, False  # the 64-mesh ends at its
    # last vertex's pixel centre, 1.5 output pixels from the edge
    # frontal, the render is the texture itself on the face region
    assert float((image[0] - tex.texture[0] * mask[0]).abs().amax(0)[inner].max()) < 0.01
    assert float((mask[0, 0] - region).abs()[inner].max()) < 0.1  # the region, interpolated on the mesh
    # at the model's size it is the renderer's own render_face, frontal and turned (which rasterises)
    small = pt.resize_maps(tex.texture, S)
    for view in (torch.zeros(1, 6), torch.tensor([[0.0, 0.0, 0.0, 25.0, -10.0, 5.0]])):
        ref = R.render_face(small, depth, view, backend="fast")
        got, got_mask = pt.render_texture(small, depth, view, **CAMERA, size=S)
        inside = (ref.mask > 0.99) & (got_mask > 0.99)
        assert float((got_mask - ref.mask).abs().mean()) < 0.01
        assert float((got - ref.image).abs().amax(1, keepdim=True)[inside].quantile(0.99)) < 0.03
    turned, turned_mask = pt.render_texture(tex.texture, depth, view, **CAMERA, size=256)
    assert turned.shape == (1, 3, 256, 256) and 0.3 < float(turned_mask.mean()) < 0.9


# ------------------------------------------------------------------------------------------ the SDK


def test_crop_batches_keep_the_crop_square_until_the_work_has_run() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    from latentface_sdk.config import CropConfig
    from latentface_sdk.detection import FaceBox

    crop = CropConfig()
    box = (30.0, 20.0, 70.0, 66.0)
    batch = crop_inputs([rgb], start=0, single=False, detect=True, faces="largest", crop=crop,
                        detect_batch=lambda imgs: [[FaceBox(box, 0.99)] for _ in imgs], max_pixels=10**8)
    assert batch.squares is not None and batch.sources is not None and batch.sources[0] is rgb
    np.testing.assert_array_equal(_resample_square(rgb, tuple(batch.squares[0]), 64),
                                  crop_face(rgb, box, crop))
    seen: list[int] = []

    def work(b):  # type: ignore[no-untyped-def]
        seen.append(len(b.sources))
        return IdentityLatents(torch.zeros(len(b.crops), 1), torch.zeros(len(b.crops), 1))

    pipe = FacePipeline(crop, lambda crops, bs: _latents(len(crops)), lambda: None)  # type: ignore[arg-type,return-value]
    done = pipe.run([rgb, rgb], detect=False, faces="largest", batch_size=1, progress=False, desc="t",
                    max_pixels=10**8, work=work)
    assert seen == [1, 1] and all(b.sources is None and b.squares is not None for b, _ in done)


def _latents(n: int) -> Latents:
    return Latents(torch.zeros(n, 4), torch.zeros(n, 4), torch.zeros(n, 6), torch.zeros(n, 4))


def test_texture_and_size_are_checked(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="texture must be 'photo' or 'albedo'"):
        enc.frontalize(crops[0], detect=False, texture="paint")  # type: ignore[arg-type]
    for bad in (8, 5000, 64.0, True):
        with pytest.raises(ValueError, match="size must be an integer"):
            enc.frontalize(crops[0], detect=False, size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="texture must be"):
        enc.mesh(crops[0], detect=False, texture="paint")  # type: ignore[arg-type]


def test_frontalize_modes_and_sizes_on_the_tiny_model(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    albedo = enc.frontalize(crops[:2], detect=False, texture="albedo", return_tensors=True)
    photo = enc.frontalize(crops[:2], detect=False, texture="photo", return_tensors=True)
    big = enc.frontalize(crops[:2], detect=False, texture="photo", size=256, maps=True)
    assert albedo.tensor.shape == photo.tensor.shape == (2, 3, 64, 64)
    assert big.tensor.shape == (2, 3, 256, 256) and big.mask.shape == (2, 1, 256, 256)
    assert big.images[0] is not None and big.images[0].size == (256, 256)
    assert big.albedo is not None and big.albedo.shape == (2, 3, 64, 64)  # the maps stay the model's
    assert not torch.allclose(albedo.tensor, photo.tensor)
    # the default is the photo texture; the albedo mode is render_views as before (the pinned outputs)
    assert torch.equal(enc.frontalize(crops[:2], detect=False, return_tensors=True).tensor, photo.tensor)
    turned = enc.render(crops[:2], detect=False, yaw=30.0, size=128, return_tensors=True)
    assert turned.tensor.shape == (2, 3, 128, 128) and float(turned.mask.sum()) > 0


@pytest.fixture(scope="module")
def bundled() -> FaceEncoder:
    return FaceEncoder.from_pretrained(threads=1)


def _mse_in_mask(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float((((a - b) ** 2).mean(1, keepdim=True) * mask).sum() / mask.sum())


def _crops(enc: FaceEncoder, paths: list[str], boxes: torch.Tensor) -> torch.Tensor:
    cut = [crop_face(np.asarray(Image.open(p).convert("RGB")), tuple(b.tolist()), enc.config.crop)
           for p, b in zip(paths, boxes, strict=True)]
    return torch.from_numpy(np.stack(cut)).permute(0, 3, 1, 2).float() / 255


def test_the_photo_texture_redraws_the_photo(bundled: FaceEncoder, shared_data: Path) -> None:
    """Drawn back under the pose estimated from the photo, the photo texture is the photo where the photo
    sees the face (a frontal and a turned CelebA face), far closer to it than the albedo's reconstruction."""
    paths = [str(shared_data / "celeba10k" / "images" / n) for n in ("000010.jpg", "000003.jpg")]
    e = bundled.encode(paths)
    crops = _crops(bundled, paths, e.boxes)
    lat = Latents(e.texture, e.shape, e.pose, e.light)
    r = bundled.renderer
    with torch.inference_mode():
        photo_tex, albedo, depth, _ = canonical_texture(bundled.autoencoder, r, lat, crops, light=None,
                                                        size=64, backend="fast")
        shaded, *_ = canonical_texture(bundled.autoencoder, r, lat, None, light=None, size=64,
                                       backend="fast")
        vis = pt.photo_visibility(depth, e.pose, focal=r.focal, centre_depth=r.centre_depth,
                                  fov_deg=r.fov_deg)
        redrawn = r.render_face(photo_tex, depth, e.pose, backend="fast")
        reconstruction = r.render_face(shaded, depth, e.pose, backend="fast")
        seen = r.render_face(vis, depth, e.pose, backend="fast").image
    mask = ((redrawn.mask > 0.99) & (seen > 0.99)).float()
    assert float(mask.sum()) > 0.3 * 64 * 64 * 2
    photo_err = _mse_in_mask(redrawn.image, crops, mask)
    albedo_err = _mse_in_mask(reconstruction.image, crops, mask)
    assert photo_err < 0.002 and photo_err < 0.2 * albedo_err


def test_a_frontal_photos_frontal_view_is_its_crop(bundled: FaceEncoder, shared_data: Path) -> None:
    paths = [str(shared_data / "celeba10k" / "images" / "000010.jpg")]  # yaw 0, pitch 7 degrees
    albedo = bundled.frontalize(paths, texture="albedo", return_tensors=True)
    photo = bundled.frontalize(paths, texture="photo", return_tensors=True)
    crops = _crops(bundled, paths, photo.encoding.boxes)
    mask = (photo.mask > 0.99).float()
    assert _mse_in_mask(photo.tensor, crops, mask) < 0.5 * _mse_in_mask(albedo.tensor, crops, mask)


def _high_frequency(x: torch.Tensor) -> float:
    grey = x.mean(1, keepdim=True)
    lap = torch.nn.functional.conv2d(grey, torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]]))
    return float(lap.abs().mean())


@pytest.mark.slow
def test_size_256_reads_the_original_photo(bundled: FaceEncoder, shared_data: Path) -> None:
    photo = str(shared_data / "photos" / "biden.jpg")  # the face is about 300 px wide
    sharp = bundled.frontalize(photo, size=256, return_tensors=True)
    crop = crop_face(np.asarray(Image.open(photo).convert("RGB")), tuple(sharp.encoding.boxes[0].tolist()),
                     bundled.config.crop)
    from_crop = bundled.frontalize(crop, detect=False, size=256, return_tensors=True)
    assert sharp.tensor.shape == (1, 3, 256, 256)
    assert _high_frequency(sharp.tensor) > 2.0 * _high_frequency(from_crop.tensor)  # the photo's own detail


@pytest.mark.slow
def test_photo_meshes_are_written_and_read_back_with_a_256_texture(bundled: FaceEncoder, shared_data: Path,
                                                                   tmp_path: Path) -> None:
    photo = str(shared_data / "photos" / "obama_small.jpg")
    photo_mesh = bundled.mesh(photo).meshes[0]
    albedo_mesh = bundled.mesh(photo, texture="albedo").meshes[0]
    assert photo_mesh is not None and albedo_mesh is not None
    assert photo_mesh.texture.shape == (256, 256, 3) and albedo_mesh.texture.shape == (64, 64, 3)
    np.testing.assert_allclose(photo_mesh.vertices, albedo_mesh.vertices, atol=1e-6)  # same geometry
    obj, mtl, png = photo_mesh.save(tmp_path / "face.obj")
    assert obj.exists() and mtl.read_text().strip().endswith("face.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), photo_mesh.texture)
    (glb,) = photo_mesh.save(tmp_path / "face.glb")
    assert glb.read_bytes()[:4] == b"glTF"
    (ply,) = photo_mesh.save(tmp_path / "face.ply")
    assert ply.read_bytes().startswith(b"ply")
    pytorch3d_io = pytest.importorskip("pytorch3d.io")
    from pytorch3d.io.experimental_gltf_io import MeshGlbFormat

    io = pytorch3d_io.IO()
    io.register_meshes_format(MeshGlbFormat())
    loaded = io.load_mesh(str(glb), include_textures=True, device="cpu")
    np.testing.assert_allclose(loaded.verts_packed().numpy(), photo_mesh.vertices, atol=1e-6)
    maps = loaded.textures.maps_padded()
    assert tuple(maps.shape) == (1, 256, 256, 3)
    np.testing.assert_allclose(maps[0].numpy(), photo_mesh.texture / 255.0, atol=1e-6)
    # the UVs point each vertex at its texture pixel: sampled there, the texture gives the vertex colours
    uv = loaded.textures.verts_uvs_padded()[0]
    np.testing.assert_allclose(uv.numpy(), photo_mesh.uvs, atol=1e-6)
    ply_mesh = io.load_mesh(str(ply), include_textures=True, device="cpu")
    np.testing.assert_allclose(ply_mesh.textures.verts_features_packed().numpy(), photo_mesh.colors,
                               atol=1 / 255)


def test_the_splatted_zbuffer_keeps_the_nearest_surface() -> None:
    """A plane at depth 1.05 with a raised square (depth 1.0) in its middle, seen from the front: every
    pixel the plane covers holds its depth, the square's pixels the square's, the rest stays empty."""
    depth = torch.full((1, S, S), 1.05)
    depth[:, 24:40, 24:40] = 1.0
    points = geo.depth_to_points(depth, R.focal)
    zbuf = pt.splat_zbuffer(points, S, R.focal)
    assert bool(torch.isfinite(zbuf[:, 2:-2, 2:-2]).all())  # no holes where the surface is
    assert torch.allclose(zbuf[:, 26:38, 26:38], torch.tensor(1.0))
    assert torch.allclose(zbuf[:, 2:20, 2:20], torch.tensor(1.05))
    moved = points + torch.tensor([0.2, 0.0, 0.0])  # shifted right: the image's left columns see nothing
    assert not bool(torch.isfinite(pt.splat_zbuffer(moved, S, R.focal)[:, :, :8]).any())


@pytest.mark.parametrize(("yaw", "relief"), [(35.0, 0.2), (25.0, 0.08), (45.0, 0.08), (60.0, 0.2)])
def test_visibility_agrees_between_the_rasterisers(yaw: float, relief: float) -> None:
    """The z-buffer of the visibility test from PyTorch3D (the renderer of record, CUDA's backend) and from
    the fast CPU path (the splatted surface) give the same visibility."""
    pytest.importorskip("pytorch3d")
    depth = _face_depth(relief=relief)
    pose = torch.tensor([[0.0, 0.0, 0.0, yaw, 5.0, 0.0]])
    fast = pt.photo_visibility(depth, pose, **CAMERA, backend="fast")
    ref = pt.photo_visibility(depth, pose, **CAMERA, backend="pytorch3d")
    diff = (fast - ref).abs()
    assert float(diff.mean()) < 0.01 and float((diff > 0.5).float().mean()) < 0.002
    assert float(ref.mean()) < 0.8  # part of the face is hidden


def test_the_command_line_writes_large_frontal_views_and_glb_meshes(enc: FaceEncoder, tmp_path: Path) -> None:
    from latentface_sdk import cli

    model = enc.save_pretrained(tmp_path / "model")
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(face)
    out = tmp_path / "front.png"
    assert cli.main(["frontalize", str(face), "-o", str(out), "--model", str(model), "--no-detect", "--size",
                     "128", "--no-progress"]) == 0
    assert Image.open(out).size == (128, 128)
    albedo = tmp_path / "albedo" / "front.png"
    assert cli.main(["frontalize", str(face), "-o", str(albedo), "--model", str(model), "--no-detect",
                     "--texture", "albedo", "--no-progress"]) == 0
    assert Image.open(albedo).size == (64, 64)
    glb = tmp_path / "face.glb"
    assert cli.main(["mesh", str(face), "-o", str(glb), "--model", str(model), "--no-detect",
                     "--no-progress"]) == 0
    assert glb.read_bytes()[:4] == b"glTF"
    with pytest.raises(SystemExit):
        cli.main(["frontalize", str(face), "-o", str(out), "--size", "4000", "--no-progress"])


def test_where_the_crop_only_repeats_the_image_edge_the_photo_is_not_read() -> None:
    """A face at the image's edge: the crop's square leaves the image and repeats its edge there; those
    canonical pixels are not the photo's (the mirrored side fills them)."""
    from latentface_sdk.photo_views import photo_bounds
    from latentface_sdk.pipeline import CropBatch

    rgb = np.zeros((100, 80, 3), dtype=np.uint8)
    square = np.array([[40.0, -20.0, 120.0, 60.0]])  # right half and top quarter outside the image
    batch = CropBatch(rows=[], crop_rows=[0], crops=np.zeros((1, S, S, 3), np.uint8), squares=square,
                      sources=[rgb])
    bounds = photo_bounds(batch)
    assert bounds is not None
    np.testing.assert_allclose(bounds.numpy(), [[-1.0, -0.5, 0.0, 1.0]], atol=1e-6)
    depth, pattern = _face_depth(), _pattern()
    pose = torch.zeros(1, 6)
    photo = _photo_of(pattern, depth, pose)
    flat = torch.ones(1, 1, S, S)
    tex = pt.photo_texture(photo, depth, pose, **CAMERA, albedo=flat.expand(1, 3, S, S) * 0.5,
                           photo_shading=flat, bounds=bounds)
    g = geo.image_grid(S, S)
    own = tex.own[0, 0]
    assert float(own[(g[..., 0] > 0.1) | (g[..., 1] < -0.6)].max()) < 1e-6  # outside the image: not read
    assert float(own[(g[..., 0] < -0.1) & (g[..., 1] > -0.4)].min()) > 0.99
    left = (g[..., 0] < -0.1) & (g[..., 1] > -0.4) & (geo.face_region(S) > 0.99)
    right = left.flip(-1)
    # the right half takes the left half's colours, mirrored
    assert float((tex.texture[0][:, right] - pattern.flip(-1)[0][:, right]).abs().max()) < 0.02


@pytest.mark.slow
@pytest.mark.data
def test_the_picture_example_quick(shared_data: Path, tmp_path: Path) -> None:
    """``examples/frontal_photo.py --quick`` as a user runs it: 8 held-out faces, four views each."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "examples/frontal_photo.py", "--quick", "--out", str(tmp_path),
                           "--data", str(shared_data)], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "8 held-out faces" in proc.stdout
    picture = np.asarray(Image.open(tmp_path / "frontal_photo.png").convert("RGB"))
    assert picture.shape == (16 + 4 * 144, 8 * 128, 3) and picture.std() > 30
