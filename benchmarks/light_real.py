"""Does the light latent follow the light of real photographs? Two references that need no light labels.

    python benchmarks/light_real.py --threads 2 --json benchmarks/results/light_real.json

No set of real photographs with measured light directions is in ``../shared/data``, so the check uses
two facts about real photos that hold without labels, on faces the model never trained on (the celeba10k
``verify`` rows and every 40th UTKFace file, the rows ``pose_check`` holds out):

1. **mirror**: a photo flipped left-right is lit from the mirrored side, so the light's horizontal
   direction ``dx`` of the flipped photo should be minus that of the photo (``dy`` unchanged). Reported:
   the correlation of ``dx(photo)`` with ``-dx(flipped)`` and of ``dy`` with ``dy``, and the mean
   ``|dx + dx_flipped|`` against the spread of ``dx``.
2. **shading asymmetry**: a face's albedo is close to left-right symmetric, so how much brighter one side
   of the face is than its mirror side says from which side the light comes. The reference is
   ``(L_right - L_left) / (L_right + L_left)`` of the grey crop's pixels inside the face region
   (:func:`~latentface_sdk.render.geometry.face_region`, centre half of the height), each pixel against
   its mirror pixel, for faces the model sees as frontal (``|yaw| <= 10`` degrees, so that the turn of the
   head does not shade one side). Reported: Pearson r and R^2 of ``dx`` against it; and, as the same
   measure of the model's own renders, of ``dx`` against the asymmetry of its re-render of each face.

Elevation has no such label-free reference on real photos (a face is not up-down symmetric), so ``dy``
is only checked by the mirror test here; pose_check measures both on the model's own renders.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import base_parser, check_setup, machine, write_json  # noqa: E402

from latentface_sdk.cropset import prepare_crops  # noqa: E402
from latentface_sdk.render.geometry import face_region  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def held_out(data: Path, quick: bool) -> list[Path]:
    rows = list(csv.DictReader(open(data / "celeba10k" / "identity.csv", newline="")))
    paths = [data / "celeba10k" / "images" / r["image"] for r in rows if r["split"] == "verify"]
    utk = sorted((data / "utkface" / "images").glob("*.jpg"))[::40]
    paths += utk
    return paths[:200] if quick else paths


def asymmetry(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(L_right - L_left) / (L_right + L_left)`` of each ``(N, S, S)`` image over the mirrored pixel pairs
    of ``mask`` (``S x S``), right = the image's right half."""
    s = grey.shape[-1]
    half = s // 2
    m = mask[:, half:] & mask[:, :half][:, ::-1]
    right = (grey[:, :, half:] * m).sum((1, 2))
    left = (grey[:, :, :half][:, :, ::-1] * m).sum((1, 2))
    return (right - left) / np.maximum(right + left, 1e-6)


def r_and_r2(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    r = float(np.corrcoef(x, y)[0, 1])
    return {"r": r, "r2": r * r, "n": int(len(x))}


def main() -> None:
    p = base_parser(__doc__.splitlines()[0])
    args = p.parse_args()
    enc, cache = check_setup(args, "light_real")
    paths = held_out(args.data, args.quick)
    cs = prepare_crops(paths, enc.config.crop, fallback="none",
                       cache_file=cache / f"crops{'_quick' if args.quick else ''}.npz", progress=False)
    crops = cs.crops[cs.ok]
    e = enc.encode(list(crops), detect=False)
    f = enc.encode([c[:, ::-1].copy() for c in crops], detect=False)
    dx, dy, fdx, fdy = (t.numpy() for t in (e.light[:, 2], e.light[:, 3], f.light[:, 2], f.light[:, 3]))
    mirror = {
        "dx_vs_minus_flipped_dx": r_and_r2(dx, -fdx),
        "dy_vs_flipped_dy": r_and_r2(dy, fdy),
        "mean_abs_dx_plus_flipped_dx": float(np.mean(np.abs(dx + fdx))),
        "dx_std": float(dx.std()),
        "dy_std": float(dy.std()),
    }
    size = crops.shape[1]
    region = face_region(size).numpy() > 0.5
    band = np.zeros_like(region)
    band[size // 4: 3 * size // 4] = True  # cheeks, eyes, nose: where both sides face the camera alike
    mask = region & band
    grey = crops.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    asym = asymmetry(grey, mask)
    yaw = e.pose[:, 3].numpy()
    frontal = np.abs(yaw) <= 10.0
    renders = enc.render(list(crops[frontal]), detect=False, texture="albedo", return_tensors=True,
                         yaw=0.0) if hasattr(enc, "render") else None
    shading_asym: dict[str, float] | None = None
    if renders is not None:
        rgb = renders.tensor.nan_to_num(0.0).numpy().transpose(0, 2, 3, 1)
        render_grey = rgb @ np.array([0.299, 0.587, 0.114])
        shading_asym = r_and_r2(dx[frontal], asymmetry(render_grey, mask))
    result = {
        "model": {"name": enc.config.name, "checksum": enc.config.checksum},
        "faces": int(len(crops)), "frontal_faces": int(frontal.sum()),
        "mirror": mirror,
        "photo_asymmetry": {"frontal": r_and_r2(dx[frontal], asym[frontal]), "all": r_and_r2(dx, asym)},
        "own_render_asymmetry_frontal": shading_asym,
        "machine": machine(args.threads),
    }
    import json

    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    write_json(args.json, result)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
