"""Stage 2: identity-group readers, batch sampling, the RDM trainer (identity recovery, resume), model
folders."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from latentface_sdk.config import ModelConfig, RDMConfig
from latentface_sdk.errors import ConfigError, DataError
from latentface_sdk.train.groups import (
    GroupedImages,
    celeba_identity_groups,
    imfdb_groups,
    read_group_manifest,
    voxceleb_groups,
)
from latentface_sdk.train.rdm_trainer import LOG_NAME, _group_means
from latentface_sdk.train.stage2 import (
    DEFAULT_CONFIG,
    DataSource,
    Stage2Config,
    build_parser,
    cached_latents,
    config_from_args,
    main,
    sample_batch,
    train_rdms,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_RDM = {"latent_dim": 16, "channels": [64, 32, 64], "time_embed_dim": 32}


def _touch_images(paths: list[Path], size: int = 8) -> None:
    rng = np.random.default_rng(0)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(p)


# ------------------------------------------------------------------------------------------ readers


def test_manifest_resolves_relative_paths_and_drops_small_groups(tmp_path: Path) -> None:
    _touch_images([tmp_path / "img" / f"{n}.png" for n in "abcde"])
    absolute = tmp_path / "img" / "e.png"
    (tmp_path / "m.csv").write_text(
        "path,group,extra\nimg/a.png,p1,x\nimg/b.png,p1,y\n\nimg/c.png,p2,z\nimg/d.png,p3,\n"
        f"{absolute},p3,w\n"
    )
    g = read_group_manifest(tmp_path / "m.csv", min_size=2)
    assert g.paths == [str(tmp_path / "img" / n) for n in ("a.png", "b.png", "d.png", "e.png")]
    assert list(g.groups) == ["p1", "p1", "p3", "p3"]
    assert [idx.tolist() for idx in g.group_indices()] == [[0, 1], [2, 3]]
    assert len(read_group_manifest(tmp_path / "m.csv", min_size=1)) == 5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("file,who\na.png,p\n", "line 1"),
        ("path,group\na.png,p\nb.png\n", "line 3"),
        ("path,group\na.png,p\n,p\nb.png,\n", "line 3; line 4"),
        ("path,group\na.png,p,extra\n", "line 2"),
        ("", "empty"),
        ("path,group\n", "no rows"),
    ],
)
def test_malformed_manifests_raise_data_errors_naming_lines(tmp_path: Path, text: str, needle: str) -> None:
    _touch_images([tmp_path / "a.png", tmp_path / "b.png"])
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=needle.replace(";", ".*")):
        read_group_manifest(tmp_path / "m.csv")


def test_manifest_with_missing_images_names_them(tmp_path: Path) -> None:
    _touch_images([tmp_path / "a.png"])
    (tmp_path / "m.csv").write_text("path,group\na.png,p\ngone.png,p\n")
    with pytest.raises(DataError, match=r"line 3: .*gone\.png"):
        read_group_manifest(tmp_path / "m.csv")
    assert len(read_group_manifest(tmp_path / "m.csv", check_exists=False)) == 2
    with pytest.raises(DataError, match="no such file"):
        read_group_manifest(tmp_path / "absent.csv")


def _celeba_tree(root: Path) -> None:
    rows = [("1.jpg", "7", "train"), ("2.jpg", "7", "train"), ("3.jpg", "8", "train"),
            ("4.jpg", "9", "verify"), ("5.jpg", "9", "verify")]
    _touch_images([root / "celeba10k" / "images" / r[0] for r in rows])
    (root / "celeba10k" / "identity.csv").write_text(
        "image,identity,split\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    )


def test_celeba_groups_train_split_and_refuse_verify(tmp_path: Path) -> None:
    _celeba_tree(tmp_path)
    g = celeba_identity_groups(tmp_path)
    assert [Path(p).name for p in g.paths] == ["1.jpg", "2.jpg"] and set(g.groups) == {"celeba:7"}
    # the data set folder works too
    assert len(celeba_identity_groups(tmp_path / "celeba10k", min_size=1)) == 3
    with pytest.raises(DataError, match="held out"):
        celeba_identity_groups(tmp_path, "verify")
    v = celeba_identity_groups(tmp_path, "verify", allow_verify=True)
    assert [Path(p).name for p in v.paths] == ["4.jpg", "5.jpg"]
    with pytest.raises(DataError):
        celeba_identity_groups(tmp_path, "test")
    with pytest.raises(DataError, match="neither"):
        celeba_identity_groups(tmp_path / "nothing")


def test_imfdb_groups(tmp_path: Path) -> None:
    names = ["A_1.jpg", "A_2.jpg", "B_1.jpg"]
    _touch_images([tmp_path / "imfdb" / "images" / n for n in names])
    (tmp_path / "imfdb" / "labels.csv").write_text(
        "image,identity,expression\nA_1.jpg,A,happy\nA_2.jpg,A,sad\nB_1.jpg,B,neutral\n"
    )
    g = imfdb_groups(tmp_path)
    assert [Path(p).name for p in g.paths] == ["A_1.jpg", "A_2.jpg"] and set(g.groups) == {"imfdb:A"}


def test_voxceleb_layout(tmp_path: Path) -> None:
    root = tmp_path / "vox"
    frames = [root / "id001" / "vidA" / f"{i:03d}.jpg" for i in (2, 1, 3)]
    frames += [root / "id001" / "vidB" / "001.jpg"]  # a one-frame video: dropped
    frames += [root / "id002" / "vidC" / f"{i:03d}.png" for i in (1, 2)]
    _touch_images(frames)
    (root / "id002" / "vidC" / "notes.txt").write_text("not an image")
    (root / "id002" / "stray.jpg").write_bytes(b"")  # wrong depth: ignored
    g = voxceleb_groups(root)
    assert list(g.groups) == ["id001/vidA"] * 3 + ["id002/vidC"] * 2
    assert [Path(p).name for p in g.paths] == ["001.jpg", "002.jpg", "003.jpg", "001.png", "002.png"]
    assert g.num_groups == 2 and len(voxceleb_groups(root, min_size=1)) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frames"):
        voxceleb_groups(tmp_path / "empty")
    with pytest.raises(DataError):
        voxceleb_groups(tmp_path / "missing")


def test_grouped_images_concat_and_length_check() -> None:
    a = GroupedImages(["x", "y"], ["1", "1"], source="a").prefixed("a")
    b = GroupedImages(["z"], [3], source="b")
    both = GroupedImages.concat([a, b])
    assert list(both.groups) == ["a:1", "a:1", 3] and both.source == "a + b"
    with pytest.raises(DataError):
        GroupedImages(["x"], [])


# ------------------------------------------------------------------------------------------ batches


def test_sample_batch_takes_k_distinct_frames_per_group_and_means_are_per_group() -> None:
    groups = [torch.arange(0, 3), torch.arange(3, 23), torch.arange(23, 25)]
    rows, owner = sample_batch(groups, batch_groups=3, frames_per_group=16,
                               generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(owner).tolist()
    chosen_sizes = sorted(counts)
    assert chosen_sizes == [2, 3, 16]  # min(k, size)
    for pos in range(3):
        mine = rows[owner == pos]
        assert len(set(mine.tolist())) == mine.numel()  # no frame twice
        assert any(set(mine.tolist()) <= set(g.tolist()) for g in groups)  # one group's frames
    values = torch.randn(25, 4)
    means = _group_means(values[rows], owner, 3)
    for pos in range(3):
        assert torch.allclose(means[owner == pos], values[rows[owner == pos]].mean(0).expand(counts[pos], 4),
                              atol=1e-6)
    # more groups asked for than exist: sampled with replacement, still valid
    rows2, owner2 = sample_batch(groups, batch_groups=5, frames_per_group=2,
                                 generator=torch.Generator().manual_seed(1))
    assert int(owner2.max()) == 4 and rows2.numel() == 10


# ------------------------------------------------------------------------------------------ training


def _synthetic(groups: int, frames: int, seed: int, dim: int = 16, expr_dim: int = 4,
               expr_scale: float = 1.5):
    """Latents = identity + expression: identities span one subspace, expressions (per frame) another."""
    q = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(123)))[0]
    expr_basis, id_basis = q[:, :expr_dim], q[:, expr_dim:]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randn(groups, dim - expr_dim, generator=g) @ id_basis.T
    expr = (torch.randn(groups, frames, expr_dim, generator=g) * expr_scale) @ expr_basis.T
    return ids, ids[:, None, :] + expr


def _tiny_cfg(**kw: object) -> Stage2Config:
    base = {"steps": 200, "batch_groups": 16, "frames_per_group": 8, "lr": 1e-3, "log_every": 50,
            "checkpoint_every": 1000, "rdm": TINY_RDM}
    base.update(kw)
    return Stage2Config.from_dict(base)


@pytest.mark.slow
def test_training_makes_generated_identity_closer_to_the_truth_than_z_exp(tmp_path: Path) -> None:
    ids, z = _synthetic(groups=256, frames=16, seed=1)
    flat = z.reshape(-1, 16)
    latents = {"texture": flat, "shape": -2.0 * flat + 1.0}  # the shape RDM gets a rescaled copy
    groups = [np.arange(i * 16, (i + 1) * 16) for i in range(256)]
    pair, history = train_rdms(latents, groups, _tiny_cfg(steps=120, log_every=40), tmp_path, progress=False)
    assert len(history) == 120 and history[-1]["step"] == 120
    # fresh identities (never trained on), two frames each
    test_ids, test_z = _synthetic(groups=64, frames=2, seed=9)
    cond, truth = test_z.reshape(-1, 16), test_ids.repeat_interleave(2, 0)
    gen = torch.Generator().manual_seed(0)
    z_id = pair.rdm_texture.sample(cond, generator=gen)
    err_exp = (cond - truth).pow(2).sum(1).mean()
    err_id = (z_id - truth).pow(2).sum(1).mean()
    # Z_exp is off by the whole expression (about 4 * 1.5^2 = 9); the generated Z_id must be at least
    # twice closer (in squared distance) to the true identity.
    assert err_id < 0.5 * err_exp, (float(err_id), float(err_exp))
    shape_id = pair.rdm_shape.sample(-2.0 * cond + 1.0, generator=torch.Generator().manual_seed(0))
    assert (shape_id - (-2.0 * truth + 1.0)).pow(2).sum(1).mean() < 0.5 * 4.0 * err_exp
    log = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert log[0]["event"] == "start" and log[-1]["event"] == "end"
    assert [r["step"] for r in log if "loss_texture" in r] == [40, 80, 120]


def test_resume_continues_exactly_where_it_stopped(tmp_path: Path) -> None:
    _, z = _synthetic(groups=32, frames=8, seed=2)
    flat = z.reshape(-1, 16)
    latents = {"texture": flat, "shape": flat.flip(1)}
    groups = [np.arange(i * 8, (i + 1) * 8) for i in range(32)]
    cfg6 = _tiny_cfg(steps=6, checkpoint_every=3, batch_groups=4)
    straight, hist = train_rdms(latents, groups, cfg6, tmp_path / "a", progress=False)
    train_rdms(latents, groups, _tiny_cfg(steps=3, checkpoint_every=3, batch_groups=4), tmp_path / "b",
               progress=False)
    resumed, hist_b = train_rdms(latents, groups, cfg6, tmp_path / "b", progress=False, resume=True)
    assert [h["step"] for h in hist_b] == [4, 5, 6]
    for a, b in zip(hist[3:], hist_b, strict=True):
        assert a["loss_texture"] == pytest.approx(b["loss_texture"], rel=1e-5)
        assert a["loss_shape"] == pytest.approx(b["loss_shape"], rel=1e-5)
    for (ka, va), (kb, vb) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert ka == kb and torch.allclose(va, vb, atol=1e-6), ka
    # a different recipe must not silently continue this checkpoint
    with pytest.raises(ConfigError, match="different stage-2 recipe"):
        train_rdms(latents, groups, _tiny_cfg(steps=8, batch_groups=5), tmp_path / "b", progress=False,
                   resume=True)
    # a finished run resumed with the same steps does nothing
    _, none = train_rdms(latents, groups, cfg6, tmp_path / "b", progress=False, resume=True)
    assert none == []


def test_trainer_refuses_bad_latents_and_groups(tmp_path: Path) -> None:
    flat = torch.randn(10, 16)
    with pytest.raises(DataError, match="no group"):
        train_rdms({"texture": flat, "shape": flat}, [np.array([0])], _tiny_cfg(), tmp_path, progress=False)
    with pytest.raises(DataError, match="outside"):
        train_rdms({"texture": flat, "shape": flat}, [np.array([0, 42])], _tiny_cfg(), tmp_path,
                   progress=False)
    with pytest.raises(DataError):
        train_rdms({"texture": flat, "shape": flat[:, :8]}, [np.array([0, 1])], _tiny_cfg(), tmp_path,
                   progress=False)


# ------------------------------------------------------------------------------------------ config and caches


def test_default_recipe_loads_and_never_trains_on_verify() -> None:
    cfg = Stage2Config.load(DEFAULT_CONFIG)
    assert [s.kind for s in cfg.data] == ["celeba", "imfdb"]
    assert cfg.frames_per_group == 16 and cfg.lr == pytest.approx(1e-4)
    # The recipe changes only where disentangle starts DDIM (z_T = 0, measured in docs/results.md).
    assert cfg.rdm == RDMConfig(sample_init="zero")
    with pytest.raises(ConfigError, match="verify"):
        Stage2Config.from_dict({"data": [{"kind": "celeba", "path": "x", "split": "verify"}]})
    with pytest.raises(ConfigError, match="unknown"):
        Stage2Config.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match=r"rdm: unknown field"):
        Stage2Config.from_dict({"rdm": {"width": 3}})
    with pytest.raises(ConfigError):
        Stage2Config.from_dict({"min_group_size": 1})


def test_command_line_overrides(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "--stage1", "s1", "--out", "o", "--steps", "7", "--batch-groups", "3", "--frames-per-group", "5",
        "--data", "voxceleb=/tmp/vox", "--data", "manifest=m.csv", "--device", "cpu", "--resume",
    ])
    cfg = config_from_args(args)
    assert (cfg.steps, cfg.batch_groups, cfg.frames_per_group) == (7, 3, 5)
    assert cfg.data == [DataSource("voxceleb", "/tmp/vox"), DataSource("manifest", "m.csv")]
    assert args.resume and args.device == "cpu"
    with pytest.raises(ConfigError, match="KIND=PATH"):
        DataSource.parse("celeba")
    with pytest.raises(ConfigError, match="kind"):
        DataSource.parse("lfw=/x")


class _CountingEncoder(nn.Module):
    """Stands in for the stage-1 model: ``encode`` returns deterministic texture/shape latents."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 16)
        self.calls = 0

    def encode(self, x: Tensor) -> object:
        self.calls += 1
        feats = self.proj(x.mean(dim=(2, 3)))
        return type("L", (), {"texture": feats, "shape": -feats})()


