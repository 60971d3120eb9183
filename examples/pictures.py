"""Pictures of what a model learned: reconstructions of held-out faces, a yaw sweep and the faces' 3D meshes.

    .venv/bin/python examples/pictures.py --quick      # fewer faces into runs/pictures-quick (10-16 s)
    .venv/bin/python examples/pictures.py --out docs/images   # the pictures in the docs
    .venv/bin/python examples/pictures.py --out docs/images --only mesh   # just docs/images/mesh.png

writes

* ``reconstructions.png``: one held-out CelebA face per row (``verify`` identities, never trained on):
  input | reconstruction | albedo | depth | shading | frontal;
* ``yaw_sweep.png``: a few faces re-rendered from yaw -45 to 45 degrees (``FaceEncoder.render``),
  the input in the first column;
* ``frontalize.png``: turned faces (landmark yaw estimate of at least 0.2) from the held-out UTKFace
  rows, two per row: input | ``FaceEncoder.frontalize`` | input | frontalized;
* ``people.png``: 24 held-out people (the first image of the first 24 celeba10k ``verify`` identities),
  four per row: input | frontalized, to see whether the frontal view keeps the person and the expression;
* ``mesh.png``: a few held-out faces as 3D meshes (``FaceEncoder.mesh``, frontal), one per row, rasterised
  by the project's renderer and shaded under one light: input | the mesh coloured by its albedo seen from
  the front, from 35 and from 70 degrees to the side | the same three views in plain grey, where the
  shading shows the shape alone.

These pictures show the model itself: frontal views, sweeps and meshes use the decoded albedo
(``texture="albedo"``, the paper's rendering); ``examples/frontal_photo.py`` draws the frontal views
textured from the photo. Faces are cropped by the model's own crop policy (MTCNN, as in training).
Images are upscaled (nearest neighbour) so that the 64x64 crops can be seen. The turned UTKFace faces
are searched in file order, 32 images at a time, until enough are found (the quick mode's 4 are in the
first 64 of the 593 held-out images; detecting all of them made ``--quick`` take 67-92 s).
``--quick`` takes 10-16 s single-threaded (``OMP_NUM_THREADS=1``) on 2 cores shared with a training
job, about half of it importing torch and the training code and loading the model.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from _options import held_out_faces
from PIL import Image

from latentface_sdk import FaceEncoder
from latentface_sdk.cropset import prepare_crops
from latentface_sdk.detection import FaceDetector
from latentface_sdk.landmarks import yaw_estimate
from latentface_sdk.mesh import FaceMesh
from latentface_sdk.train.data import shared_source
from latentface_sdk.train.losses import reconstruct
from latentface_sdk.train.stage1 import reconstruction_grid

#: The pictures this script writes (``--only`` picks some of them).
PICTURES = ("reconstructions", "yaw_sweep", "frontalize", "people", "mesh")

#: The mesh picture's views: (yaw in degrees, textured), left to right after the input.
MESH_VIEWS = ((0.0, True), (35.0, True), (70.0, True), (0.0, False), (35.0, False), (70.0, False))


def held_out_crops(encoder: FaceEncoder, celeba: Path, count: int) -> np.ndarray:
    """The model's face crops (MTCNN, else the centre) of ``count`` held-out CelebA photos, uint8
    ``(N, 64, 64, 3)``."""
    paths = [str(p) for p in held_out_faces(celeba, count)]
    crops = prepare_crops(paths, encoder.config.crop, detect=True, fallback="center",
                          detector=encoder.detector)
    return crops.crops[crops.ok]


def turned_faces(data: Path, detector: FaceDetector, count: int, chunk: int = 32) -> np.ndarray:
    """Crops (count, 64, 64, 3) of held-out UTKFace faces turned by at least 0.2 (landmark yaw estimate):
    the first ``count`` in file order. The images are detected ``chunk`` at a time, stopping once
    ``count`` are found (the same faces as detecting all 593, for a fraction of the time)."""
    paths = shared_source(data, "utkface-heldout")
    size = detector.crop.size
    found: list[np.ndarray] = []
    for start in range(0, len(paths), chunk):
        if len(found) >= count:
            break
        crops = prepare_crops(paths[start:start + chunk], detector.crop, detect=True, fallback="none",
                              progress=False, detector=detector)
        yaw = np.abs(yaw_estimate(np.nan_to_num(crops.landmarks)))
        found.extend(crops.crops[np.flatnonzero(crops.ok & (yaw >= 0.2))])
    return np.stack(found[:count]) if found else np.zeros((0, size, size, 3), dtype=np.uint8)


def upscale(img: Image.Image, factor: int) -> Image.Image:
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals (V, 3): the area-weighted sum of each vertex's triangle normals."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    per_face = torch.linalg.cross(b - a, c - a)
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals.index_add_(0, faces[:, k], per_face)
    return normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _turn(yaw: float, pitch: float) -> torch.Tensor:
    """The rotation (3, 3) in the mesh's axes (y up, facing +z) that shows a viewer in front (+z) the face
    from ``yaw`` degrees to the face's left and ``pitch`` degrees above."""
    y, p = math.radians(yaw), math.radians(pitch)
    turn_y = torch.tensor([[math.cos(y), 0.0, -math.sin(y)], [0.0, 1.0, 0.0],
                           [math.sin(y), 0.0, math.cos(y)]])
    tilt_x = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)],
                           [0.0, math.sin(p), math.cos(p)]])
    return tilt_x @ turn_y


