"""FaceEncoder: inputs, face policy, batches, weights loading and errors, determinism, renders.

Every test builds a tiny randomly initialised model (saved to a temporary folder) so that the suite does not
depend on trained weights; the tests that need the bundled default skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import tiny_config
from PIL import Image
from safetensors.torch import load_file, save_file

from latentface_sdk import (
    ChecksumError,
    ConfigError,
    Disentangled,
    Encoding,
    FaceEncoder,
    Frontalized,
    InvalidImageError,
    NoFaceError,
    WeightsError,
)
from latentface_sdk.checkpoint import save_model_folder
from latentface_sdk.config import ModelConfig
from latentface_sdk.encoder import NEUTRAL_LIGHT

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "weights" / "latentface-cpu-small"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    enc = FaceEncoder.from_config(tiny_config())
    # An untrained autoencoder starts flat and frontal (zeroed depth and pose heads); give the test model
    # relief and pose, as a trained one has, so that light and view options show in the renders.
    for head in (enc.autoencoder.depth_decoder.net[-2], enc.autoencoder.pose_encoder.net[-2]):
        torch.nn.init.normal_(head.weight, std=0.05)  # type: ignore[arg-type]
    # Non-trivial RDM statistics, so that a save/load that dropped them would show.
    for rdm in (enc.rdm_texture, enc.rdm_shape):
        rdm.set_latent_statistics(torch.randn(16, 256) * 0.5 + 0.1)
    return enc.save_pretrained(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def enc(model_dir: Path) -> FaceEncoder:
    return FaceEncoder.from_pretrained(model_dir, device="cpu")


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return [np.roll(base, 7 * k, axis=1) for k in range(5)]


def _rows_equal(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------------------------- inputs


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
    assert torch.equal(r.yaw, r.pose[:, 3]) and torch.equal(r.pitch, r.pose[:, 4]) and torch.equal(r.roll, r.pose[:, 5])
    assert (r.pose[:, 3:].abs() <= enc.config.autoencoder.max_rotation_deg + 1e-4).all()
    arrays = r.numpy()
    assert arrays["texture"].shape == (5, 256) and arrays["ok"].dtype == bool
    assert arrays["names"].tolist() == r.names and arrays["errors"].tolist() == [""] * 5


def test_every_input_kind_gives_the_same_features(enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path) -> None:
    rgb = crops[0]
    png = tmp_path / "face.png"
    Image.fromarray(rgb).save(png)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    kinds = {
        "path str": str(png),
        "path obj": png,
        "PIL": Image.open(png),
        "numpy uint8": rgb,
        "numpy float": rgb.astype(np.float32) / 255.0,
        "torch uint8 CHW": chw,
        "torch float CHW": chw.float() / 255.0,
        "torch 1xCHW": chw[None],
        "PIL RGBA opaque": Image.fromarray(rgb).convert("RGBA"),
    }
    ref = enc.encode(rgb, detect=False).texture
    for kind, x in kinds.items():
        got = enc.encode(x, detect=False).texture
        assert torch.equal(got, ref), kind
    batch = enc.encode(torch.stack([chw, chw]), detect=False)  # a BxCxHxW tensor is a batch
    assert len(batch) == 2 and torch.equal(batch.texture[1:], ref)
    mixed = enc.encode([str(png), rgb, chw], detect=False)
    assert mixed.names == [str(png), "item 1", "item 2"]
    assert torch.equal(mixed.texture, ref.expand(3, -1))


def test_grey_input_is_converted(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    grey = crops[0][:, :, 0]
    a = enc.encode(grey, detect=False).texture
    b = enc.encode(np.repeat(grey[:, :, None], 3, axis=2), detect=False).texture
    assert torch.equal(a, b)


def test_detect_false_takes_the_centred_square(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    wide = np.concatenate([np.zeros((64, 16, 3), np.uint8), crops[1], np.zeros((64, 16, 3), np.uint8)], axis=1)
    r = enc.encode([wide, crops[1]], detect=False)
    assert r.boxes[0].tolist() == [16.0, 0.0, 80.0, 64.0]
    assert torch.equal(r.texture[0], r.texture[1])


def test_batch_keeps_good_items_in_order(enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    items = [crops[0], str(broken), crops[1], np.zeros((4, 4), dtype=bool), crops[2]]
    r = enc.encode(items, detect=False, batch_size=2)
    assert r.ok.tolist() == [True, False, True, False, True]
    assert r.errors[0] is None and str(broken) in (r.errors[1] or "") and "item 3" in (r.errors[3] or "")
    assert torch.isnan(r.texture[1]).all() and torch.isnan(r.boxes[3]).all()
    single = enc.encode([crops[0], crops[1], crops[2]], detect=False).texture
    assert torch.equal(r.texture[[0, 2, 4]], single)


def test_single_bad_input_raises_typed_errors(enc: FaceEncoder, tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="no such file"):
        enc.encode(tmp_path / "missing.jpg")
    with pytest.raises(InvalidImageError, match="dtype bool"):
        enc.encode(np.zeros((8, 8), dtype=bool), detect=False)
    with pytest.raises(InvalidImageError, match="empty list"):
        enc.encode([])
    with pytest.raises(ValueError, match="faces must be"):
        enc.encode(np.zeros((8, 8, 3), np.uint8), detect=False, faces="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(np.zeros((8, 8, 3), np.uint8), detect=False, batch_size=0)


# ---------------------------------------------------------------------------------------------- faces


def test_single_faceless_image_raises_no_face_error(enc: FaceEncoder) -> None:
    blank = np.full((160, 160, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        enc.encode(blank)
    r = enc.encode([blank])  # in a list: a marked row instead
    assert r.ok.tolist() == [False] and "no face found" in (r.errors[0] or "")


def test_faces_policy_on_two_people(enc: FaceEncoder, shared_data: Path) -> None:
    photo = shared_data / "photos" / "two_people.jpg"
    both = enc.encode(photo, faces="all")
    assert len(both) == 2 and both.ok.all() and both.source.tolist() == [0, 0]
    assert (both.scores >= enc.config.crop.threshold).all()
    areas = (both.boxes[:, 2] - both.boxes[:, 0]) * (both.boxes[:, 3] - both.boxes[:, 1])
    assert areas[0] >= areas[1]  # largest first
    largest = enc.encode(photo)
    assert len(largest) == 1 and torch.equal(largest.boxes[0], both.boxes[0])
    assert torch.equal(largest.texture[0], both.texture[0])
    blank = np.full((160, 160, 3), 128, dtype=np.uint8)
    mixed = enc.encode([photo, blank, Image.open(photo)], faces="all")
    assert mixed.source.tolist() == [0, 0, 1, 2, 2] and mixed.ok.tolist() == [True, True, False, True, True]
    assert mixed.names[:2] == [str(photo)] * 2 and mixed.names[2] == "item 1"
    # A path and a PIL image: the same faces (MTCNN batches same-size images, so boxes agree to float rounding).
    torch.testing.assert_close(mixed.boxes[3:], both.boxes, atol=1e-2, rtol=0)
    torch.testing.assert_close(mixed.texture[3:], both.texture, atol=1e-3, rtol=0)


def test_detected_path_pil_numpy_agree(enc: FaceEncoder, shared_data: Path) -> None:
    photo = shared_data / "photos" / "obama_small.jpg"
    rgb = np.array(Image.open(photo).convert("RGB"))
    ref = enc.encode(photo)
    for x in (Image.open(photo), rgb, torch.from_numpy(rgb).permute(2, 0, 1)):
        got = enc.encode(x)
        assert torch.equal(got.boxes, ref.boxes) and torch.equal(got.texture, ref.texture)


# -------------------------------------------------------------------------------------------- weights


def test_save_load_round_trip_gives_identical_outputs(enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path) -> None:
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
    assert torch.equal(enc.frontalize(crops, detect=False).tensor, back.frontalize(crops, detect=False).tensor)


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


# ---------------------------------------------------------------------------------------- disentangle


def test_sampling_from_given_noise_matches_the_generator_draw(enc: FaceEncoder) -> None:
    cond = torch.randn(3, 256)
    for num_samples in (1, 2):
        expected = enc.rdm_texture.sample(cond, steps=5, generator=torch.Generator().manual_seed(7),
                                          num_samples=num_samples)
        noise = torch.randn(num_samples * 3, 256, generator=torch.Generator().manual_seed(7))
        given = enc.rdm_texture.sample(cond, steps=5, num_samples=num_samples, noise=noise)
        torch.testing.assert_close(given, expected)
    with pytest.raises(ValueError, match="noise must have shape"):
        enc.rdm_texture.sample(cond, noise=torch.zeros(2, 256))


def test_disentangle_parts_and_feature_layout(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    d = enc.disentangle(crops, detect=False, seed=0)
    assert isinstance(d, Disentangled) and len(d) == 5
    e = enc.encode(crops, detect=False)
    assert torch.equal(d.texture, e.texture) and torch.equal(d.shape, e.shape)
    torch.testing.assert_close(d.expression_texture, d.texture - d.identity_texture)
    torch.testing.assert_close(d.expression_shape, d.shape - d.identity_shape)
    v, f = d.verification_features, d.fer_features
    assert v.shape == (5, 1024) and f.shape == (5, 1024)
    assert torch.equal(v, torch.cat([d.identity_texture, d.identity_shape, d.texture, d.shape], 1))
    assert torch.equal(f, torch.cat([d.expression_texture, d.expression_shape, d.texture, d.shape], 1))
    assert not torch.equal(d.identity_texture, d.texture)  # the RDM did something
    assert torch.isfinite(v).all()
    arrays = d.numpy()
    assert arrays["verification_features"].shape == (5, 1024) and arrays["identity_shape"].shape == (5, 256)


def test_disentangle_is_deterministic_and_batch_independent(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
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


def test_disentangle_samples_identities_of_several_batches_together(
    enc: FaceEncoder, crops: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RDMs run on groups of at least IDENTITY_ROWS crops gathered over batches, and each group's
    identities go back to their rows (bad items and batches without a face included)."""
    import latentface_sdk.encoder as encoder_module
    import latentface_sdk.operations as ops

    bad = np.zeros((2, 2, 7), np.uint8)
    items = [crops[0], bad, crops[1], crops[2], bad, bad, crops[3], crops[4], crops[0]]
    reference = enc.disentangle(items, detect=False, seed=3, batch_size=64)  # one batch, one group
    groups: list[int] = []
    real = ops.sample_identity

    def counting(*args: object, **kwargs: object) -> ops.IdentityLatents:
        batch = args[2]
        groups.append(batch.crops.shape[0])  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encoder_module, "sample_identity", counting)
    monkeypatch.setattr(encoder_module, "IDENTITY_ROWS", 3)
    grouped = enc.disentangle(items, detect=False, seed=3, batch_size=2)
    # batches of 2 items hold 1, 2, 0, 2, 1 crops: groups close once they hold 3 (1+2, 0+2+1)
    assert groups == [3, 3]
    assert grouped.ok.tolist() == reference.ok.tolist() and grouped.errors == reference.errors
    for field in ("identity_texture", "identity_shape", "expression_texture", "texture"):
        _rows_equal(getattr(grouped, field), getattr(reference, field))
    monkeypatch.setattr(encoder_module, "IDENTITY_ROWS", 0)
    groups.clear()
    per_batch = enc.disentangle(items, detect=False, seed=3, batch_size=2)
    assert groups == [1, 2, 2, 1]  # 0: every batch with a face alone
    _rows_equal(per_batch.identity_shape, reference.identity_shape)


