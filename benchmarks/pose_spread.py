"""How widely a model's pose encoder spreads its angles over real faces (a health check of stage 1).

    python benchmarks/pose_spread.py --model weights/latentface-cpu-small

Encodes a fixed random sample of UTKFace photos (many head poses) and prints the mean, standard
deviation and largest absolute value of yaw, pitch and roll (degrees) and of the translation. A pose
encoder that explains head turns puts the yaw of such a sample over tens of degrees; one whose yaw stays
within a few degrees leaves pose to the texture and shape latents.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from latentface_sdk import FaceEncoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=400, help="photos to encode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    photos = sorted((args.data / "utkface" / "images").glob("*.jpg"))
    if not photos:
        parser.error(f"no UTKFace images under {args.data / 'utkface' / 'images'}")
    pick = np.random.default_rng(args.seed).choice(len(photos), min(args.n, len(photos)), replace=False)
    encoder = FaceEncoder.from_pretrained(args.model, device="cpu")
    result = encoder.encode([str(photos[i]) for i in sorted(pick)], progress=True)
    pose = result.pose[result.ok].numpy()
    names = ["tx", "ty", "tz", "yaw", "pitch", "roll"]
    stats = {
        name: {"mean": float(pose[:, k].mean()), "std": float(pose[:, k].std()),
               "abs_max": float(np.abs(pose[:, k]).max())}
        for k, name in enumerate(names)
    }
    print(f"{len(pose)} of {len(pick)} UTKFace photos encoded (model {encoder.config.name})")
    print(f"{'':6} {'mean':>8} {'std':>8} {'|max|':>8}")
    for name, s in stats.items():
        print(f"{name:6} {s['mean']:8.3f} {s['std']:8.3f} {s['abs_max']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"faces": len(pose), "pose": stats}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
