"""Pictures of what a model learned: reconstructions of held-out faces and a yaw sweep.

    .venv/bin/python examples/pictures.py --quick      # 4 faces into runs/pictures-quick (11 s)
    .venv/bin/python examples/pictures.py --out docs/images   # the pictures in the docs

writes

* ``reconstructions.png``: one held-out CelebA face per row (``verify`` identities, never trained on):
  input | reconstruction | albedo | depth | shading | frontal;
* ``yaw_sweep.png``: a few faces re-rendered from yaw -45 to 45 degrees (``FaceEncoder.render``),
  the input in the first column;
* ``frontalize.png``: turned faces (landmark yaw estimate of at least 0.2) from the held-out UTKFace
  rows, two per row: input | ``FaceEncoder.frontalize`` | input | frontalized;
* ``people.png``: 24 held-out people (the first image of the first 24 celeba10k ``verify`` identities),
  four per row: input | frontalized, to see whether the frontal view keeps the person and the expression.

Faces are cropped by the model's own crop policy (MTCNN, as in training). Images are upscaled
(nearest neighbour) so that the 64x64 crops can be seen.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentface_sdk import FaceEncoder
from latentface_sdk.config import CropConfig
from latentface_sdk.cropset import prepare_crops
from latentface_sdk.landmarks import yaw_estimate
from latentface_sdk.train.data import shared_source
from latentface_sdk.train.losses import reconstruct
from latentface_sdk.train.stage1 import reconstruction_grid


def held_out_faces(celeba: Path, count: int) -> list[Path]:
    """The first image of each of the first ``count`` ``verify`` identities of celeba10k."""
    seen: set[str] = set()
    paths: list[Path] = []
    with open(celeba / "identity.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "verify" and row["identity"] not in seen:
                seen.add(row["identity"])
                paths.append(celeba / "images" / row["image"])
                if len(paths) == count:
                    break
    return paths


def turned_faces(data: Path, crop: CropConfig, count: int) -> np.ndarray:
    """Crops (count, 64, 64, 3) of held-out UTKFace faces turned by at least 0.2 (landmark yaw estimate)."""
    paths = shared_source(data, "utkface-heldout")
    crops = prepare_crops(paths, crop, detect=True, fallback="none", progress=False)
    yaw = np.abs(yaw_estimate(np.nan_to_num(crops.landmarks)))
    keep = np.flatnonzero(crops.ok & (yaw >= 0.2))[:count]
    return crops.crops[keep]


def upscale(img: Image.Image, factor: int) -> Image.Image:
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba10k"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data (UTKFace)")
    parser.add_argument("--turned", type=int, default=8, help="turned faces in frontalize.png (even)")
    parser.add_argument("--out", type=Path, help="output folder (default docs/images; runs/pictures-quick with --quick)")
    parser.add_argument("--quick", action="store_true", help="4 faces, 2 sweeps, 4 turned faces")
    parser.add_argument("--faces", type=int, default=12, help="faces in the reconstruction grid")
    parser.add_argument("--sweep-faces", type=int, default=4)
    parser.add_argument("--people", type=int, default=24, help="held-out people in people.png (multiple of 4)")
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor of the PNGs")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.faces, args.sweep_faces, args.turned, args.people = 4, 2, 4, 8
    args.out = args.out or Path("runs/pictures-quick" if args.quick else "docs/images")

    encoder = FaceEncoder.from_pretrained(args.model, device=args.device)
    paths = held_out_faces(args.celeba, args.faces)
    crops = prepare_crops([str(p) for p in paths], encoder.config.crop, detect=True, fallback="center")
    faces = crops.crops[crops.ok]
    args.out.mkdir(parents=True, exist_ok=True)

    x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float().div(255).to(encoder.device)
    with torch.inference_mode():
        rec = reconstruct(encoder.autoencoder, encoder.renderer, x)
        grid = reconstruction_grid(x, rec, encoder.renderer)
    upscale(grid, args.scale).save(args.out / "reconstructions.png")

    sweep_faces = [faces[i] for i in range(min(args.sweep_faces, len(faces)))]
    yaws = list(range(-45, 46, 15))
    columns = [np.stack(sweep_faces)]
    for yaw in yaws:
        view = encoder.render(sweep_faces, yaw=float(yaw), detect=False, return_tensors=True)
        columns.append((view.tensor.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    rows = [np.concatenate([col[i] for col in columns], axis=1) for i in range(len(sweep_faces))]
    upscale(Image.fromarray(np.concatenate(rows, axis=0)), args.scale).save(args.out / "yaw_sweep.png")
    turned = turned_faces(args.data, encoder.config.crop, args.turned)
    front = encoder.frontalize(list(turned), detect=False, return_tensors=True).tensor
    front_u8 = (front.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    pairs = [np.concatenate([turned[i], front_u8[i]], axis=1) for i in range(len(turned))]
    rows2 = [np.concatenate(pairs[i:i + 2], axis=1) for i in range(0, len(pairs) - 1, 2)]
    upscale(Image.fromarray(np.concatenate(rows2, axis=0)), args.scale).save(args.out / "frontalize.png")
    people_paths = [str(p) for p in held_out_faces(args.celeba, args.people)]
    people = prepare_crops(people_paths, encoder.config.crop, detect=True, fallback="center")
    faces_p = people.crops[people.ok]
    front_p = encoder.frontalize(list(faces_p), detect=False, return_tensors=True).tensor
    front_p8 = (front_p.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    pairs_p = [np.concatenate([faces_p[i], front_p8[i]], axis=1) for i in range(len(faces_p))]
    rows_p = [np.concatenate(pairs_p[i:i + 4], axis=1) for i in range(0, len(pairs_p) - 3, 4)]
    upscale(Image.fromarray(np.concatenate(rows_p, axis=0)), args.scale).save(args.out / "people.png")
    print(f"wrote {args.out / 'reconstructions.png'} ({len(faces)} faces: input | reconstruction | albedo | "
          f"depth | shading | frontal), {args.out / 'yaw_sweep.png'} (input, then yaw {yaws}) and "
          f"{args.out / 'frontalize.png'} ({len(turned)} turned faces: input | frontalized) and "
          f"{args.out / 'people.png'} ({len(faces_p)} held-out people: input | frontalized)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
