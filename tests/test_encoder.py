"""The FaceEncoder facade: loading and saving weights (and their errors), device, dtype, repr, and the
methods end to end (encode, disentangle, frontalize on the bundled model).

What happens inside a call has its own file: tests/test_pipeline.py (inputs, crops, batches, the
single/batch rules), tests/test_operations.py (identity sampling, renders, ``light``) and
tests/test_results.py (the result types). Every test here builds a tiny randomly initialised model
(``tests/_tiny_model.py``, saved to a temporary folder) so that the suite does not depend on trained
weights; the tests that need the bundled default skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import tiny_config
from _tiny_model import save_tiny_model
from safetensors.torch import load_file, save_file

from latentface_sdk import (
    ChecksumError,
    ConfigError,
    Encoding,
    FaceEncoder,
    WeightsError,
)
from latentface_sdk.config import ModelConfig
from latentface_sdk.model_folder import save_model_folder

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "weights" / "latentface-cpu-small"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def enc(model_dir: Path) -> FaceEncoder:
    return FaceEncoder.from_pretrained(model_dir, device="cpu")


def _rows_equal(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------------------------- encode


def test_encode_shapes_and_types(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    r = enc.encode(crops, detect=False)
    assert isinstance(r, Encoding) and len(r) == 5
    assert r.texture.shape == (5, 256) and r.shape.shape == (5, 256)
    assert r.pose.shape == (5, 6) and r.light.shape == (5, 4)
    assert r.boxes.shape == (5, 4) and r.scores.shape == (5,)
    assert r.ok.dtype == torch.bool and r.ok.all() and r.errors == [None] * 5
    assert r.names == [f"item {i}" for i in range(5)] and r.source.tolist() == [0, 1, 2, 3, 4]
    assert torch.isfinite(r.texture).all() and torch.isnan(r.scores).all()  # no detection: no score
    assert r.boxes[0].tolist() == [0.0, 0.0, 64.0, 64.0]  # detect=False: the whole (square) crop
    assert torch.equal(r.yaw, r.pose[:, 3]) and torch.equal(r.pitch, r.pose[:, 4])
    assert torch.equal(r.roll, r.pose[:, 5])
    assert (r.pose[:, 3:].abs() <= enc.config.autoencoder.max_rotation_deg + 1e-4).all()
    arrays = r.numpy()
    assert arrays["texture"].shape == (5, 256) and arrays["ok"].dtype == bool
    assert arrays["names"].tolist() == r.names and arrays["errors"].tolist() == [""] * 5


# -------------------------------------------------------------------------------------------- weights


def test_save_load_round_trip_gives_identical_outputs(
    enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path
) -> None:
    out = enc.save_pretrained(tmp_path / "again")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert (out / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable by group and others
    back = FaceEncoder.from_pretrained(out, device="cpu")
    assert back.config.checksum == enc.config.checksum and back.config.to_dict() == enc.config.to_dict()
    for a, b in zip(enc.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(enc.encode(crops, detect=False).pose, back.encode(crops, detect=False).pose)
    da = enc.disentangle(crops, detect=False, seed=3)
    db = back.disentangle(crops, detect=False, seed=3)
    assert torch.equal(da.verification_features, db.verification_features)
    fa, fb = enc.frontalize(crops, detect=False), back.frontalize(crops, detect=False)
    assert torch.equal(fa.tensor, fb.tensor)


def test_half_precision_storage_halves_the_file_and_loads_as_float32(
    enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path
) -> None:
    full = enc.save_pretrained(tmp_path / "full")
    half = enc.save_pretrained(tmp_path / "half", storage_dtype=torch.float16)
    size = (half / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert 0.45 < size < 0.55
    stored = load_file(str(half / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    back = FaceEncoder.from_pretrained(half, device="cpu")
    assert {p.dtype for p in back.parameters()} == {torch.float32}
    a, b = enc.encode(crops, detect=False), back.encode(crops, detect=False)
    # the weights' rounding (relative 2^-11) moves the latents by a small fraction of their spread
    assert (a.texture - b.texture).abs().max() < 0.05 * a.texture.std()
    with pytest.raises(ValueError, match="floating-point"):
        enc.save_pretrained(tmp_path / "bad", storage_dtype=torch.int8)


def _rewrite(model_dir: Path, dest: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    cfg = ModelConfig.load(model_dir)
    state = load_file(str(model_dir / "model.safetensors"))
    edit(state)
    return save_model_folder(dest, cfg, state)


def test_missing_and_mis_shaped_tensors_are_named(model_dir: Path, tmp_path: Path) -> None:
    state = load_file(str(model_dir / "model.safetensors"))
    key = next(k for k in sorted(state) if k.startswith("autoencoder.texture_encoder"))
    missing = _rewrite(model_dir, tmp_path / "missing", lambda s: s.pop(key))
    with pytest.raises(WeightsError, match="missing") as err:
        FaceEncoder.from_pretrained(missing, device="cpu")
    assert key in str(err.value) and str(missing / "model.safetensors") in str(err.value)

    def widen(s: dict[str, torch.Tensor]) -> None:
        s[key] = torch.zeros(*s[key].shape[:-1], s[key].shape[-1] + 1)

    wrong = _rewrite(model_dir, tmp_path / "wrong", widen)
    with pytest.raises(WeightsError, match="shape mismatch") as err:
        FaceEncoder.from_pretrained(wrong, device="cpu")
    assert key in str(err.value)

    stray = _rewrite(model_dir, tmp_path / "stray", lambda s: s.update({"extra.weight": torch.zeros(1)}))
    with pytest.raises(WeightsError, match="extra.weight"):
        FaceEncoder.from_pretrained(stray, device="cpu")

    no_rdm = _rewrite(model_dir, tmp_path / "no_rdm",
                      lambda s: [s.pop(k) for k in [k for k in s if k.startswith("rdm_shape.")]])
    with pytest.raises(WeightsError, match="rdm_shape"):
        FaceEncoder.from_pretrained(no_rdm, device="cpu")


def test_unknown_version_checksum_and_pickle_are_refused(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    future = tmp_path / "future"
    shutil.copytree(model_dir, future)
    data = json.loads((future / "config.json").read_text())
    data["version"] = 99
    (future / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="version 99") as err:
        FaceEncoder.from_pretrained(future, device="cpu")
    assert str(future / "config.json") in str(err.value)

    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    state = load_file(str(tampered / "model.safetensors"))
    first = sorted(state)[0]
    state[first] = state[first] + 1.0
    save_file(state, str(tampered / "model.safetensors"))
    with pytest.raises(ChecksumError, match="does not match"):
        FaceEncoder.from_pretrained(tampered, device="cpu")

    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    torch.save({"x": torch.zeros(1)}, pickled / "model.safetensors")
    with pytest.raises(WeightsError, match="pickle"):
        FaceEncoder.from_pretrained(pickled, device="cpu")

    with pytest.raises(WeightsError, match="no such model"):
        FaceEncoder.from_pretrained("no-such-model-anywhere", device="cpu")
    with pytest.raises(WeightsError, match="lacks model.safetensors"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "config.json").write_text((model_dir / "config.json").read_text())
        FaceEncoder.from_pretrained(tmp_path / "half", device="cpu")


def test_from_config_to_and_dtype(model_dir: Path, crops: list[np.ndarray]) -> None:
    enc = FaceEncoder.from_config(tiny_config())
    assert enc.device == torch.device("cpu") and enc.config.checksum is None and not enc.training
    enc.train()
    assert not enc.training  # stays an inference object
    assert enc.to("cpu") is enc
    dbl = FaceEncoder.from_pretrained(model_dir, device="cpu", dtype=torch.float64)
    ref = FaceEncoder.from_pretrained(model_dir, device="cpu")
    assert dbl.dtype == torch.float64
    r = dbl.encode(crops, detect=False)
    assert r.texture.dtype == torch.float32  # results are float32 whatever the model's dtype
    torch.testing.assert_close(r.texture, ref.encode(crops, detect=False).texture, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="dtype"):
        FaceEncoder.from_pretrained(model_dir, device="cpu", dtype=torch.int32)
    with pytest.raises(ConfigError, match="crop.size"):
        cfg = tiny_config()
        cfg.crop.size = 32
        FaceEncoder(cfg)


def test_device_auto_logs_its_choice(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="latentface_sdk"):
        enc = FaceEncoder.from_pretrained(model_dir, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert enc.device.type == expected and f"using device {expected}" in caplog.text


def test_the_encoder_prints_on_one_line(enc: FaceEncoder) -> None:
    m = repr(enc)  # the model itself: one line, not nn.Module's ~300-line tree
    assert m.startswith("FaceEncoder(name=") and "\n" not in m and len(m) < 300 and "parameters=" in m


# ---------------------------------------------------------------------------------------- disentangle


def test_disentangle_is_deterministic_and_batch_independent(
    enc: FaceEncoder, crops: list[np.ndarray]
) -> None:
    a = enc.disentangle(crops, detect=False, seed=11, batch_size=64)
    b = enc.disentangle(crops, detect=False, seed=11, batch_size=2)
    _rows_equal(a.identity_texture, b.identity_texture)
    _rows_equal(a.identity_shape, b.identity_shape)
    # The same image gives the same identity wherever it sits, alone or in a batch.
    alone = enc.disentangle(crops[3], detect=False, seed=11)
    _rows_equal(alone.identity_texture[0], a.identity_texture[3])
    reordered = enc.disentangle([crops[3], crops[0]], detect=False, seed=11)
    _rows_equal(reordered.identity_shape, a.identity_shape[[3, 0]])
    other = enc.disentangle(crops, detect=False, seed=12)
    assert not torch.allclose(other.identity_texture, a.identity_texture)
    torch.manual_seed(5)
    n1 = enc.disentangle(crops[:2], detect=False)
    torch.manual_seed(5)
    n2 = enc.disentangle(crops[:2], detect=False)
    assert torch.equal(n1.identity_texture, n2.identity_texture)  # seed=None follows torch.manual_seed
    many = enc.disentangle(crops[:2], detect=False, seed=11, num_samples=4)
    assert many.identity_texture.shape == (2, 256)
    with pytest.raises(ValueError, match="steps"):
        enc.disentangle(crops[0], detect=False, steps=0)
    with pytest.raises(ValueError, match="num_samples"):
        enc.disentangle(crops[0], detect=False, num_samples=0)


def test_disentangle_from_zero_is_deterministic_and_follows_the_config(
    enc: FaceEncoder, crops: list[np.ndarray], model_dir: Path, tmp_path: Path
) -> None:
    a = enc.disentangle(crops, detect=False, seed=1, init="zero")
    b = enc.disentangle(crops, detect=False, seed=2, init="zero")
    torch.testing.assert_close(a.identity_texture, b.identity_texture)  # no noise: the seed plays no part
    noisy = enc.disentangle(crops, detect=False, seed=1)
    assert not torch.allclose(noisy.identity_texture, a.identity_texture)  # the tiny model defaults to noise
    # The same model with rdm.sample_init = "zero" in its config.json takes it as the default.
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["rdm"]["sample_init"] = "zero"
    zero_dir = tmp_path / "zero"
    shutil.copytree(model_dir, zero_dir)
    (zero_dir / "config.json").write_text(json.dumps(cfg))
    zero = FaceEncoder.from_pretrained(zero_dir, device="cpu")
    by_default = zero.disentangle(crops, detect=False, seed=9)
    torch.testing.assert_close(by_default.identity_texture, a.identity_texture)
    with pytest.raises(ValueError, match="init"):
        enc.disentangle(crops[0], detect=False, init="mean")  # type: ignore[arg-type]
    cfg["rdm"]["sample_init"] = "mean"
    (zero_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="sample_init"):
        FaceEncoder.from_pretrained(zero_dir, device="cpu")


# ------------------------------------------------------------------------------- threads and devices


def test_threads_share_one_encoder(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    serial = [enc.disentangle(c, detect=False, seed=1).verification_features for c in crops]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda c: enc.disentangle(c, detect=False, seed=1).verification_features,
                                 crops))
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(model_dir: Path, crops: list[np.ndarray]) -> None:
    cpu = FaceEncoder.from_pretrained(model_dir, device="cpu")
    gpu = FaceEncoder.from_pretrained(model_dir, device="cuda")
    assert gpu.device.type == "cuda" and gpu.detector.device.type == "cuda"
    a, b = cpu.disentangle(crops, detect=False, seed=0), gpu.disentangle(crops, detect=False, seed=0)
    torch.testing.assert_close(b.verification_features, a.verification_features, atol=1e-3, rtol=1e-3)
    f = gpu.frontalize(crops, detect=False)
    assert f.tensor.shape == (5, 3, 64, 64) and torch.isfinite(f.tensor).all()


# -------------------------------------------------------------------------------- the bundled default


@pytest.mark.skipif(not (BUNDLED / "config.json").is_file(),
                    reason="the bundled default weights/latentface-cpu-small have not landed yet")
def test_bundled_default_loads_and_encodes(shared_data: Path) -> None:
    enc = FaceEncoder.from_pretrained(device="cpu")
    assert enc.config.name == "latentface-cpu-small" and enc.config.checksum
    r = enc.encode(shared_data / "photos" / "two_people.jpg", faces="all")
    assert len(r) == 2 and torch.isfinite(r.texture).all()


@pytest.mark.skipif(not (BUNDLED / "config.json").is_file(),
                    reason="the bundled default weights/latentface-cpu-small have not landed yet")
def test_frontalize_keeps_a_frontal_face_close_to_its_input(shared_data: Path) -> None:
    """Metric: mean absolute error (0-1 scale) between the frontal render and the input crop, over the pixels
    the face covers, on 16 CelebA faces (aligned, near frontal). It must stay under 0.15 and clearly below
    the error against another person's crop (the same renders compared with the inputs shifted by one)."""
    import csv

    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "verify"][:16]
    paths = [shared_data / "celeba10k" / "images" / r["image"] for r in rows]
    enc = FaceEncoder.from_pretrained(device="cpu")
    f = enc.frontalize(paths, return_tensors=True)
    assert bool(f.ok.all())
    from latentface_sdk.detection import crop_face
    from latentface_sdk.images import to_rgb

    inputs = torch.stack([
        torch.from_numpy(crop_face(to_rgb(p), tuple(f.encoding.boxes[i].tolist()), enc.config.crop))
        for i, p in enumerate(paths)
    ]).permute(0, 3, 1, 2).float() / 255.0

    def masked_l1(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b).abs() * f.mask).sum() / (f.mask.sum() * 3))

    own = masked_l1(f.tensor, inputs)
    other = masked_l1(f.tensor, inputs.roll(1, dims=0))
    assert own < 0.15 and own < 0.8 * other, (own, other)
