"""Stage-2 levers for ``Δexp`` (issue 24, goal 2): does the RDM add expression to ``Z_exp`` on FER-2013?

    OMP_NUM_THREADS=1 python experiments/stage2_levers.py --runs runs/stage2_levers \
        --json experiments/results/stage2_levers.json

Trains the two RDMs of ``latentface_sdk/train/configs/stage2_expression.json`` on the bundled model's
stage 1 (the shipped recipe), keeping the checkpoint at several step counts (``--steps``, default
2500, 5000, 10000; the shipped RDMs are the 5000-step one), in these arms (``--arms``, comma-separated):

* ``recipe``: the recipe as it is;
* ``grey-lowres views``: every crop of a group also joins it as a grey, low-resolution copy (luma, area-
  shrunk to 24-48 px and enlarged back, as FER-2013's 48 px grey faces are), so the RDM sees the latents of
  such faces and learns that their identity is the colour photos' identity;
* ``condition modulates every layer``: the denoiser's conditioning (``rdm.cond_modulation``): ``Z_exp``
  also scales and shifts every residual layer's features, as the timestep does, instead of entering only
  at the input beside the noisy latent.
* ``expression groups x8``: the groups of the sets in which one person shows several expressions (Taiwan,
  London, ORL; ``EXPRESSION_SETS``) drawn 8 times as often as the others, so that more of what the RDM
  learns to leave out of ``Z_id`` is expression rather than pose, light or age;
* ``expression groups only``: the RDMs trained on those groups alone.

Each snapshot is scored as ``python -m latentface_sdk.eval fer`` scores ``latentface-fer``: FER-2013
``Training`` -> ``PublicTest``, MTCNN crops with the model's policy (centre crop where none is found), the
linear probe of the FER protocol, on ``[Δexp, Z_exp]`` with ``z_T = 0`` (the default ``disentangle``) against
``Z_exp = [Z_t, Z_s]`` alone. An arm whose snapshot exists in ``--runs`` is scored without retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # _bench

import _bench  # noqa: E402

from latentface_sdk import FaceEncoder  # noqa: E402
from latentface_sdk.cropset import prepare_crops  # noqa: E402
from latentface_sdk.digests import parts_digest, tensors_digest  # noqa: E402
from latentface_sdk.eval import read_split  # noqa: E402
from latentface_sdk.eval.fer import evaluate_fer  # noqa: E402
from latentface_sdk.models.rdm import RepresentationDiffusion  # noqa: E402
from latentface_sdk.pipeline import encode_crops  # noqa: E402
from latentface_sdk.train.augment import low_resolution, to_grey  # noqa: E402
from latentface_sdk.train.latents import cached_latents  # noqa: E402
from latentface_sdk.train.rdm_trainer import train_rdms  # noqa: E402
from latentface_sdk.train.recipes import Stage2Config  # noqa: E402
from latentface_sdk.train.stage2 import build_autoencoder, load_groups, load_stage1_folder  # noqa: E402

RECIPE = _bench.REPO_ROOT / "latentface_sdk" / "train" / "configs" / "stage2_expression.json"
ARMS = ("recipe", "grey-lowres views", "condition modulates every layer", "expression groups x8",
        "expression groups only")
#: the sets whose people each show several expressions (their groups differ in expression, not in pose
#: or years as CelebA's and IMFDB's do); the ``expression groups`` arms weight them
EXPRESSION_SETS = ("taiwan_tcce", "london_frl", "orl_att")


def grey_lowres(crops: np.ndarray, seed: int = 1) -> np.ndarray:
    """Grey copies of uint8 crops (N, S, S, 3), each area-shrunk to a random 24-48 px and enlarged back."""
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    x = to_grey(x, torch.ones(len(x), dtype=torch.bool))
    x = low_resolution(x, torch.randint(24, 49, (len(x),), generator=g))
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def train_arm(arm: str, out: Path, steps: list[int], stage1: Path, cache: Path) -> dict[str, Any]:
    """Train one arm to each step count in turn (resuming), keeping ``out/rdm-<steps>.safetensors``."""
    todo = [s for s in steps if not (out / f"rdm-{s}.safetensors").is_file()]
    if not todo:
        return {"trained": False}
    cfg = Stage2Config.load(RECIPE)
    mcfg, ae_tensors = load_stage1_folder(stage1)
    data = load_groups(cfg.data, min_size=cfg.min_group_size)
    key = parts_digest(*(str(p) for p in data.paths))[:16]
    crops = prepare_crops(data.paths, mcfg.crop, detect=cfg.detect, fallback="center",
                          cache_file=cache / f"crops-{key}.npz", progress=False)
    ok = np.flatnonzero(crops.ok).tolist()
    sizes = Counter(data.groups[i] for i in ok)
    rows = [i for i in ok if sizes[data.groups[i]] >= cfg.min_group_size]
    data = data.subset(rows)
    face_crops = crops.crops[rows]
    ae = build_autoencoder(mcfg, ae_tensors)
    model_key = tensors_digest(ae_tensors)
    latents = cached_latents(ae, face_crops, cache, model_checksum=model_key, progress=False)
    groups = [np.asarray(m) for m in data.group_indices()]
    if arm.startswith("expression groups"):
        expr = [m for m in groups if str(data.groups[int(m[0])]).split(":")[0] in EXPRESSION_SETS]
        groups = expr if arm == "expression groups only" else groups + expr * 7
    if arm == "grey-lowres views":
        extra = cached_latents(ae, grey_lowres(face_crops), cache, model_checksum=model_key, progress=False)
        n = len(face_crops)
        latents = {k: torch.cat([latents[k], extra[k]]) for k in latents}
        groups = [np.concatenate([m, m + n]) for m in groups]
    t0 = time.perf_counter()
    done = sorted(s for s in steps if (out / f"rdm-{s}.safetensors").is_file())
    for s in sorted(steps):
        if s in done:
            continue
        run_cfg = dataclasses.replace(cfg, steps=s, checkpoint_every=min(2500, s))
        if arm == "condition modulates every layer":
            run_cfg = dataclasses.replace(run_cfg, rdm=dataclasses.replace(cfg.rdm, cond_modulation=True))
        resume = (out / "checkpoint" / "rdm.safetensors").is_file()
        train_rdms(latents, groups, run_cfg, out, resume=resume, progress=False, data_key=arm)
        shutil.copy(out / "checkpoint" / "rdm.safetensors", out / f"rdm-{s}.safetensors")
        print(f"{arm}: {s} steps", flush=True)
    return {"trained": True, "seconds": round(time.perf_counter() - t0, 1),
            "images": int(latents["texture"].shape[0]), "groups": len(groups)}


def fer_latents(encoder: FaceEncoder, data: Path,
                cache: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """``Z_exp`` (N, 512) and labels of FER-2013 Training and PublicTest, with the eval's crops."""
    train = read_split(data, "Training")
    test = read_split(data, "PublicTest", train.classes)
    z, y = {}, {}
    for name, split in (("train", train), ("test", test)):
        cs = prepare_crops([str(p) for p in split.paths], encoder.config.crop, detect=True, fallback="center",
                           cache_file=cache / f"fer-crops-{name}.npz", progress=False)
        lat = encode_crops(encoder.autoencoder, cs.crops, 256)
        z[name] = torch.cat([lat.texture, lat.shape], 1).float().numpy()
        y[name] = np.asarray(split.labels)
    return z, y, list(train.classes)