def render_mesh_views(mesh: FaceMesh, views: Sequence[tuple[float, bool]], size: int, *, pitch: float = 8.0,
                      supersample: int = 2) -> list[np.ndarray]:
    """Views (size, size, 3) uint8 of ``mesh`` on white, one per ``(yaw, textured)`` of ``views``: the face
    turned to show its left side ``yaw`` degrees and seen ``pitch`` degrees from above, rasterised by the
    project's renderer (:func:`latentface_sdk.render.rasterize.rasterize_fast`, one batch for all views,
    ``supersample`` times larger, then averaged down) and shaded per pixel (ambient, Lambert and a weak
    Blinn-Phong highlight) under a light from above the viewer's left. ``textured``: coloured by the
    albedo; otherwise plain grey (clay), where only the shading shows the shape."""
    from latentface_sdk.render.rasterize import interpolate, rasterize_fast

    verts = torch.from_numpy(mesh.vertices).float()
    faces = torch.from_numpy(mesh.faces).long()
    centre = (verts.min(dim=0).values + verts.max(dim=0).values) / 2
    local = verts - centre
    normals = vertex_normals(local, faces)
    fov = 20.0
    dist = 1.05 * float(local.norm(dim=1).max()) / math.sin(math.radians(fov / 2))  # all of it in view
    turns = torch.stack([_turn(yaw, pitch) for yaw, _ in views])  # (B, 3, 3)
    shown = local @ turns.transpose(1, 2)  # (B, V, 3), the viewer at +z
    # the mesh's axes -> the renderer's camera space (x right, y down, z away from the camera)
    cam = torch.stack([shown[..., 0], -shown[..., 1], dist - shown[..., 2]], dim=-1)
    big = size * supersample
    with torch.no_grad():
        raster = rasterize_fast(cam, faces, big, fov)
        albedo = torch.from_numpy(mesh.colors).float().clamp(0, 1)
        clay = torch.tensor([0.78, 0.76, 0.74]).expand_as(albedo)
        colour = torch.stack([albedo if textured else clay for _, textured in views])
        attributes = torch.cat([normals @ turns.transpose(1, 2), colour], dim=-1)  # (B, V, 6)
        maps = interpolate(raster, faces, attributes).permute(0, 2, 3, 1)  # (B, S, S, 6)
    n = maps[..., :3] / maps[..., :3].norm(dim=-1, keepdim=True).clamp(min=1e-12)
    n = torch.where(n[..., 2:3] < 0, -n, n)  # lit from whichever side of the sheet is seen
    light = torch.tensor([-0.35, 0.5, 1.0])
    light = light / light.norm()
    half = light + torch.tensor([0.0, 0.0, 1.0])
    half = half / half.norm()
    diffuse = (n @ light).clamp(min=0)[..., None]
    highlight = (n @ half).clamp(min=0)[..., None] ** 20
    shaded = maps[..., 3:] * (0.4 + 0.65 * diffuse) + 0.1 * highlight
    covered = (raster.pix_to_face >= 0)[..., None]
    image = torch.where(covered, shaded.clamp(0, 1), torch.ones_like(shaded))
    small = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), supersample)  # (B, 3, size, size)
    return list(to_u8(small))


