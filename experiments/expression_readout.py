"""Which readout of the stage-1 encoders carries expression? FER-2013 Training -> PublicTest, the FER probe.

    python experiments/expression_readout.py --model weights/latentface-cpu-small \
        --json experiments/results/expression_readout.json

The same crops as ``python -m latentface_sdk.eval fer`` (MTCNN with the model's crop policy, centre crop
where MTCNN finds no face; cached in ``--cache-dir``) and the same linear probe (BatchNorm + Linear,
Adam lr 1e-3, 20 epochs). Each layout puts the texture and shape latents ``[Z_t, Z_s]`` beside some of
the two feature encoders' block maps (block 3: 8x8, block 4: 4x4), average-pooled to a grid, and
optionally the pose and light encoders' block-4 maps. ``latentface_sdk.expression.EXPRESSION_READOUT``
(what ``FaceEncoder.expression_features`` returns) is the ``shipped`` row; ``--flip`` also averages each
of its features with the mirrored crop's (``expression_features(..., mirror=True)``). PublicTest is the
validation split: the layout was chosen on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentface_sdk import FaceEncoder
from latentface_sdk.cropset import prepare_crops
from latentface_sdk.eval import read_split
from latentface_sdk.eval.fer import evaluate_fer
from latentface_sdk.expression import EXPRESSION_READOUT

#: layout name -> the parts: (encoder letter, block, grid); ("t"/"s", 0, 0) is the latent
LAYOUTS: dict[str, list[tuple[str, int, int]]] = {
    "latents [Z_t, Z_s]": [("t", 0, 0), ("s", 0, 0)],
    "latents + block 3 @2x2 + block 4 @2x2": [("t", 0, 0), ("s", 0, 0), ("t", 3, 2), ("s", 3, 2), ("t", 4, 2),
                                               ("s", 4, 2)],
    "latents + block 4 @4x4": [("t", 0, 0), ("s", 0, 0), ("t", 4, 4), ("s", 4, 4)],
    "latents + block 3 @2x2 + block 4 @4x4": [("t", 0, 0), ("s", 0, 0), ("t", 3, 2), ("s", 3, 2), ("t", 4, 4),
                                               ("s", 4, 4)],
    "... + pose/light encoders' block 4 @2x2": [("t", 0, 0), ("s", 0, 0), ("t", 3, 2), ("s", 3, 2),
                                                ("t", 4, 4), ("s", 4, 4), ("p", 4, 2), ("l", 4, 2)],
    "... + pose/light encoders' block 4 @4x4": [("t", 0, 0), ("s", 0, 0), ("t", 3, 2), ("s", 3, 2),
                                                ("t", 4, 4), ("s", 4, 4), ("p", 4, 4), ("l", 4, 4)],
    "... + pose/light encoders' block 3 @2x2 + block 4 @2x2": [("t", 0, 0), ("s", 0, 0), ("t", 3, 2),
                                                               ("s", 3, 2), ("t", 4, 4), ("s", 4, 4),
                                                               ("p", 3, 2), ("l", 3, 2), ("p", 4, 2),
                                                               ("l", 4, 2)],
    "shipped (EXPRESSION_READOUT)": [("t", 0, 0), ("s", 0, 0)]
    + [(r.encoder[0], r.block, r.grid) for r in EXPRESSION_READOUT],
}


def read_parts(encoder: FaceEncoder, crops: np.ndarray, parts: set[tuple[str, int, int]], flip: bool = False,
               batch: int = 256) -> dict[tuple[str, int, int], np.ndarray]:
    """Every wanted part of every crop (uint8 (N, 64, 64, 3)) as float32 (N, width)."""
    ae = encoder.autoencoder.eval()
    nets = {"t": ae.texture_encoder, "s": ae.shape_encoder, "p": ae.pose_encoder, "l": ae.light_encoder}
    out: dict[tuple[str, int, int], list[np.ndarray]] = {p: [] for p in parts}
    with torch.inference_mode():
        for s in range(0, len(crops), batch):
            x = torch.from_numpy(crops[s:s + batch]).permute(0, 3, 1, 2).float() / 255.0
            x = ae.normalize(x.flip(-1) if flip else x)
            for letter in sorted({p[0] for p in parts}):
                latent, blocks = nets[letter].forward_blocks(x)
                for p in parts:
                    if p[0] != letter:
                        continue
                    value = latent if p[1] == 0 else F.adaptive_avg_pool2d(blocks[p[1] - 1], p[2]).flatten(1)
                    out[p].append(value.numpy())
    return {p: np.concatenate(v) for p, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/expression_readout"))
    parser.add_argument("--flip", action="store_true",
                        help="also: the shipped layout averaged with the mirror")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoder = FaceEncoder.from_pretrained(args.model, device="cpu")
    train = read_split(args.data, "Training")
    test = read_split(args.data, "PublicTest", train.classes)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    crops = {}
    for name, split in (("train", train), ("test", test)):
        cs = prepare_crops([str(p) for p in split.paths], encoder.config.crop, detect=True, fallback="center",
                           cache_file=args.cache_dir / f"crops-{name}.npz", progress=False)
        crops[name] = cs.crops
    wanted = {p for layout in LAYOUTS.values() for p in layout}
    t0 = time.perf_counter()
    feats = {k: read_parts(encoder, c, wanted) for k, c in crops.items()}
    print(f"features of {sum(len(c) for c in crops.values())} crops in {time.perf_counter() - t0:.0f} s")
    rows = []

    def score(name: str, tr: np.ndarray, te: np.ndarray) -> None:
        r = evaluate_fer(tr, train.labels, te, test.labels, train.classes, name=name)
        rows.append({"layout": name, "dim": int(tr.shape[1]), "accuracy": round(100 * r.accuracy, 2),
                     "macro_f1": round(100 * r.macro_f1, 2)})
        print(f"| {name} | {tr.shape[1]} | {100 * r.accuracy:.2f} | {100 * r.macro_f1:.2f} |", flush=True)

    print("| layout | dim | accuracy (%) | macro-F1 (%) |\n|---|---:|---:|---:|")
    for name, layout in LAYOUTS.items():
        score(name, np.concatenate([feats["train"][p] for p in layout], 1),
              np.concatenate([feats["test"][p] for p in layout], 1))
    if args.flip:
        shipped = LAYOUTS["shipped (EXPRESSION_READOUT)"]
        mirrored = {k: read_parts(encoder, c, set(shipped), flip=True) for k, c in crops.items()}
        score("shipped, averaged with the mirrored crop",
              *(np.concatenate([(feats[k][p] + mirrored[k][p]) / 2 for p in shipped], 1)
                for k in ("train", "test")))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model or "bundled", "command": " ".join(sys.argv),
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
