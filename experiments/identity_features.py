"""Per-crop features of the identity data (celeba10k, celeba_ids_wild), cached for the head fits.

Writes runs/identity/features.npz: for every image its path, identity, split, crop method and the
features [Z_t, Z_s] (latents), [Z_id_t, Z_id_s] (identity, zero-init DDIM), pose, light and, with
``--expression``, the mirrored expression readout (12800-d, float16 to save memory).

    python experiments/identity_features.py --threads 1
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from latentface_sdk import FaceEncoder
from latentface_sdk.cropset import prepare_crops

ROOT = Path(__file__).resolve().parents[1]


def rows(data: Path, extra: bool = False) -> list[tuple[Path, str, str]]:
    """celeba10k (split train/verify) and celeba_ids_wild ("wild"); with ``extra`` instead the other
    identity-labelled sets stage 2 groups (split "extra"; the Taiwan performers tw26-tw30 left out)."""
    out: list[tuple[Path, str, str]] = []
    if extra:
        for folder in ("imfdb", "taiwan_tcce", "london_frl", "orl_att"):
            with open(data / folder / "labels.csv", newline="") as f:
                for r in csv.DictReader(f):
                    if r["identity"] in ("tw26", "tw27", "tw28", "tw29", "tw30"):
                        continue
                    out.append((data / folder / "images" / r["image"], folder + ":" + r["identity"], "extra"))
        return out
    with open(data / "celeba10k" / "identity.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append((data / "celeba10k" / "images" / r["image"], "c" + r["identity"], r["split"]))
    with open(data / "celeba_ids_wild" / "labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append((data / "celeba_ids_wild" / "images" / r["image"], "w" + r["identity"], "wild"))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "identity")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None)
    p.add_argument("--expression", action="store_true", help="also the 12800-d expression readout")
    p.add_argument("--flip", action="store_true", help="the mirror image of every crop (features_flip.npz)")
    p.add_argument("--extra", action="store_true", help="imfdb, taiwan_tcce, london_frl, orl_att instead")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    items = rows(a.data, a.extra)
    enc = FaceEncoder.from_pretrained(a.model, device="cpu") if a.model else FaceEncoder.from_pretrained(
        device="cpu")
    cs = prepare_crops([r[0] for r in items], enc.config.crop, fallback="center",
                       cache_file=a.out / ("crops_extra.npz" if a.extra else "crops.npz"), progress=True)
    crops = [c[:, ::-1].copy() for c in cs.crops] if a.flip else list(cs.crops)
    d = enc.disentangle(crops, detect=False, init="zero", progress=True, batch_size=128)
    extra = {}
    if a.expression:  # the encoders' pooled maps too (12800-d; ~10x the time of the rest)
        x = enc.expression_features(crops, detect=False, progress=True, batch_size=128)
        extra["expression"] = x.features.numpy().astype(np.float16)
    np.savez(a.out / f"features{'_extra' if a.extra else ''}{'_flip' if a.flip else ''}.npz",
             paths=np.array([str(r[0].relative_to(a.data)) for r in items]),
             identity=np.array([r[1] for r in items]), split=np.array([r[2] for r in items]),
             method=cs.method, texture=d.encoding.texture.numpy(), shape=d.encoding.shape.numpy(),
             pose=d.encoding.pose.numpy(), light=d.encoding.light.numpy(),
             id_texture=d.identity_texture.numpy(), id_shape=d.identity_shape.numpy(), **extra)
    print("wrote", a.out, len(items))


if __name__ == "__main__":
    main()
