"""latentface_sdk.mesh and FaceEncoder.mesh: the written files load back and render as the renderer
renders. The writers need no PyTorch3D; where it is installed, its readers load the files and its writers
give the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import tiny_config
from PIL import Image

from latentface_sdk import FaceEncoder, cli
from latentface_sdk.mesh import face_mesh, to_camera
from latentface_sdk.render import geometry as geo
from latentface_sdk.render.rasterize import interpolate, rasterize_fast
from latentface_sdk.render.renderer import FaceRenderer

S = 64


@pytest.fixture(scope="module")
def maps() -> tuple[torch.Tensor, torch.Tensor]:
    """A face-like depth (a bump nearer the camera in the middle) and a smooth colourful albedo."""
    g = geo.image_grid(S, S)
    depth = 1.0 - 0.05 * torch.exp(-((g[..., 0] ** 2 + g[..., 1] ** 2) / 0.3))
    albedo = torch.stack([(g[..., 0] + 1) / 2, (g[..., 1] + 1) / 2, 0.5 + 0.4 * torch.sin(3 * g[..., 0])])
    return depth, albedo


def test_mesh_is_the_face_region_of_the_grid(maps: tuple[torch.Tensor, torch.Tensor]) -> None:
    depth, albedo = maps
    r = FaceRenderer(S, 10.0, 1.0)
    m = face_mesh(depth, albedo, focal=r.focal, centre_depth=1.0)
    keep = geo.face_region(S) >= 0.5
    assert len(m.vertices) == int(keep.sum()) < S * S  # no background sheet
    assert m.faces.min() >= 0 and m.faces.max() < len(m.vertices) and len(m.faces) > len(m.vertices)
    assert (m.uvs >= 0).all() and (m.uvs <= 1).all()
    rows, cols = m.grid[:, 0], m.grid[:, 1]
    np.testing.assert_allclose(m.colors, albedo[:, rows, cols].t().numpy(), atol=1e-6)
    np.testing.assert_allclose(m.uvs[:, 0], (cols + 0.5) / S, atol=1e-6)
    np.testing.assert_allclose(m.uvs[:, 1], 1 - (rows + 0.5) / S, atol=1e-6)  # OBJ: v up
    # axes: y up (the top row is highest), the bump (nearer the camera) towards +z, counter-clockwise from +z
    top, bottom = m.vertices[rows == rows.min()], m.vertices[rows == rows.max()]
    assert top[:, 1].mean() > bottom[:, 1].mean()
    centre = np.argmin(np.abs(rows - S / 2) + np.abs(cols - S / 2))
    assert m.vertices[centre, 2] > np.median(m.vertices[:, 2])
    v, f = m.vertices, m.faces
    normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (normals[:, 2] > 0).all()
    points = geo.depth_to_points(depth[None], r.focal)[0]
    np.testing.assert_allclose(to_camera(m.vertices, 1.0).numpy(), points[rows, cols].numpy(), atol=1e-6)


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, UVs and 0-based ``v/vt`` faces of an .obj written by FaceMesh.save (no PyTorch3D)."""
    rows: dict[str, list[list[str]]] = {"v": [], "vt": [], "f": []}
    for line in path.read_text().splitlines():
        key, *rest = line.split() or [""]
        if key in rows:
            rows[key].append(rest)
    faces = np.array([[[int(i) for i in c.split("/")] for c in f] for f in rows["f"]]) - 1
    assert (faces[..., 0] == faces[..., 1]).all()  # one UV per vertex
    return np.array(rows["v"], dtype=np.float64), np.array(rows["vt"], dtype=np.float64), faces[..., 0]