def mesh_picture(inputs: Sequence[np.ndarray], meshes: Sequence[FaceMesh], size: int) -> Image.Image:
    """One row per face: the input crop (enlarged to ``size``), then the views of :data:`MESH_VIEWS`."""
    rows = []
    for crop, mesh in zip(inputs, meshes, strict=True):
        first = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.NEAREST))
        rows.append(np.concatenate([first, *render_mesh_views(mesh, MESH_VIEWS, size)], axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


def to_u8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def frontal_pairs(encoder: FaceEncoder, faces: np.ndarray, per_row: int) -> Image.Image:
    """Each face beside its frontalized render, ``per_row`` pairs a row (a last, incomplete row left out)."""
    front = to_u8(encoder.frontalize(list(faces), detect=False, texture="albedo", return_tensors=True).tensor)
    pairs = [np.concatenate([faces[i], front[i]], axis=1) for i in range(len(faces))]
    rows = [np.concatenate(pairs[i:i + per_row], axis=1) for i in range(0, len(pairs) - per_row + 1, per_row)]
    return Image.fromarray(np.concatenate(rows, axis=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba10k"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data (UTKFace)")
    parser.add_argument("--turned", type=int, default=8, help="turned faces in frontalize.png (even)")
    parser.add_argument("--out", type=Path,
                        help="output folder (default docs/images; runs/pictures-quick with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="4 faces, 2 sweeps, 4 turned faces, 8 people, 2 meshes")
    parser.add_argument("--only", nargs="+", choices=PICTURES, metavar="PICTURE",
                        help=f"write only these pictures ({', '.join(PICTURES)})")
    parser.add_argument("--faces", type=int, default=12, help="faces in the reconstruction grid")
    parser.add_argument("--sweep-faces", type=int, default=4)
    parser.add_argument("--people", type=int, default=24,
                        help="held-out people in people.png (multiple of 4)")
    parser.add_argument("--mesh-faces", type=int, default=3, help="faces in mesh.png")
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor of the PNGs")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.faces, args.sweep_faces, args.turned, args.people, args.mesh_faces = 4, 2, 4, 8, 2
    args.out = args.out or Path("runs/pictures-quick" if args.quick else "docs/images")
    wanted = set(args.only or PICTURES)

    encoder = FaceEncoder.from_pretrained(args.model, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    # the held-out CelebA faces of the reconstruction grid, the yaw sweep and the meshes: detected once
    need = max(args.faces if "reconstructions" in wanted else 0,
               args.sweep_faces if "yaw_sweep" in wanted else 0, args.mesh_faces if "mesh" in wanted else 0)
    faces = held_out_crops(encoder, args.celeba, need) if need else np.zeros((0, 64, 64, 3), dtype=np.uint8)

    if "reconstructions" in wanted:
        grid_faces = faces[:args.faces]
        x = torch.from_numpy(np.ascontiguousarray(grid_faces)).permute(0, 3, 1, 2).float().div(255)
        with torch.inference_mode():
            rec = reconstruct(encoder.autoencoder, encoder.renderer, x.to(encoder.device))
            grid = reconstruction_grid(x.to(encoder.device), rec, encoder.renderer)
        upscale(grid, args.scale).save(args.out / "reconstructions.png")
        written.append(f"{args.out / 'reconstructions.png'} ({len(grid_faces)} faces: input | reconstruction "
                       "| albedo | depth | shading | frontal)")

    if "yaw_sweep" in wanted:
        sweep_faces = [faces[i] for i in range(min(args.sweep_faces, len(faces)))]
        yaws = list(range(-45, 46, 15))
        columns = [np.stack(sweep_faces)]
        for yaw in yaws:
            view = encoder.render(sweep_faces, yaw=float(yaw), detect=False, texture="albedo",
                                  return_tensors=True)
            columns.append(to_u8(view.tensor))
        rows = [np.concatenate([col[i] for col in columns], axis=1) for i in range(len(sweep_faces))]
        upscale(Image.fromarray(np.concatenate(rows, axis=0)), args.scale).save(args.out / "yaw_sweep.png")
        written.append(f"{args.out / 'yaw_sweep.png'} (input, then yaw {yaws})")

    if "frontalize" in wanted:
        turned = turned_faces(args.data, encoder.detector, args.turned)
        upscale(frontal_pairs(encoder, turned, 2), args.scale).save(args.out / "frontalize.png")
        written.append(f"{args.out / 'frontalize.png'} ({len(turned)} turned faces: input | frontalized)")

    if "people" in wanted:
        faces_p = held_out_crops(encoder, args.celeba, args.people)
        upscale(frontal_pairs(encoder, faces_p, 4), args.scale).save(args.out / "people.png")
        written.append(f"{args.out / 'people.png'} ({len(faces_p)} held-out people: input | frontalized)")

    if "mesh" in wanted:
        mesh_faces = [faces[i] for i in range(min(args.mesh_faces, len(faces)))]
        meshes = encoder.mesh(mesh_faces, view="frontal", detect=False, texture="albedo").meshes
        ok = [(crop, m) for crop, m in zip(mesh_faces, meshes, strict=True) if m is not None]
        picture = mesh_picture([c for c, _ in ok], [m for _, m in ok], size=96 * args.scale)
        picture.save(args.out / "mesh.png")
        views = ", ".join(f"{'albedo' if textured else 'grey'} {yaw:.0f} deg" for yaw, textured in MESH_VIEWS)
        written.append(f"{args.out / 'mesh.png'} ({len(ok)} faces as 3D meshes: input | {views})")

    print("wrote " + "\n      ".join(written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
