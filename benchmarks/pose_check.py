"""Does stage 1 mean what its names say? Pose, frontalization, light and reconstruction on held-out faces.

    python benchmarks/pose_check.py --model weights/latentface-cpu-small \
        --json benchmarks/results/pose_check.json

Faces the model never trained on: the UTKFace rows held out of ``shared:utkface-train`` (every 40th
file) and the celeba10k ``verify`` rows (a fixed sample). Every face is cropped with MTCNN as in
training; MTCNN's five landmarks give model-free references. Measured (issue 13's goals):

1. **pose**: Pearson r between the model's yaw and the landmark yaw estimate
   ``(nose_u - eye_mid_u) / interocular`` (:func:`latentface_sdk.landmarks.yaw_estimate`), and between
   roll and the eye-line angle; the spread (std, degrees) of yaw;
2. **frontalize turns faces**: on faces with ``|yaw estimate| >= 0.2``, MTCNN is run on the frontalized
   image (upsampled 2x): the mean ``|estimate|`` after over before, and the share of outputs where
   MTCNN still finds a face; the share of the frame the render's mask covers;
3. **light means light**: each face is re-rendered by the model's own renderer (its albedo, depth and
   pose) under a known random light, pasted over its background, and encoded again: R^2 of the light
   direction ``(dx, dy)`` read back, over both and for each alone (``dx``: the light's azimuth,
   left-right; ``dy``: its elevation, up-down), and how far the texture latent moves (relative to the
   distance between two different people's texture latents);
4. **reconstruction**: mean absolute error inside the render mask on the input crops;
5. **keypoint pits**: how far the depth at the five canonical keypoints lies behind the mean depth of the
   5x5 pixels around it (the "dots" a point-read landmark loss digs), over the face's relief (the 5-95
   percentile depth range in the centre of the map); 0 for a smooth face.

Roll on rolled photos: the held-out sets are aligned photos (their eye lines are level within about
1.5 degrees), too little roll for a correlation to mean much. So each held-out photo is also turned in
its plane by a known angle (uniform in +-30 degrees, fixed seed; PIL, the uncovered corners filled with
the photo's mirror image), cropped again by
MTCNN as any photo would be, and the model's roll is compared with the eye-line angle of MTCNN's
landmarks on that crop (``rolled_roll_r``) and with the angle the photo was turned by
(``rolled_roll_slope``: degrees of model roll per degree of turn, 1 when roll follows exactly).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentface_sdk import FaceEncoder
from latentface_sdk.config import CropConfig
from latentface_sdk.cropset import prepare_crops
from latentface_sdk.detection import FaceDetector, landmarks_in_crop, select_faces
from latentface_sdk.landmarks import canonical_keypoints, pearson, roll_estimate, yaw_estimate
from latentface_sdk.model_folder import AUTOENCODER, load_model_folder, load_part
from latentface_sdk.models.autoencoder import LatentAutoencoder
from latentface_sdk.render.renderer import FaceRenderer
from latentface_sdk.train.data import shared_source
from latentface_sdk.train.losses import depth_at, random_light, reconstruct


def held_out_paths(data: Path, n_celeba: int, seed: int) -> dict[str, list[str]]:
    """The held-out image lists: UTKFace's held-out rows and a fixed sample of celeba10k verify rows."""
    with open(data / "celeba10k" / "identity.csv", newline="", encoding="utf-8") as fh:
        rows = [r["image"] for r in csv.DictReader(fh) if r["split"] == "verify"]
    pick = np.random.default_rng(seed).choice(len(rows), min(n_celeba, len(rows)), replace=False)
    celeba = [str(data / "celeba10k" / "images" / rows[i]) for i in sorted(pick)]
    return {"utkface-heldout": shared_source(data, "utkface-heldout"), "celeba-verify": celeba}


def load_stage1(model: str | None) -> tuple[LatentAutoencoder, CropConfig, str]:
    """The stage-1 autoencoder, crop policy and name of a model (a stage-1-only run folder works too)."""
    if model is not None and Path(model).is_dir():
        cfg, tensors = load_model_folder(Path(model))
        ae = LatentAutoencoder(cfg.autoencoder)
        load_part(ae, tensors, AUTOENCODER, model)
        return ae.eval(), cfg.crop, cfg.name
    enc = FaceEncoder.from_pretrained(model, device="cpu")
    return enc.autoencoder.eval(), enc.config.crop, enc.config.name