def test_disentangle_marks_failed_rows(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    d = enc.disentangle([crops[0], np.zeros((2, 2, 7), np.uint8)], detect=False, seed=0)
    assert d.ok.tolist() == [True, False] and "7 channels" in (d.errors[1] or "")
    assert torch.isnan(d.verification_features[1]).all() and torch.isfinite(d.verification_features[0]).all()


# ------------------------------------------------------------------------------------------- renders


def test_frontalize_shapes_ranges_and_maps(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    f = enc.frontalize(crops[:3], detect=False, maps=True)
    assert isinstance(f, Frontalized) and len(f) == 3
    assert f.tensor.shape == (3, 3, 64, 64) and f.mask.shape == (3, 1, 64, 64)
    assert float(f.tensor.min()) >= 0.0 and float(f.tensor.max()) <= 1.0
    assert float(f.mask.min()) >= 0.0 and float(f.mask.max()) <= 1.0
    assert 0.4 < f.mask.mean() < 0.9  # the face, not the whole frame: the corners are background
    assert (f.mask[:, :, :4, :4] == 0).all() and (f.mask[:, :, 28:36, 28:36] == 1).all()
    assert (f.tensor * (f.mask == 0)).abs().max() == 0  # black outside the face
    assert torch.equal(f.pose, torch.zeros(3, 6))
    assert len(f.images) == 3 and all(im is not None and im.size == (64, 64) and im.mode == "RGB" for im in f.images)
    first = f.images[0]
    assert first is not None
    np.testing.assert_array_equal(np.asarray(first), f.numpy()["images"][0])
    assert f.albedo is not None and f.albedo.shape == (3, 3, 64, 64)
    assert f.depth is not None and f.depth.shape == (3, 64, 64)
    assert f.normal is not None and torch.allclose(f.normal.norm(dim=1), torch.ones(3, 64, 64), atol=1e-4)
    assert f.shading is not None and f.shading.shape == (3, 1, 64, 64)
    e = enc.encode(crops[:3], detect=False)
    assert torch.equal(f.light, e.light)  # light="same"
    plain = enc.frontalize(crops[:3], detect=False, return_tensors=True)
    assert plain.images == [] and plain.albedo is None and torch.equal(plain.tensor, f.tensor)


def test_frontalize_light_options_and_render_views(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    neutral = enc.frontalize(crops[:2], detect=False, light="neutral")
    assert torch.equal(neutral.light, torch.tensor([NEUTRAL_LIGHT] * 2))
    custom = enc.frontalize(crops[:2], detect=False, light=(1.0, 0.0, 0.0, 0.0))
    assert not torch.equal(custom.tensor, neutral.tensor)
    turned = enc.render(crops[:2], detect=False, yaw=30.0, light="neutral")
    assert torch.equal(turned.pose[:, 3], torch.tensor([30.0, 30.0]))
    assert not torch.equal(turned.mask, neutral.mask)
    same = enc.render(crops[:2], detect=False, light="neutral")
    assert torch.equal(same.tensor, neutral.tensor)  # frontalize is render at the canonical pose
    with pytest.raises(ValueError, match="light"):
        enc.frontalize(crops[0], detect=False, light="sunny")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="light"):
        enc.frontalize(crops[0], detect=False, light=(1.0, 2.0))
    with pytest.raises(ValueError, match="finite"):
        enc.render(crops[0], detect=False, yaw=float("nan"))


def test_frontalize_failed_rows(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    f = enc.frontalize([np.zeros((0, 5, 3), np.uint8), crops[0]], detect=False)
    assert f.ok.tolist() == [False, True] and f.images[0] is None and f.images[1] is not None
    assert torch.isnan(f.tensor[0]).all() and f.mask[0].sum() == 0


def test_threads_share_one_encoder(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    serial = [enc.disentangle(c, detect=False, seed=1).verification_features for c in crops]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda c: enc.disentangle(c, detect=False, seed=1).verification_features, crops))
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


# -------------------------------------------------------------------------------- eval and the default


def test_eval_feature_sets_run_on_a_real_encoder(model_dir: Path, crops: list[np.ndarray]) -> None:
    from latentface_sdk.eval.features import FeatureContext, build_extractor

    ctx = FeatureContext(model=model_dir, device="cpu", batch_size=2, seed=0)
    arr = np.stack(crops)
    for name, dim in (("latentface", 512), ("latentface-full", 522), ("latentface-verify", 1024),
                      ("latentface-fer", 1024), ("latentface-id", 512)):
        ext = build_extractor(name, ctx)
        out = ext(arr)
        assert out.shape == (5, dim) and out.dtype == np.float32 and np.isfinite(out).all(), name
        assert "tiny-test@" in ext.identity()


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
    torch.testing.assert_close(zero.disentangle(crops, detect=False, seed=9).identity_texture, a.identity_texture)
    with pytest.raises(ValueError, match="init"):
        enc.disentangle(crops[0], detect=False, init="mean")  # type: ignore[arg-type]
    cfg["rdm"]["sample_init"] = "mean"
    (zero_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="sample_init"):
        FaceEncoder.from_pretrained(zero_dir, device="cpu")


def test_results_print_short(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    e = enc.encode([crops[0], np.zeros((2, 2, 7), np.uint8)], detect=False)
    text = repr(e)
    assert text.startswith("Encoding(n=2, ok=1, texture=(2, 256)") and "first_error=" in text and "7 channels" in text
    assert len(text) < 400 and "tensor(" not in text
    d = repr(enc.disentangle(crops[:2], detect=False, seed=0))
    assert d.startswith("Disentangled(n=2, ok=2,") and "identity_texture=(2, 256)" in d and "first_error" not in d
    f = repr(enc.frontalize(crops[:1], detect=False))
    assert f.startswith("Frontalized(n=1, ok=1,") and "tensor=(1, 3, 64, 64)" in f and len(f) < 400
    m = repr(enc)  # the model itself: one line, not nn.Module's ~300-line tree
    assert m.startswith("FaceEncoder(name=") and "\n" not in m and len(m) < 300 and "parameters=" in m