def identity(encoder: FaceEncoder, state: dict[str, torch.Tensor], z: np.ndarray) -> np.ndarray:
    """``Z_id`` of ``Z_exp`` rows with the RDM weights ``state`` (``z_T = 0``, the model's DDIM steps)."""
    # RDMs of the state's architecture (the conditioning arm has more weights than the bundled ones)
    cfg = dataclasses.replace(encoder.config.rdm, cond_modulation=any(".cond." in k for k in state))
    rdms = []
    for which in ("texture", "shape"):
        prefix = f"rdm_{which}."
        rdm = RepresentationDiffusion(cfg).eval()
        rdm.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        rdms.append(rdm)
    d = z.shape[1] // 2
    with torch.inference_mode():
        zt, zs = torch.from_numpy(z[:, :d]), torch.from_numpy(z[:, d:])
        it = rdms[0].sample(zt, noise=torch.zeros_like(zt))
        is_ = rdms[1].sample(zs, noise=torch.zeros_like(zs))
    return torch.cat([it, is_], 1).numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_bench.DEFAULT_DATA)
    p.add_argument("--runs", type=Path, default=Path("runs/stage2_levers"), help="arm folders (kept; reused)")
    p.add_argument("--steps", default="2500,5000,10000")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    steps = [int(s) for s in args.steps.split(",")]
    stage1 = _bench.REPO_ROOT / "weights" / _bench.BUNDLED
    cache = args.runs / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    training = {arm: train_arm(arm, args.runs / arm.replace(" ", "-"), steps, stage1, cache)
                for arm in args.arms.split(",")}
    encoder = FaceEncoder.from_pretrained(stage1, device="cpu")
    z, y, classes = fer_latents(encoder, args.data / "fer2013", cache)
    base = evaluate_fer(z["train"], y["train"], z["test"], y["test"], classes, name="Z_exp")
    rows = [{"arm": "Z_exp alone", "steps": None, "accuracy": round(100 * base.accuracy, 2),
             "macro_f1": round(100 * base.macro_f1, 2)}]
    print(f"| Z_exp alone | | {rows[0]['accuracy']:.2f} | {rows[0]['macro_f1']:.2f} | |", flush=True)
    for arm in args.arms.split(","):
        for s in steps:
            state = load_file(str(args.runs / arm.replace(" ", "-") / f"rdm-{s}.safetensors"))
            feats = {k: np.concatenate([z[k] - identity(encoder, state, z[k]), z[k]], 1) for k in z}
            r = evaluate_fer(feats["train"], y["train"], feats["test"], y["test"], classes, name=arm)
            row = {"arm": arm, "steps": s, "accuracy": round(100 * r.accuracy, 2),
                   "macro_f1": round(100 * r.macro_f1, 2),
                   "gain": round(100 * (r.accuracy - base.accuracy), 2)}
            rows.append(row)
            print(f"| {arm} | {s} | {row['accuracy']:.2f} | {row['macro_f1']:.2f} | {row['gain']:+.2f} |",
                  flush=True)
    _bench.write_json(args.json, {"rows": rows, "training": training,
                                  "recipe": str(RECIPE.relative_to(_bench.REPO_ROOT)),
                                  "stage1": f"{_bench.BUNDLED} (weights checksum {encoder.config.checksum})",
                                  "machine": _bench.machine(1), "command": _bench.command()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