def test_obj_mtl_and_ply_read_back_without_pytorch3d(maps: tuple[torch.Tensor, torch.Tensor],
                                                     tmp_path: Path) -> None:
    depth, albedo = maps
    m = face_mesh(depth, albedo, focal=geo.focal_from_fov(10.0), centre_depth=1.0)
    files = m.save(tmp_path / "face.obj")
    assert [p.name for p in files] == ["face.obj", "face.mtl", "face.png"] and all(p.is_file() for p in files)
    assert (tmp_path / "face.obj").read_text().startswith("\nmtllib face.mtl\nusemtl mesh\n")
    assert (tmp_path / "face.mtl").read_text() == "newmtl mesh\nmap_Kd face.png\n"
    verts, uvs, faces = read_obj(tmp_path / "face.obj")
    np.testing.assert_allclose(verts, m.vertices, atol=1e-6)
    np.testing.assert_allclose(uvs, m.uvs, atol=1e-6)
    np.testing.assert_array_equal(faces, m.faces)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "face.png").convert("RGB")), m.texture)
    m.save(tmp_path / "face.ply")
    data = (tmp_path / "face.ply").read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert f"element vertex {len(m.vertices)}".encode() in header and b"property uchar red" in header
    vert_t = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    face_t = np.dtype([("n", "u1"), ("index", "<u4", 3)])
    vv = np.frombuffer(body, vert_t, count=len(m.vertices))
    ff = np.frombuffer(body, face_t, offset=vv.nbytes)
    assert len(ff) == len(m.faces) and (ff["n"] == 3).all()
    np.testing.assert_array_equal(vv["xyz"], m.vertices)
    np.testing.assert_array_equal(ff["index"], m.faces)
    assert np.abs(vv["rgb"] / 255.0 - m.colors).max() <= 0.5 / 255 + 1e-6


