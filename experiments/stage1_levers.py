"""Stage-1 levers for expression (issue 24, goals 1-4): each change of the expression recipe alone, and
two new ones.

    OMP_NUM_THREADS=1 python experiments/stage1_levers.py prepare --runs runs/stage1_levers
    OMP_NUM_THREADS=1 python experiments/stage1_levers.py train --runs runs/stage1_levers --arms recipe,...
    OMP_NUM_THREADS=1 python experiments/stage1_levers.py score --runs runs/stage1_levers \
        --json experiments/results/stage1_expression_levers.json
    python experiments/stage1_levers.py merge --runs runs/stage1_levers --parts A.json B.json \
        --json experiments/results/stage1_expression_levers.json   # scores of runs made side by side

A continuation screen: every arm starts from the bundled model's stage 1 and trains ``--steps`` more steps
(default 300; 400 in docs/training.md; batch 16, one process, lr 1e-4) of
``latentface_sdk/train/configs/stage1_expression.json`` on the same random sample of that recipe's photos
(``--photos``, default 12,000; MTCNN crops with landmarks, cached), changed in one thing:

* ``recipe``: the expression recipe as it is (the control);
* ``region weight 0``: the photometric loss counts every pixel once (recipe: eyes, brows, mouth 3x);
* ``keypoint blur 1``: the landmark loss reads the depth at a point (recipe: a 5x5 patch);
* ``no grey / low-res``: no grey and no 24-48 px crops (recipe: 30% each);
* ``no photo confidence``: the photometric loss ignores the learned confidence map (plain masked L1);
* ``feature loss at landmarks``: the feature-level loss also counts the eyes, brows and mouth 3x;
* ``no confidence + landmark features``: the two best of the above together;
* ``encoders 48 wide``: the four encoders 48 channels wide instead of 32, grown around the bundled ones
  (:func:`latentface_sdk.train.widen.widen_encoders`: the wider model starts computing what the bundled
  one does, its new channels grow in as it trains).

Each arm's autoencoder is scored beside the bundled RDMs (stage 2 is not retrained): FER-2013
``Training`` -> ``PublicTest`` linear probe of ``latentface`` (``Z_exp``) and ``latentface-expression``
(the FER example's features), celeba10k ``verify`` probe of ``latentface``, and the held-out
reconstruction error of ``benchmarks/pose_check.py``. ``train`` resumes an arm from its checkpoint;
``score`` skips what its JSON already holds. Short runs rank the levers; they are not the final quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # _bench

import _bench  # noqa: E402

from latentface_sdk.cropset import prepare_crops  # noqa: E402
from latentface_sdk.digests import parts_digest  # noqa: E402
from latentface_sdk.hub import resolve  # noqa: E402
from latentface_sdk.model_folder import (  # noqa: E402
    AUTOENCODER,
    load_model_folder,
    prefixed,
    save_model_folder,
    split_state,
    with_prefix,
)
from latentface_sdk.models.autoencoder import LatentAutoencoder  # noqa: E402
from latentface_sdk.train.data import CropDataset, resolve_sources  # noqa: E402
from latentface_sdk.train.recipes import Stage1Config  # noqa: E402
from latentface_sdk.train.stage1 import train  # noqa: E402
from latentface_sdk.train.widen import widen_encoders  # noqa: E402

RECIPE = _bench.REPO_ROOT / "latentface_sdk" / "train" / "configs" / "stage1_expression.json"
ARMS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "region weight 0": {"region_weight": 0.0},
    "keypoint blur 1": {"keypoint_blur": 1},
    "no grey / low-res": {"augment_grey_p": 0.0, "augment_low_res_p": 0.0},
    "no photo confidence": {"photo_confidence": False},
    "feature loss at landmarks": {"feature_region_weight": 2.0},
    "no confidence + landmark features": {"photo_confidence": False, "feature_region_weight": 2.0},
    "encoders 48 wide": {"width": 48},
}


def slug(arm: str) -> str:
    """A folder name for an arm."""
    return "".join(c if c.isalnum() else "-" for c in arm).strip("-")


def sample_paths(data: Path, photos: int, seed: int) -> list[str]:
    """A fixed random sample of the expression recipe's photos (in the recipe's order)."""
    paths = resolve_sources(Stage1Config.load(RECIPE).sources, data)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(paths), size=min(photos, len(paths)), replace=False))
    return [paths[i] for i in keep]


def dataset(runs: Path, data: Path, photos: int, seed: int) -> CropDataset:
    """MTCNN crops with landmarks of the sample (the recipe's 20 px minimum face), cached under ``runs``."""
    cfg = Stage1Config.load(RECIPE)
    paths = sample_paths(data, photos, seed)
    crop = dataclasses.replace(cfg.crop, min_face_size=cfg.detect_min_face_size)
    key = parts_digest(json.dumps(paths), json.dumps(dataclasses.asdict(crop), sort_keys=True))[:16]
    crops = prepare_crops(paths, crop, detect=True, fallback="none", cache_file=runs / f"crops-{key}.npz",
                          progress=True)
    print(f"{len(paths)} photos, {int(crops.ok.sum())} crops with landmarks", flush=True)
    return CropDataset(crops.crops[crops.ok], flip=True, landmarks=crops.landmarks[crops.ok])


def train_arm(arm: str, runs: Path, data: CropDataset, steps: int) -> Path:
    """Continue the bundled stage 1 for ``steps`` steps with the arm's change; returns its model folder."""
    out = runs / slug(arm)
    if (out / "model" / "model.safetensors").is_file():
        return out / "model"
    change = dict(ARMS[arm])
    recipe = Stage1Config.load(RECIPE)
    init_from = Path(resolve(None))
    if "width" in change:  # capacity: grow the bundled encoders to the arm's width first
        width = change.pop("width")
        init_from = widened(init_from, width, out / "init")
        change["model"] = dataclasses.replace(recipe.model, width=width)
    cfg = dataclasses.replace(recipe, steps=steps, device="cpu", grid_every=steps,
                              checkpoint_every=100, init_from=str(init_from), **change)
    t0 = time.perf_counter()
    train(cfg, out, resume=True, data=data, progress=False)
    (out / "seconds.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
    return out / "model"


def widened(model: Path, width: int, out: Path) -> Path:
    """``model``'s folder with its encoders grown to ``width`` (same outputs; float32)."""
    if (out / "model.safetensors").is_file():
        return out
    config, tensors = load_model_folder(model)
    auto = LatentAutoencoder(config.autoencoder)
    auto.load_state_dict({k: v.float() for k, v in split_state(tensors, AUTOENCODER).items()})
    wide = widen_encoders(auto, width)
    state = {k: v.float() for k, v in tensors.items() if not k.startswith(AUTOENCODER)}
    state.update(prefixed(wide, AUTOENCODER))
    save_model_folder(out, dataclasses.replace(config, autoencoder=wide.cfg), state)
    return out


def encoder_folder(arm_model: Path, out: Path) -> Path:
    """The bundled model with the arm's autoencoder (float32) beside the bundled RDMs: a FaceEncoder
    folder."""
    if (out / "model.safetensors").is_file():
        return out
    config, tensors = load_model_folder(resolve(None))
    arm_config, arm = load_model_folder(arm_model)
    config = dataclasses.replace(config, autoencoder=arm_config.autoencoder)
    merged = {k: v.float() for k, v in tensors.items() if not k.startswith(AUTOENCODER)}
    merged.update({k: v.float() for k, v in with_prefix(arm, AUTOENCODER).items()})
    save_model_folder(out, config, merged)
    return out


def _eval(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "latentface_sdk.eval", *args, "--threads", "1", "--no-progress"],
                   check=True, env=env, cwd=_bench.REPO_ROOT)


def score(arm: str, model: Path, runs: Path, data: Path) -> dict[str, Any]:
    """FER-2013 and verify probes and the held-out reconstruction error of one model folder."""
    out = runs / slug(arm)
    common = ["--model", str(model), "--cache-dir", str(runs / "eval-cache")]
    _eval(["fer", "--data", str(data / "fer2013"), "--out", str(out / "fer"), "--features",
           "latentface,latentface-expression", *common])
    _eval(["verify", "--pairs", str(data / "celeba10k" / "pairs_verify.txt"), "--out", str(out / "verify"),
           "--features", "latentface", *common])
    pose = out / "pose_check.json"
    subprocess.run([sys.executable, str(_bench.REPO_ROOT / "benchmarks" / "pose_check.py"),
                    "--model", str(model), "--data", str(data), "--cache-dir", str(runs / "pose-cache"),
                    "--json", str(pose)],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=_bench.REPO_ROOT)
    fer = {r["feature"]: r for r in json.loads((out / "fer" / "fer.json").read_text())["results"]}
    ver = {r["feature"]: r for r in json.loads((out / "verify" / "verification.json").read_text())["results"]}
    recon = json.loads(pose.read_text())
    row: dict[str, Any] = {
        "arm": arm,
        "fer_z_exp": round(100 * fer["latentface"]["accuracy"], 2),
        "fer_expression_features": round(100 * fer["latentface-expression"]["accuracy"], 2),
        "fer_expression_features_macro_f1": round(100 * fer["latentface-expression"]["macro_f1"], 2),
        "verify_z_exp": round(100 * ver["latentface"]["probe_accuracy"]["mean"], 2),
        "verify_z_exp_sem": round(100 * ver["latentface"]["probe_accuracy"]["sem"], 2),
        **pose_metrics(recon),
    }
    seconds = runs / slug(arm) / "seconds.txt"
    if seconds.is_file():
        row["train_seconds"] = int(seconds.read_text())
    return row


def pose_metrics(pose: dict[str, Any]) -> dict[str, Any]:
    """Held-out reconstruction error, yaw r, light elevation R^2 and keypoint pits (UTKFace, celeba verify)
    of a pose_check.py JSON."""
    sets = list(pose.get("results", {}).values())

    def pick(key: str) -> list[float] | None:
        vals = [r[key] for r in sets if key in r]
        return [round(float(v), 4) for v in vals] if vals else None

    return {"recon_l1": pick("recon_masked_l1"), "yaw_r": pick("yaw_r"),
            "light_r2_elevation": pick("light_r2_elevation"),
            "keypoint_pits": pick("keypoint_pit_over_relief")}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as the markdown table of docs/training.md."""

    def pair(v: list[float] | None, fmt: str) -> str:
        return " / ".join(format(x, fmt) for x in v) if v else ""

    lines = ["| arm | FER `Z_exp` | FER `expression_features` (macro-F1) | verify `Z_exp` | recon L1 "
             "| yaw r | light elevation R² | keypoint pits |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['fer_z_exp']:.2f} | {r['fer_expression_features']:.2f} "
                     f"({r['fer_expression_features_macro_f1']:.2f}) "
                     f"| {r['verify_z_exp']:.2f} ± {r['verify_z_exp_sem']:.2f} "
                     f"| {pair(r.get('recon_l1'), '.4f')} "
                     f"| {pair(r.get('yaw_r'), '.3f')} "
                     f"| {pair(r.get('light_r2_elevation'), '.3f')} "
                     f"| {pair(r.get('keypoint_pits'), '.3f')} |")
    return "\n".join(lines)


def encoder_ms(model: Path, batch: int = 64, repeats: int = 5) -> float:
    """Median CPU milliseconds per face of a model folder's four encoders (batch ``batch``, the
    current torch threads): the cost a capacity lever adds to encode (and to frontalize, which runs them)."""
    config, tensors = load_model_folder(model)
    auto = LatentAutoencoder(config.autoencoder).eval()
    auto.load_state_dict({k: v.float() for k, v in split_state(tensors, AUTOENCODER).items()})
    x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            for encoder in auto.encoders():
                encoder(x)
            times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times[1:])) / batch, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("prepare", "train", "score", "merge", "speed"))
    p.add_argument("--parts", nargs="*", type=Path, default=[],
                   help="merge: score JSON files of separate score runs (one arm set each) "
                        "to join into --json")
    p.add_argument("--data", type=Path, default=_bench.DEFAULT_DATA)
    p.add_argument("--runs", type=Path, default=Path("runs/stage1_levers"), help="arm folders (kept; reused)")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--photos", type=int, default=12000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS and a != "bundled"]
    if unknown:
        p.error(f"unknown arms {unknown}; choose from {list(ARMS)} or 'bundled'")
    args.runs.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    if args.what == "prepare":
        dataset(args.runs, data, args.photos, args.seed)
        return 0
    if args.what == "train":
        crops = dataset(args.runs, data, args.photos, args.seed)
        for arm in arms:
            if arm != "bundled":
                print(f"{arm}: {train_arm(arm, args.runs, crops, args.steps)}", flush=True)
        return 0
    if args.what == "speed":  # encoders' ms per face of each arm's model beside the bundled one
        speeds = {"bundled": encoder_ms(Path(resolve(None)))}
        for arm in arms:
            if arm != "bundled" and (args.runs / slug(arm) / "model" / "model.safetensors").is_file():
                speeds[arm] = encoder_ms(args.runs / slug(arm) / "model")
        for arm, ms in speeds.items():
            print(f"{arm}: encoders {ms:.2f} ms per face", flush=True)
        _bench.write_json(args.json, {"command": _bench.command(),
                                      "machine": _bench.machine(torch.get_num_threads()),
                                      "batch": 64, "encoder_ms_per_face": speeds})
        return 0
    if args.what == "merge":
        rows: dict[str, Any] = {}
        for part in args.parts:
            for row in json.loads(part.read_text()).get("rows", []):
                folder = args.runs / ("bundled" if row["arm"] == "bundled" else slug(row["arm"]))
                pose = folder / "pose_check.json"
                if pose.is_file():  # the pose measures as the current pose_metrics() reads them
                    row.update(pose_metrics(json.loads(pose.read_text())))
                rows[row["arm"]] = row
        order = ["bundled", *ARMS]
        merged = [rows[a] for a in order if a in rows]
        _bench.write_json(args.json, {"command": _bench.command(), "machine": _bench.machine(1),
                                      "steps": args.steps, "photos": args.photos, "seed": args.seed,
                                      "rows": merged})
        print(table(merged))
        return 0
    done: dict[str, Any] = {}
    if args.json and args.json.is_file():
        done = {r["arm"]: r for r in json.loads(args.json.read_text()).get("rows", [])}
    for arm in arms:
        if arm in done:
            continue
        if arm == "bundled":
            model = Path(resolve(None))
        else:
            arm_model = args.runs / slug(arm) / "model"
            if not (arm_model / "model.safetensors").is_file():
                print(f"{arm}: not trained yet, skipped", flush=True)
                continue
            model = encoder_folder(arm_model, args.runs / slug(arm) / "encoder")
        done[arm] = score(arm, model, args.runs, data)
        print(json.dumps(done[arm]), flush=True)
        if args.json:
            _bench.write_json(args.json, {"command": _bench.command(), "machine": _bench.machine(1),
                                          "steps": args.steps, "photos": args.photos, "seed": args.seed,
                                          "rows": list(done.values())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