def test_latents_are_encoded_once_and_cached(tmp_path: Path) -> None:
    crops = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    enc = _CountingEncoder()
    first = cached_latents(enc, crops, tmp_path, batch_size=2, progress=False)
    assert enc.calls == 3 and first["texture"].shape == (5, 16) and first["texture"].dtype == torch.float32
    again = cached_latents(enc, crops, tmp_path, batch_size=2, progress=False)
    assert enc.calls == 3 and torch.equal(again["shape"], first["shape"])
    crops[0, 0, 0] ^= 1  # other data: recomputed
    cached_latents(enc, crops, tmp_path, batch_size=2, progress=False)
    assert enc.calls == 6
    with torch.no_grad():
        enc.proj.bias.add_(1.0)  # other weights: recomputed
    cached_latents(enc, crops, tmp_path, batch_size=8, progress=False)
    assert enc.calls == 7 and len(list(tmp_path.glob("latents-*.safetensors"))) == 3


# ------------------------------------------------------------------------------------------ end to end


def _stage1_folder(folder: Path) -> ModelConfig:
    from latentface_sdk.models.autoencoder import LatentAutoencoder

    cfg = ModelConfig(metadata={"stage1": {"note": "random weights for a test"}})
    ae = LatentAutoencoder(cfg.autoencoder)
    folder.mkdir(parents=True)
    save_file({f"autoencoder.{k}": v.contiguous() for k, v in ae.state_dict().items()},
              str(folder / "model.safetensors"))
    cfg.save(folder)
    return cfg


