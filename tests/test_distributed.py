"""Stage 1 under ``torchrun --nproc_per_node 2`` (gloo on CPU): the documented multi-process command runs.

The whole forward pass (reconstruction and light cycle) is one DistributedDataParallel module; before
that, the loss reached for the confidence network through the DDP wrapper and a two-process run failed
on its first step. Rank 0 writes the files; every rank must finish.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentface_sdk.model_folder import load_model_folder
from latentface_sdk.train.recipes import Stage1Config, Stage2Config


@pytest.mark.slow
def test_two_process_stage1_trains_with_landmarks_light_cycle_and_expression_levers(shared_data: Path,
                                                                                   tmp_path: Path) -> None:
    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"][:16]
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path\n" + "".join(f"{shared_data / 'celeba10k' / 'images' / r['image']}\n"
                                           for r in rows))
    recipe = {
        "sources": [str(manifest)], "model": {"width": 8, "decoder_width": 8, "depth_prior": 0.3},
        "batch_size": 4, "steps": 3, "log_every": 1, "grid_every": 3, "checkpoint_every": 3,
        "lambda_landmark": 10.0, "lambda_light_cycle": 1.0, "light_cycle_count": 2, "feature_net": "mtcnn",
        "device": "cpu",
        # the expression levers: without the photometric confidence its head must still reach DDP
        "photo_confidence": False, "feature_region_weight": 2.0, "region_weight": 2.0, "keypoint_blur": 5,
    }
    config = tmp_path / "recipe.json"
    config.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"torchrun is not beside {sys.executable}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "latentface_sdk.train",
         "stage1", "--config", str(config), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("stage 1 model written") == 2  # both ranks finished
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all("cycle_light" in r and "landmark" in r for r in log)
    cfg, tensors = load_model_folder(out / "model")
    assert cfg.metadata["stage1"]["world_size"] == 2 and cfg.metadata["stage1"]["trained_steps"] == 3
    assert any(k.startswith("autoencoder.") for k in tensors)


def _torchrun(args: list[str], port: int) -> subprocess.CompletedProcess[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"torchrun is not beside {sys.executable}")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m", "latentface_sdk.train",
         *args, "--no-progress"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _celeba_train(shared_data: Path, identities: int, per_identity: int) -> list[tuple[str, str]]:
    """(image path, identity) of the first CelebA ``train`` identities with enough photos."""
    by_id: dict[str, list[str]] = {}
    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["split"] == "train":
                by_id.setdefault(r["identity"], []).append(
                    str(shared_data / "celeba10k" / "images" / r["image"]))
    chosen = [k for k, v in sorted(by_id.items()) if len(v) >= per_identity][:identities]
    return [(p, k) for k in chosen for p in by_id[k][:per_identity]]


def _weights(folder: Path) -> dict[str, object]:
    return dict(load_model_folder(folder)[1])


@pytest.mark.slow
def test_two_process_stage1_resumes_to_a_straight_run_and_equals_one_process(shared_data: Path,
                                                                             tmp_path: Path) -> None:
    """Two ranks x batch 2: a run stopped at step 2 and resumed ends with the straight run's weights, and
    one process with the global batch (4) logs the same losses and ends with the same weights (float
    noise aside): the ranks take slices of the global batch's data and draws, and the log holds the
    global batch's loss."""
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path\n" + "".join(f"{p}\n" for p, _ in _celeba_train(shared_data, 4, 3)))
    recipe = {"sources": [str(manifest)], "model": {"width": 8, "decoder_width": 8, "depth_prior": 0.3},
              "batch_size": 2, "steps": 4, "log_every": 1, "grid_every": 100, "checkpoint_every": 2,
              "lambda_landmark": 10.0, "feature_net": "random-conv", "device": "cpu"}
    config = tmp_path / "recipe.json"
    config.write_text(json.dumps(recipe))
    common = ["stage1", "--config", str(config), "--cache-dir", str(tmp_path / "cache")]
    _torchrun([*common, "--out", str(tmp_path / "straight")], 29518)
    _torchrun([*common, "--out", str(tmp_path / "split"), "--steps", "2"], 29519)
    _torchrun([*common, "--out", str(tmp_path / "split"), "--resume"], 29520)
    meta = load_model_folder(tmp_path / "straight" / "model")[0].metadata["stage1"]
    assert meta["world_size"] == 2 and meta["ranks_agree"] and len(set(meta["rank_weights"])) == 1
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "split" / "model")
    assert a.keys() == b.keys()
    for key in a:  # the same updates in the same order: equal up to float rounding of reordered sums
        assert torch.allclose(a[key], b[key], atol=1e-5), key  # type: ignore[arg-type]
    log = [json.loads(line) for line in (tmp_path / "split" / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    one = tmp_path / "one.json"
    one.write_text(json.dumps({**recipe, "batch_size": 4}))
    proc = subprocess.run([sys.executable, "-m", "latentface_sdk.train", "stage1", "--config", str(one),
                           "--out", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "cache"),
                           "--no-progress"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    two_log = [json.loads(line) for line in (tmp_path / "straight" / "train.log").read_text().splitlines()]
    one_log = [json.loads(line) for line in (tmp_path / "one" / "train.log").read_text().splitlines()]
    for r2, r1 in zip(two_log, one_log, strict=True):
        for key in ("loss", "l1", "landmark"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-3, abs=1e-4), (r2["step"], key, r2[key], r1[key])
    # Adam scales each update to about lr whatever the gradient's size, so the float noise of summing the
    # gradient in another order can move a weight whose gradient is near zero by up to lr a step: the
    # weights agree within 2 lr per step, and as a whole to 1%.
    c = _weights(tmp_path / "one" / "model")
    lr = Stage1Config.from_dict(recipe).lr
    for key in a:
        assert (a[key] - c[key]).abs().max() <= 2 * lr * recipe["steps"], key  # type: ignore[operator]
    flat_a = torch.cat([a[k].flatten().float() for k in sorted(a)])  # type: ignore[union-attr]
    flat_c = torch.cat([c[k].flatten().float() for k in sorted(a)])  # type: ignore[union-attr]
    assert (flat_a - flat_c).norm() <= 1e-2 * flat_a.norm()


@pytest.mark.slow
def test_two_process_stage2_ranks_agree_and_resume_matches_a_straight_run(shared_data: Path,
                                                                          tmp_path: Path) -> None:
    from _tiny import tiny_config

    from latentface_sdk import FaceEncoder

    torch.manual_seed(0)
    stage1 = FaceEncoder.from_config(tiny_config("tiny-ddp", latent_dim=16)).save_pretrained(tmp_path / "s1")
    manifest = tmp_path / "groups.csv"
    manifest.write_text("path,group\n" + "".join(f"{p},{k}\n" for p, k in _celeba_train(shared_data, 6, 2)))
    recipe = {"data": [{"kind": "manifest", "path": str(manifest)}], "steps": 4, "batch_groups": 2,
              "frames_per_group": 2, "checkpoint_every": 2, "log_every": 1,
              "rdm": {"latent_dim": 16, "channels": [32, 16, 32], "time_embed_dim": 16}}
    config = tmp_path / "recipe.json"
    config.write_text(json.dumps(recipe))
    common = ["stage2", "--config", str(config), "--stage1", str(stage1), "--device", "cpu",
              "--cache-dir", str(tmp_path / "cache")]
    _torchrun([*common, "--out", str(tmp_path / "straight")], 29521)
    _torchrun([*common, "--out", str(tmp_path / "split"), "--steps", "2"], 29522)
    _torchrun([*common, "--out", str(tmp_path / "split"), "--resume"], 29523)
    for run in ("straight", "split"):
        log = [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        end = [r for r in log if r.get("event") == "end"][-1]
        assert end["ranks_agree"] and len(end["rank_weights"]) == 2, end
        start = [r for r in log if r.get("event") == "start"][0]
        assert start["world_size"] == 2
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    rdm = [k for k in a if k.startswith("rdm_")]
    assert rdm and all(torch.allclose(a[k], b[k], atol=1e-6) for k in rdm)  # type: ignore[arg-type]
    # one process with the global batch (2 ranks x 2 groups = 4 groups): the same losses, the same weights
    one = tmp_path / "one.json"
    one.write_text(json.dumps({**recipe, "batch_groups": 4}))
    proc = subprocess.run([sys.executable, "-m", "latentface_sdk.train", "stage2", "--config", str(one),
                           "--stage1", str(stage1), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                           "--out", str(tmp_path / "one"), "--no-progress"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]

    def losses(run: str) -> list[tuple[float, float]]:
        log = [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        return [(r["loss_texture"], r["loss_shape"]) for r in log if "loss_texture" in r]

    two_losses, one_losses = losses("straight"), losses("one")
    assert len(two_losses) == len(one_losses) == 4
    for (t2, s2), (t1, s1) in zip(two_losses, one_losses, strict=True):
        assert t2 == pytest.approx(t1, rel=1e-4) and s2 == pytest.approx(s1, rel=1e-4)
    c = _weights(tmp_path / "one")
    lr = Stage2Config.from_dict(recipe).lr
    for k in rdm:  # within Adam's float noise (see the stage-1 test)
        assert (a[k] - c[k]).abs().max() <= 2 * lr * recipe["steps"], k  # type: ignore[operator]