def test_the_writers_give_pytorch3d_s_bytes(maps: tuple[torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    """The files of FaceMesh.save are those pytorch3d.io wrote before the writers became the SDK's own."""
    p3d_io = pytest.importorskip("pytorch3d.io")
    from pytorch3d.renderer import TexturesVertex
    from pytorch3d.structures import Meshes

    depth, albedo = maps
    m = face_mesh(depth, albedo, focal=geo.focal_from_fov(10.0), centre_depth=1.0)
    verts, faces = torch.from_numpy(m.vertices), torch.from_numpy(m.faces)
    (tmp_path / "p3d").mkdir()
    p3d_io.save_obj(tmp_path / "p3d" / "face.obj", verts, faces, verts_uvs=torch.from_numpy(m.uvs),
                    faces_uvs=faces, texture_map=torch.from_numpy(m.texture.astype(np.float32) / 255.0),
                    decimal_places=6)
    mesh = Meshes([verts], [faces], textures=TexturesVertex([torch.from_numpy(m.colors)]))
    p3d_io.IO().save_mesh(mesh, tmp_path / "p3d" / "face.ply", binary=True, colors_as_uint8=True)
    written = m.save(tmp_path / "ours" / "face.obj") + m.save(tmp_path / "ours" / "face.ply")
    assert len(written) == 4
    for path in written:
        assert path.read_bytes() == (tmp_path / "p3d" / path.name).read_bytes(), path.name


def test_obj_and_ply_load_back(maps: tuple[torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    p3d_io = pytest.importorskip("pytorch3d.io")
    IO, load_obj = p3d_io.IO, p3d_io.load_obj
    depth, albedo = maps
    m = face_mesh(depth, albedo, focal=geo.focal_from_fov(10.0), centre_depth=1.0)
    files = m.save(tmp_path / "face.obj")
    assert [p.name for p in files] == ["face.obj", "face.mtl", "face.png"] and all(p.is_file() for p in files)
    verts, faces, aux = load_obj(tmp_path / "face.obj")
    np.testing.assert_allclose(verts.numpy(), m.vertices, atol=1e-5)
    np.testing.assert_array_equal(faces.verts_idx.numpy(), m.faces)
    np.testing.assert_allclose(aux.verts_uvs.numpy(), m.uvs, atol=1e-5)
    texture = np.asarray(Image.open(tmp_path / "face.png").convert("RGB"))
    np.testing.assert_array_equal(texture, m.texture)
    assert np.abs(texture.astype(float) / 255 - albedo.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    m.save(tmp_path / "face.ply")
    ply = IO().load_mesh(tmp_path / "face.ply")
    np.testing.assert_allclose(ply.verts_packed().numpy(), m.vertices, atol=1e-6)
    np.testing.assert_array_equal(ply.faces_packed().numpy(), m.faces)
    colors = ply.textures.verts_features_packed().numpy()
    assert np.abs(colors - m.colors).max() <= 1 / 255
    with pytest.raises(ValueError, match=r"\.obj or \.ply"):
        m.save(tmp_path / "face.stl")


def test_rendering_the_loaded_mesh_gives_the_render(maps: tuple[torch.Tensor, torch.Tensor],
                                                    tmp_path: Path) -> None:
    """The .obj, read back and drawn with the project's rasteriser, is the renderer's image of the maps."""
    depth, albedo = maps
    r = FaceRenderer(S, 10.0, 1.0, backend="fast")
    face_mesh(depth, albedo, focal=r.focal, centre_depth=1.0).save(tmp_path / "face.obj")
    v, vt, f = read_obj(tmp_path / "face.obj")
    verts, uv = torch.from_numpy(v).float(), torch.from_numpy(vt).float()
    tri = torch.from_numpy(f)
    texture = torch.from_numpy(np.array(Image.open(tmp_path / "face.png").convert("RGB"))).float() / 255
    # each vertex's colour read from the texture at its UV (pixel centres)
    cols = (uv[:, 0] * S - 0.5).round().long()
    rows = ((1 - uv[:, 1]) * S - 0.5).round().long()
    colour = texture[rows, cols]
    cam = to_camera(verts, 1.0)[None]
    raster = rasterize_fast(cam, tri, S, 10.0)
    drawn = interpolate(raster, tri, colour[None])
    pose = torch.zeros(1, 6)
    ref = r.render(albedo[None], depth[None], pose)
    inside = (raster.mask[0, 0] > 0) & (geo.face_region(S) > 0.9)
    assert inside.sum() > 1500
    diff = (drawn[0] - ref.image[0]).abs().amax(0)[inside]
    assert float(diff.max()) <= 1.0 / 255 + 1e-4  # the texture's 8-bit rounding


@pytest.fixture(scope="module")
def enc() -> FaceEncoder:
    torch.manual_seed(4)
    return FaceEncoder.from_config(tiny_config("tiny-mesh"))


def test_face_encoder_mesh_rows_and_views(enc: FaceEncoder, tmp_path: Path) -> None:
    crops = list(np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no")
    r = enc.mesh([crops[0], str(bad), crops[1]], detect=False)
    assert r.ok.tolist() == [True, False, True] and r.meshes[1] is None and "bad.jpg" in (r.errors[1] or "")
    assert r.view == "frontal" and "FaceMeshes(n=3, ok=2" in repr(r)
    written = r.save(tmp_path / "out", ".ply")
    assert written[1] is None and written[0] is not None and written[0].is_file()
    # the photo's head rotation turns the mesh: the same vertices rotated about the centre
    with torch.no_grad():
        enc.autoencoder.pose_encoder.net[-2].bias.fill_(0.5)  # type: ignore[union-attr]
    turned = enc.mesh(crops[0], view="photo", detect=False).meshes[0]
    front = enc.mesh(crops[0], view="frontal", detect=False).meshes[0]
    assert turned is not None and front is not None
    assert np.abs(turned.vertices - front.vertices).max() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(turned.vertices, axis=1),
                               np.linalg.norm(front.vertices, axis=1),
                               atol=1e-5)  # a rotation about the origin keeps distances
    with pytest.raises(ValueError, match="view"):
        enc.mesh(crops[0], view="side", detect=False)  # type: ignore[arg-type]


def test_mesh_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(5)
    model = FaceEncoder.from_config(tiny_config("tiny-mesh-cli")).save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"c{i}.png")
    one = tmp_path / "one.obj"
    assert cli.main(["mesh", str(tmp_path / "c0.png"), "-o", str(one), "--no-detect", "--model", str(model),
                     "--no-progress"]) == 0
    assert one.is_file() and one.with_suffix(".mtl").is_file() and one.with_suffix(".png").is_file()
    assert cli.main(["mesh", str(tmp_path / "c0.png"), str(tmp_path / "c1.png"), "-o", str(one),
                     "--no-detect", "--model", str(model)]) == 2
    assert "one mesh" in capsys.readouterr().err
    assert cli.main(["mesh", str(tmp_path / "c0.png"), str(tmp_path / "c1.png"), "-o",
                     str(tmp_path / "meshes"), "--no-detect", "--format", "ply", "--model", str(model),
                     "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == ["c0.ply", "c1.ply"]
