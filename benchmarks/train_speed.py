"""Training step throughput of stage 1 and stage 2, from the trainers' own code.

- **Stage 1**: :class:`latentface_sdk.train.stage1.Stage1Trainer` built from the shipped recipe
  (``train/configs/stage1_default.json``) on the CPU; ``step()`` on a batch of 16 real 64x64 face crops
  (celeba10k), with each renderer: ``fast`` (our vectorised rasteriser, the CPU default and our
  design choice) and ``pytorch3d`` (the renderer of record, used on CUDA). Images/s = 16 / step time.
  A torch.profiler table of one ``fast`` step and a cProfile of one step with each renderer show what
  dominates (torch.profiler's trace of a pytorch3d step needs more than 10 GB here).
- **Stage 2**: :func:`latentface_sdk.train.stage2.train_rdms` (the shipped recipe: 16 groups x 16
  frames = 256 latent rows per step, both RDMs) on synthetic cached latents (2,048 rows in 128 groups;
  the step's cost does not depend on the values). Its JSON log gives the elapsed time every 10 steps;
  the first interval (warm-up) is dropped. Images/s = latent rows per second.

Usage::

    python benchmarks/train_speed.py --threads 2 --repeats 5 --json benchmarks/results/train.json
"""

from __future__ import annotations

import cProfile
import functools
import json
import pstats
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

CONFIGS = _bench.REPO_ROOT / "latentface_sdk" / "train" / "configs"
BATCH = 16
MEMORY_CAP = 12 * 2**30  # address-space cap: a runaway step fails here instead of starving the machine


def crop_landmarks(crops: Any) -> tuple[Any, Any]:
    """MTCNN's five landmarks of each crop in crop coordinates ``[-1, 1]`` (the recipe's landmark loss needs
    them; a crop without a face gets the canonical keypoints), and the canonical keypoints."""
    import numpy as np

    from latentface_sdk.detection import FaceDetector
    from latentface_sdk.landmarks import canonical_keypoints

    half = crops.shape[1] / 2.0
    points = np.full((len(crops), 5, 2), np.nan)
    for i, faces in enumerate(FaceDetector().detect_batch(list(crops))):
        if faces and faces[0].landmarks is not None:
            points[i] = faces[0].landmarks / half - 1.0
    keypoints = canonical_keypoints(points)
    points[~np.isfinite(points).all(axis=(1, 2))] = keypoints
    return points, keypoints


def stage1(args: Any, crops: Any) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from latentface_sdk.train.stage1 import Stage1Config, Stage1Trainer

    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    points, keypoints = crop_landmarks(crops)
    landmarks = torch.from_numpy(points).float()
    out: dict[str, Any] = {}
    for backend in ("fast", "pytorch3d"):
        cfg = Stage1Config.load(CONFIGS / "stage1_default.json")
        cfg.renderer = backend
        trainer = Stage1Trainer(cfg, torch.device("cpu"), keypoints=keypoints)
        # pytorch3d's CPU rasteriser takes ~1 s per image: fewer timed steps.
        repeats = args.repeats if backend == "fast" else min(args.repeats, 3)
        seconds = _bench.time_runs(functools.partial(trainer.step, images, landmarks), repeats, warmup=1)
        out[backend] = {"step_seconds": _bench.stats(seconds), "images_per_s": _bench.rate(BATCH, seconds)}
        if backend == "fast":
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.step(images, landmarks)
            out[backend]["profile_one_step"] = _bench.top_ops(prof, rows=8)
        # cProfile for both (torch.profiler's trace of a pytorch3d step needs >10 GB on this machine).
        cprof = cProfile.Profile()
        cprof.enable()
        trainer.step(images, landmarks)
        cprof.disable()
        out[backend]["cprofile_one_step"] = _bench.top_functions(pstats.Stats(cprof), rows=8)
        print(f"stage 1, {backend:9s} renderer: {_bench.fmt(out[backend]['images_per_s'])} images/s "
              f"({_bench.fmt(out[backend]['step_seconds'], 2)} s/step)", flush=True)
    out["fast_over_pytorch3d"] = (out["fast"]["images_per_s"]["median"]
                                  / out["pytorch3d"]["images_per_s"]["median"])
    return out


def stage2(args: Any) -> dict[str, Any]:
    import numpy as np
    import torch

    from latentface_sdk.train.stage2 import Stage2Config, train_rdms

    cfg = Stage2Config.load(CONFIGS / "stage2_default.json")
    every = 10
    intervals = max(3, args.repeats) + 1
    cfg.steps, cfg.log_every, cfg.checkpoint_every = every * intervals, every, every * intervals
    g = torch.Generator().manual_seed(0)
    n, groups = 2048, 128
    latents = {"texture": torch.randn(n, 256, generator=g), "shape": torch.randn(n, 256, generator=g)}
    members = [np.arange(k * (n // groups), (k + 1) * (n // groups)) for k in range(groups)]
    with tempfile.TemporaryDirectory(prefix="latentface-bench-s2-") as tmp:
        train_rdms(latents, members, cfg, tmp, device="cpu", progress=False)
        log = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
    timed = [r for r in log if "elapsed_s" in r]
    rows = timed[0]["rows"]
    seconds = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(timed[:-1], timed[1:], strict=True)]
    per_step = [s / every for s in seconds]
    result = {"rows_per_step": rows, "steps_timed": every * len(seconds),
              "step_seconds": _bench.stats(per_step), "images_per_s": _bench.rate(rows, per_step),
              "recipe": {"batch_groups": cfg.batch_groups, "frames_per_group": cfg.frames_per_group}}
    print(f"stage 2: {_bench.fmt(result['images_per_s'], 0)} latent rows/s "
          f"({result['step_seconds']['median'] * 1000:.1f} ms/step of {rows} rows)", flush=True)
    return result


def run(args: Any) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_CAP:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, hard))
    _bench.set_threads(args.threads)
    crops = _bench.face_crops(args.data, BATCH)
    return {
        "benchmark": "train",
        "command": _bench.command(),
        "machine": _bench.machine(args.threads),
        "batch": BATCH,
        "stage1": stage1(args, crops),
        "stage2": stage2(args),
    }


def main(argv: list[str] | None = None) -> int:
    parser = _bench.base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 2)
    result = run(args)
    _bench.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