@pytest.mark.slow
def test_main_writes_a_model_folder_and_resumes(tmp_path: Path) -> None:
    _stage1_folder(tmp_path / "stage1")
    vox = tmp_path / "vox"
    _touch_images([vox / p / v / f"{i}.png" for p in ("a", "b") for v in ("v1", "v2") for i in range(3)],
                  size=40)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": 3, "batch_groups": 2, "frames_per_group": 2, "detect": False,
                                  "checkpoint_every": 2, "log_every": 1, "rdm": {"channels": [32, 16, 32]}}))
    out = tmp_path / "out"
    argv = ["--config", str(recipe), "--stage1", str(tmp_path / "stage1"), "--out", str(out),
            "--data", f"voxceleb={vox}", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    cfg = ModelConfig.load(out)
    assert cfg.rdm.channels == (32, 16, 32)
    assert cfg.metadata["stage1"] == {"note": "random weights for a test"}
    assert cfg.metadata["stage2"]["groups"] == 4 and cfg.metadata["stage2"]["images"] == 12
    import hashlib

    assert cfg.checksum == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    weights = load_file(str(out / "model.safetensors"))
    stage1 = load_file(str(tmp_path / "stage1" / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in stage1.items())
    prefixes = {k.split(".")[0] for k in weights}
    assert prefixes == {"autoencoder", "rdm_texture", "rdm_shape"}
    assert "rdm_texture.latent_mean" in weights and "rdm_shape.denoiser.inp.weight" in weights
    assert list((out / "cache").glob("latents-*.safetensors"))
    # resume to more steps continues from the checkpoint
    assert main([*argv, "--steps", "5", "--resume"]) == 0
    starts = [json.loads(x) for x in (out / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in starts if r.get("event") == "start"] == [0, 3]
    # errors come back as an exit code with a message, not a traceback
    assert main(["--stage1", str(tmp_path / "nowhere"), "--out", str(out), "--data", f"voxceleb={vox}"]) == 2


# ------------------------------------------------------------------------------------------ benchmark script


def _benchmark_module() -> ModuleType:
    path = REPO_ROOT / "experiments" / "rdm_identity_gap.py"
    spec = importlib.util.spec_from_file_location("rdm_identity_gap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_identity_gap_metric_on_a_synthetic_case() -> None:
    bench = _benchmark_module()
    ids, z = _synthetic(groups=20, frames=2, seed=4)
    labels = np.repeat(np.arange(20), 2)
    raw = z.reshape(-1, 16).numpy()
    clean = ids.repeat_interleave(2, 0).numpy()
    stats_raw = bench.pair_distances(raw, labels)
    stats_clean = bench.pair_distances(clean, labels)
    assert stats_clean["same"] == pytest.approx(0.0, abs=1e-6)  # identical identity vectors
    assert stats_raw["same"] > 0.05 and stats_raw["ratio"] > stats_clean["ratio"]
    assert 0.0 <= stats_raw["auc"] <= 1.0 and stats_clean["auc"] == pytest.approx(1.0)
    args = bench.build_parser().parse_args(["--model", "m", "--data", "d", "--num-samples", "2"])
    assert args.num_samples == 2 and args.seed == 0


def test_default_recipe_on_the_shared_data_excludes_verify_identities(shared_data: Path) -> None:
    import csv

    with (shared_data / "celeba10k" / "identity.csv").open() as fh:
        verify = {r["image"] for r in csv.DictReader(fh) if r["split"] == "verify"}
    sources = [DataSource(s.kind, str(shared_data), s.split) for s in Stage2Config.load(DEFAULT_CONFIG).data]
    from latentface_sdk.train.stage2 import load_groups

    data = load_groups(sources, min_size=2)
    celeba = [p for p in data.paths if "celeba10k" in p]
    assert celeba and not {Path(p).name for p in celeba} & verify
    assert min(data.group_sizes().values()) >= 2
    assert sum(1 for g in set(data.groups) if str(g).startswith("imfdb:")) == 8
