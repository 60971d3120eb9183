"""Frontal views textured from the photo itself beside the albedo's, on held-out faces (issue 38).

    .venv/bin/python examples/frontal_photo.py --quick              # 8 faces into runs/frontal-photo-quick
    .venv/bin/python examples/frontal_photo.py --out docs/images    # docs/images/frontal_photo.png, 24 faces

writes ``frontal_photo.png``: 24 held-out faces, two per row, each as four pictures of 128x128 and a
caption: the crop the model sees (64x64, enlarged) | ``frontalize(texture="albedo")`` (the paper's
rendering, 64x64 enlarged) | ``frontalize(texture="photo")`` (64x64 enlarged) | ``frontalize(texture="photo",
size=128)`` (read from the original image at that resolution). The faces, none of them trained on:

* 16 UTKFace held-out rows (every 40th file, ``utkface-heldout``), chosen by the labels in their file names:
  one per gender and race (UTKFace's races: White, Black, Asian, Indian, Other), their ages cycling
  through under 20 / 20-39 / 40-59 / 60 and over and, alternately, the most turned and the most frontal
  of that group; then the 6 most turned faces left (by the model's estimated yaw);
* 8 CelebA ``verify`` identities (the first image of each of the first 8).

The caption gives the source, age, gender and race (UTKFace) and the estimated yaw. ``--quick`` uses the
first 96 held-out UTKFace files and 8 faces (about 40 s on 2 shared cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _options import held_out_faces
from PIL import Image, ImageDraw

from latentface_sdk import FaceEncoder
from latentface_sdk.detection import crop_face
from latentface_sdk.images import to_rgb
from latentface_sdk.train.data import shared_source

RACES = ("White", "Black", "Asian", "Indian", "Other")
AGES = ((0, 19), (20, 39), (40, 59), (60, 200))
CELL = 128


def utk_labels(path: str) -> tuple[int, int, int] | None:
    """(age, gender 0 male / 1 female, race) from a UTKFace file name, or None when it has no labels."""
    parts = Path(path).name.split("_")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None


def choose_utk(paths: list[str], yaw: np.ndarray, count: int, turned: int) -> list[int]:
    """Indices of ``count`` faces balanced by gender x race with cycling ages, alternately the most turned
    and the most frontal of a group, then the ``turned`` most turned faces left."""
    labels = [utk_labels(p) for p in paths]
    chosen: list[int] = []
    k = 0
    for race in range(len(RACES)):
        for gender in (0, 1):
            group = [i for i, lab in enumerate(labels) if lab and lab[1] == gender and lab[2] == race
                     and np.isfinite(yaw[i])]
            lo, hi = AGES[k % len(AGES)]
            aged = [i for i in group if lo <= labels[i][0] <= hi] or group  # type: ignore[index]
            k += 1
            if aged and len(chosen) < count - turned:
                key = (lambda i: -abs(yaw[i])) if k % 2 else (lambda i: abs(yaw[i]))
                chosen.append(sorted(aged, key=key)[0])
    rest = sorted((i for i in range(len(paths)) if i not in chosen and np.isfinite(yaw[i])),
                  key=lambda i: -abs(yaw[i]))
    return chosen + rest[:count - len(chosen)]


def caption(path: str, yaw: float) -> str:
    lab = utk_labels(path)
    if "utkface" in path and lab is not None:
        age, gender, race = lab
        return f"UTKFace {age}y {'F' if gender else 'M'} {RACES[race] if race < 5 else race}, yaw {yaw:+.0f}"
    return f"CelebA verify {Path(path).stem}, yaw {yaw:+.0f}"


def to_cell(image: np.ndarray | torch.Tensor, size: int = CELL) -> Image.Image:
    """A uint8 ``H x W x 3`` crop or a ``(3, H, W)`` render in [0, 1] as a size x size picture (nearest
    neighbour)."""
    if isinstance(image, torch.Tensor):
        image = (image.nan_to_num(0.0).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.NEAREST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path,
                        help="output folder (default docs/images; runs/frontal-photo-quick with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="8 faces from the first 96 held-out UTKFace files")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    out = args.out or Path("runs/frontal-photo-quick" if args.quick else "docs/images")
    n_utk, n_turned, n_celeba = (6, 2, 2) if args.quick else (16, 6, 8)

    enc = FaceEncoder.from_pretrained(args.model, device=args.device)
    utk = shared_source(args.data, "utkface-heldout")
    if args.quick:
        utk = utk[:96]
    found = enc.encode(utk, batch_size=32)  # MTCNN, the model's crop policy; the yaw of each face
    yaw = np.where(found.ok.numpy(), found.yaw.numpy(), np.nan)
    picked = [utk[i] for i in choose_utk(utk, yaw, n_utk, n_turned)]
    paths = picked + [str(p) for p in held_out_faces(args.data / "celeba10k", n_celeba)]

    albedo = enc.frontalize(paths, texture="albedo", return_tensors=True)
    photo = enc.frontalize(paths, texture="photo", return_tensors=True)
    large = enc.frontalize(paths, texture="photo", size=CELL, return_tensors=True)
    tiles = []
    for i, path in enumerate(paths):
        if not bool(photo.ok[i]):
            continue
        crop = crop_face(to_rgb(path), tuple(photo.encoding.boxes[i].tolist()), enc.config.crop)
        cells = [to_cell(crop), to_cell(albedo.tensor[i]), to_cell(photo.tensor[i]), to_cell(large.tensor[i])]
        tile = Image.new("RGB", (4 * CELL, CELL + 16), "white")
        for k, c in enumerate(cells):
            tile.paste(c, (k * CELL, 0))
        ImageDraw.Draw(tile).text((4, CELL + 2), caption(path, float(photo.encoding.yaw[i])), fill=(0, 0, 0))
        tiles.append(tile)
    header = Image.new("RGB", (8 * CELL, 16), "white")
    draw = ImageDraw.Draw(header)
    for half in (0, 4 * CELL):
        for k, name in enumerate(("crop (64)", "albedo (64)", "photo (64)", f"photo (size={CELL})")):
            draw.text((half + k * CELL + 4, 2), name, fill=(0, 0, 0))
    rows = [header]
    for j in range(0, len(tiles), 2):
        row = Image.new("RGB", (8 * CELL, CELL + 16), "white")
        for k, tile in enumerate(tiles[j:j + 2]):
            row.paste(tile, (k * 4 * CELL, 0))
        rows.append(row)
    picture = Image.new("RGB", (8 * CELL, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        picture.paste(r, (0, y))
        y += r.height
    out.mkdir(parents=True, exist_ok=True)
    picture.save(out / "frontal_photo.png")
    print(f"wrote {out / 'frontal_photo.png'} ({len(tiles)} held-out faces: crop | albedo | photo | "
          f"photo at {CELL}x{CELL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
