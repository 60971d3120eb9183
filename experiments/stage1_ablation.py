"""What each departure of the stage-1 recipe from the paper buys: short runs, one change at a time.

    OMP_NUM_THREADS=1 python experiments/stage1_ablation.py --data ../shared/data --runs runs/ablation \
        --cache-dir runs/cache --json experiments/results/stage1_ablation.json

Each arm trains the shipped recipe (``latentface_sdk/train/configs/stage1_default.json``, one process)
for ``--steps`` steps (default 300, about 4-6 minutes each on one CPU thread) with the changes of the
arms before it switched on, then ``benchmarks/pose_check.py`` measures it on held-out faces:

=================  ===========================================================================
arm                recipe
=================  ===========================================================================
paper              the paper's losses + the curvature prior (the recipe of the first shipped weights)
+landmark          + five-landmark reprojection loss (``lambda_landmark`` 10)
+light-cycle       + light-cycle loss (``lambda_light_cycle`` 1 on 8 faces a batch)
+depth-prior       + convex depth start (``model.depth_prior`` 0.3)
+mtcnn-features    + MTCNN ONet perceptual features (= the shipped recipe)
=================  ===========================================================================

Then the levers, each applied alone to the shipped recipe (not cumulative):

====================  ========================================================================
lever                 change
====================  ========================================================================
lever:wide-decoder    map decoders and confidence net twice as wide (``model.decoder_width`` 32)
====================  ========================================================================

Three more levers were measured here and dropped, their options removed in config version 2 (random
pose-head start, a 32 -> 64 px curriculum, one shared encoder trunk); their numbers stay in
``experiments/results/stage1_levers.json`` and docs/training.md (commit 735a0a2 has the code that ran them).

An arm whose run folder already holds ``model/`` is measured without retraining. Prints a markdown
table (UTKFace held-out rows | celeba10k verify sample) and writes the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # _bench
import pose_check  # noqa: E402

from latentface_sdk.config import CropConfig  # noqa: E402
from latentface_sdk.detection import FaceDetector  # noqa: E402
from latentface_sdk.train.stage1 import Stage1Config, train  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "latentface_sdk" / "train" / "configs" / "stage1_default.json"

#: Each arm: its name and the recipe fields it changes, applied on top of the arms before it.
ARMS: list[tuple[str, dict[str, Any]]] = [
    ("paper", {"lambda_landmark": 0.0, "lambda_light_cycle": 0.0, "feature_net": "random-conv",
               "model": {"width": 32, "decoder_width": 16}}),
    ("+landmark", {"lambda_landmark": 10.0}),
    ("+light-cycle", {"lambda_light_cycle": 1.0, "light_cycle_count": 8}),
    ("+depth-prior", {"model": {"width": 32, "decoder_width": 16, "depth_prior": 0.3}}),
    ("+mtcnn-features", {"feature_net": "mtcnn"}),
]

#: Each lever: its name and the recipe fields it changes on the shipped recipe alone (``model`` merged).
LEVERS: list[tuple[str, dict[str, Any]]] = [
    ("lever:wide-decoder", {"model": {"decoder_width": 32}}),
]

COLUMNS = ("yaw_r", "roll_r", "yaw_std_deg", "recon_masked_l1", "light_r2",
           "texture_move_relit_over_between_people", "frontal_detected", "frontal_yaw_ratio")


def arm_configs(steps: int, shared_root: str) -> list[tuple[str, Stage1Config]]:
    """The stage-1 config of every arm (cumulative changes on the shipped recipe)."""
    base = Stage1Config.load(RECIPE)
    out, fields = [], dataclasses.asdict(base)
    for name, change in ARMS:
        fields = {**fields, **change}
        cfg = Stage1Config.from_dict({**fields, "steps": steps, "shared_root": shared_root, "grid_every": 100,
                              "checkpoint_every": 100})
        out.append((name, cfg))
    shipped = {**dataclasses.asdict(base), "steps": steps, "shared_root": shared_root, "grid_every": 100,
               "checkpoint_every": 100}
    for name, change in LEVERS:
        fields = {**shipped, **change, "model": {**shipped["model"], **change.get("model", {})}}
        out.append((name, Stage1Config.from_dict(fields)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"), help="one run folder per arm")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"), help="stage-1 crop cache")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--arms", help="comma-separated arm names (default: all)")
    parser.add_argument("--n-celeba", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wanted = set(args.arms.split(",")) if args.arms else None
    detector = FaceDetector(CropConfig(min_face_size=20))
    results: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for name, cfg in arm_configs(args.steps, str(args.data.resolve())):
        if wanted is not None and name not in wanted:
            continue
        run = args.runs / name.lstrip("+").replace("lever:", "lever-")
        if not (run / "model" / "model.safetensors").is_file():
            train(cfg, run, resume=True, cache_dir=args.cache_dir, progress=True)
        ae, crop, _ = pose_check.load_stage1(str(run / "model"))
        meta = json.loads((run / "model" / "config.json").read_text()).get("metadata", {}).get("stage1", {})
        if "train_seconds" in meta:
            seconds[name] = float(meta["train_seconds"])
        results[name] = pose_check.measure_held_out(ae, crop, args.data, args.n_celeba, 0,
                                                    args.cache_dir / "pose_check", detector)
    subsets = ["utkface-heldout", "celeba-verify"]
    print(f"| arm ({args.steps} steps) | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, res in results.items():
        cells = [" / ".join(f"{res[s].get(c, float('nan')):.3f}" for s in subsets) for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"(each cell: {' / '.join(subsets)})")
    if seconds:
        print("training seconds (one thread): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    if args.json:  # arms measured before (same step count) are kept: arms can run as separate processes
        old = json.loads(args.json.read_text()) if args.json.is_file() else {}
        if old.get("steps") != args.steps:
            old = {}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"steps": args.steps, "command": " ".join(sys.argv),
                   "results": {**old.get("results", {}), **results},
                   "train_seconds": {**old.get("train_seconds", {}), **seconds}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
