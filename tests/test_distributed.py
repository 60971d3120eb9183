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

from latentface_sdk.checkpoint import load_model_folder


def test_two_process_stage1_trains_with_landmarks_and_light_cycle(shared_data: Path, tmp_path: Path) -> None:
    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"][:16]
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path\n" + "".join(f"{shared_data / 'celeba10k' / 'images' / r['image']}\n" for r in rows))
    recipe = {
        "sources": [str(manifest)], "model": {"width": 8, "decoder_width": 8, "depth_prior": 0.3},
        "batch_size": 4, "steps": 3, "log_every": 1, "grid_every": 3, "checkpoint_every": 3,
        "lambda_landmark": 10.0, "lambda_light_cycle": 1.0, "light_cycle_count": 2, "feature_net": "mtcnn",
        "device": "cpu",
    }
    config = tmp_path / "recipe.json"
    config.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"torchrun is not beside {sys.executable}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "latentface_sdk.train", "stage1",
         "--config", str(config), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("stage 1 model written") == 2  # both ranks finished
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all("cycle_light" in r and "landmark" in r for r in log)
    cfg, tensors = load_model_folder(out / "model")
    assert cfg.metadata["stage1"]["world_size"] == 2 and cfg.metadata["stage1"]["trained_steps"] == 3
    assert any(k.startswith("autoencoder.") for k in tensors)