@torch.no_grad()
def measure(ae: LatentAutoencoder, crops: np.ndarray, landmarks: np.ndarray, detector: FaceDetector,
            seed: int, batch: int = 64) -> dict[str, float]:
    """All the numbers for one set of crops (uint8 (N, 64, 64, 3)) with their landmarks (N, 5, 2)."""
    c = ae.cfg  # the fast rasteriser: PyTorch3D's CPU path is 30x slower
    renderer = FaceRenderer(c.image_size, c.fov_deg, (c.depth_min + c.depth_max) / 2, "fast")
    x_all = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    gen = torch.Generator().manual_seed(seed)
    poses, l1s, covers, fronts, masks = [], [], [], [], []
    light_true, light_pred, tex_move = [], [], []
    textures, pits = [], []
    # where the landmark loss reads the depth: the canonical keypoints (as training computes them)
    keypoints = torch.as_tensor(canonical_keypoints(landmarks), dtype=torch.float32)
    for start in range(0, len(x_all), batch):
        x = x_all[start:start + batch]
        rec = reconstruct(ae, renderer, x)
        m = rec.recon.mask
        l1s.append(((rec.recon.image - x).abs().mean(1, keepdim=True) * m).sum((1, 2, 3))
                    / m.sum((1, 2, 3)).clamp(min=1))
        poses.append(rec.latents.pose)
        textures.append(rec.latents.texture)
        pose0 = torch.zeros_like(rec.latents.pose)
        front = renderer.render_face(rec.shaded.image, rec.maps.depth, pose0)
        fronts.append(front.image.clamp(0, 1))
        masks.append(front.mask)
        covers.append(front.mask.mean((1, 2, 3)))
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        light = random_light(x.shape[0], x)
        view = renderer.render(renderer.shade(rec.maps.albedo, rec.maps.depth, light).image, rec.maps.depth,
                               rec.latents.pose)
        relit = (view.image * view.mask + x * (1 - view.mask)).clamp(0, 1)
        again = ae.encode(relit)
        light_true.append(light[:, 2:])
        light_pred.append(again.light[:, 2:])
        tex_move.append((again.texture - rec.latents.texture).norm(dim=1))
        depth = rec.maps.depth
        pit = (depth_at(depth, keypoints) - depth_at(depth, keypoints, blur=5)).mean(1)  # > 0: a pit
        centre = depth[:, 16:48, 16:48].flatten(1)
        relief = torch.quantile(centre, 0.95, dim=1) - torch.quantile(centre, 0.05, dim=1)
        pits.append(pit / relief.clamp(min=1e-6))
    pose = torch.cat(poses).numpy()
    yaw_lm, roll_lm = yaw_estimate(landmarks), roll_estimate(landmarks)
    out: dict[str, float] = {
        "faces": float(len(x_all)),
        "yaw_r": pearson(pose[:, 3], yaw_lm), "roll_r": pearson(pose[:, 5], roll_lm),
        "yaw_std_deg": float(pose[:, 3].std()), "pitch_std_deg": float(pose[:, 4].std()),
        "roll_std_deg": float(pose[:, 5].std()), "yaw_estimate_std": float(np.nanstd(yaw_lm)),
        "recon_masked_l1": float(torch.cat(l1s).mean()),
        "frontal_mask_cover": float(torch.cat(covers).mean()),
    }
    # Light: R^2 of the direction over both components.
    t, p = torch.cat(light_true).numpy(), torch.cat(light_pred).numpy()
    out["light_r2"] = float(1.0 - ((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum())
    for i, part in enumerate(("azimuth", "elevation")):
        out[f"light_r2_{part}"] = float(1.0 - ((p[:, i] - t[:, i]) ** 2).sum()
                                        / ((t[:, i] - t[:, i].mean()) ** 2).sum())
    if pits:
        out["keypoint_pit_over_relief"] = float(torch.cat(pits).mean())
    tex = torch.cat(textures)
    perm = torch.randperm(len(tex), generator=torch.Generator().manual_seed(seed))
    between = (tex - tex[perm]).norm(dim=1)[perm != torch.arange(len(tex))]
    out["texture_move_relit_over_between_people"] = float(torch.cat(tex_move).mean() / between.mean())
    # Frontalization: MTCNN on the frontal renders of turned faces (2x upsampled: 64 px is near MTCNN's
    # limit).
    turned = np.flatnonzero(np.abs(yaw_lm) >= 0.2)
    out["turned_faces"] = float(len(turned))
    if len(turned):
        front_all = torch.cat(fronts)[torch.from_numpy(turned)]
        found, before, after = 0, [], []
        for k, i in enumerate(turned):
            img = (front_all[k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            big = np.asarray(Image.fromarray(img).resize((128, 128), Image.Resampling.BILINEAR))
            faces = select_faces(detector.detect(big), "largest")
            if faces and faces[0].landmarks is not None:
                found += 1
                marks = landmarks_in_crop(faces[0].landmarks, (0, 0, 128, 128), 0.0)
                after.append(abs(float(yaw_estimate(marks))))
                before.append(abs(float(yaw_lm[i])))
        out["frontal_detected"] = found / len(turned)
        out["frontal_yaw_ratio"] = float(np.mean(after) / np.mean(before)) if after else math.nan
    return {k: round(v, 4) for k, v in out.items()}


def rolled_copies(paths: list[str], folder: Path, seed: int,
                  max_deg: float = 30.0) -> tuple[list[str], np.ndarray]:
    """Each photo turned in its plane by a seeded angle (degrees, counter-clockwise as PIL turns), saved as
    PNG.

    The photo is first padded by its own mirror image (a quarter of its size on each side), turned, and
    cut back to its size, so that the corners the turn uncovers hold picture rather than black wedges
    (these aligned sets are framed tightly: black corners would reach into the face's crop).
    """
    folder.mkdir(parents=True, exist_ok=True)
    angles = np.random.default_rng(seed + 1).uniform(-max_deg, max_deg, len(paths))
    out = []
    for i, (path, angle) in enumerate(zip(paths, angles, strict=True)):
        target = folder / f"{i:05d}_{angle:+.2f}.png"
        if not target.is_file():
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            h, w = rgb.shape[:2]
            ph, pw = h // 4, w // 4
            padded = Image.fromarray(np.pad(rgb, ((ph, ph), (pw, pw), (0, 0)), mode="reflect"))
            turned = padded.rotate(float(angle), resample=Image.Resampling.BILINEAR)
            turned.crop((pw, ph, pw + w, ph + h)).save(target)
        out.append(str(target))
    return out, angles


@torch.no_grad()
def measure_rolled(ae: LatentAutoencoder, crops: np.ndarray, landmarks: np.ndarray,
                   angles: np.ndarray) -> dict[str, float]:
    """Model roll against the landmark eye-line angle and the known turn on rolled photos."""
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    roll = torch.cat([ae.encode(x[i:i + 64]).pose[:, 5] for i in range(0, len(x), 64)]).numpy()
    lm_roll = roll_estimate(landmarks)
    slope = float(np.polyfit(angles, roll, 1)[0])
    return {"rolled_faces": float(len(x)), "rolled_roll_r": pearson(roll, lm_roll),
            "rolled_roll_r_vs_turn": pearson(roll, angles), "rolled_roll_slope": abs(slope),
            "rolled_roll_std_deg": float(roll.std()), "rolled_eyeline_std_deg": float(np.nanstd(lm_roll))}


def measure_held_out(ae: LatentAutoencoder, crop: CropConfig, data: Path, n_celeba: int, seed: int,
                     cache_dir: Path, detector: FaceDetector) -> dict[str, dict[str, float]]:
    """:func:`measure` on each held-out set (crops with landmarks cached in ``cache_dir``)."""
    results: dict[str, dict[str, float]] = {}
    for subset, paths in held_out_paths(data, n_celeba, seed).items():
        cache = cache_dir / f"{subset}_{len(paths)}.npz"
        cs = prepare_crops(paths, crop, detect=True, fallback="none", cache_file=cache, progress=False)
        ok = cs.ok & np.isfinite(cs.landmarks).all(axis=(1, 2))
        results[subset] = measure(ae, cs.crops[ok], cs.landmarks[ok], detector, seed)
        rolled, angles = rolled_copies(paths, cache_dir / f"{subset}_rolled_mirror_pad", seed)
        rs = prepare_crops(rolled, crop, detect=True, fallback="none",
                           cache_file=cache_dir / f"{subset}_rolled_mirror_pad_{len(paths)}.npz",
                           progress=False)
        ok = rs.ok & np.isfinite(rs.landmarks).all(axis=(1, 2))
        results[subset].update({k: round(v, 4) for k, v in
                                measure_rolled(ae, rs.crops[ok], rs.landmarks[ok], angles[ok]).items()})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n-celeba", type=int, default=600, help="celeba10k verify rows to sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "latentface" / "pose_check")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ae, crop, name = load_stage1(args.model)
    detector = FaceDetector(CropConfig(min_face_size=20))
    results = measure_held_out(ae, crop, args.data, args.n_celeba, args.seed, args.cache_dir, detector)
    print(f"model {name} ({args.model or 'bundled'}), {time.perf_counter() - t0:.0f} s")
    keys = list(next(iter(results.values())))
    print(f"{'':40}" + "".join(f"{n:>18}" for n in results))
    for k in keys:
        print(f"{k:40}" + "".join(f"{results[n].get(k, math.nan):18.4f}" for n in results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model or "bundled", "command": " ".join(sys.argv),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
