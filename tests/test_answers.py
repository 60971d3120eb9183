"""The answer heads (identity embedding, verify, expression probabilities) on a tiny model with random
heads: shapes, unit length, determinism, the latents-in path, bad rows, config and weights round trips,
and a clear error for weights without heads. The bundled weights' answers on real photos are in
tests/test_answers_real.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import tiny_config

from latentface_sdk import FaceEncoder
from latentface_sdk.config import CONFIG_NAME, HeadsConfig, ModelConfig
from latentface_sdk.errors import ConfigError

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _with_heads(folder: Path, source: str = "verification") -> Path:
    cfg = tiny_config("tiny-heads")
    cfg.heads = HeadsConfig(identity_dim=16, identity_input=source, identity_threshold=0.4,
                            expression_classes=CLASSES, fitted={"note": "random, for tests"})
    with torch.random.fork_rng():
        torch.manual_seed(3)
        enc = FaceEncoder.from_config(cfg)
        assert enc.heads.identity is not None and enc.heads.expression is not None
        enc.heads.identity.projection.normal_()
        enc.heads.identity.mean.normal_()
        enc.heads.identity.scale.uniform_(0.5, 2.0)
        for rdm in (enc.rdm_texture, enc.rdm_shape):
            rdm.set_latent_statistics(torch.randn(16, 256) * 0.5 + 0.1)
        return enc.save_pretrained(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _with_heads(tmp_path_factory.mktemp("heads"))


@pytest.fixture(scope="module")
def henc(model_dir: Path) -> FaceEncoder:
    return FaceEncoder.from_pretrained(model_dir, device="cpu")


def test_identity_embeddings_are_unit_rows_and_deterministic(henc: FaceEncoder,
                                                             crops: list[np.ndarray]) -> None:
    r = henc.identity_embedding(crops, detect=False)
    assert r.embeddings.shape == (len(crops), 16) and bool(r.ok.all())
    assert torch.allclose(r.embeddings.norm(dim=1), torch.ones(len(crops)), atol=1e-5)
    again = henc.identity_embedding(crops[::-1], detect=False, batch_size=2)
    # float rounding differs with the batch's make-up; embeddings are unit length, so 1e-5 is relative
    assert torch.allclose(again.embeddings.flip(0), r.embeddings, atol=1e-5)
    sim = r.similarity()
    assert sim.shape == (len(crops), len(crops))
    assert torch.allclose(sim.diagonal(), torch.ones(len(crops)), atol=1e-5)
    assert r.threshold == pytest.approx(0.4)
    assert r.numpy()["identity_embedding"].shape == (len(crops), 16)


@pytest.mark.parametrize("source", ["latents", "identity", "verification"])
def test_identity_from_latents_equals_the_image_path(tmp_path: Path, crops: list[np.ndarray],
                                                     source: str) -> None:
    enc = FaceEncoder.from_pretrained(_with_heads(tmp_path / source, source), device="cpu")
    r = enc.identity_embedding(crops, detect=False)
    e = enc.encode(crops, detect=False)
    assert torch.allclose(enc.identity_from_latents(e), r.embeddings, atol=1e-5)


def test_a_bad_row_keeps_its_place_and_gets_nan(henc: FaceEncoder, crops: list[np.ndarray]) -> None:
    items: list[object] = [crops[0], "no/such/file.jpg", crops[1]]
    r = henc.identity_embedding(items, detect=False)
    assert r.ok.tolist() == [True, False, True]
    assert torch.isnan(r.embeddings[1]).all() and not torch.isnan(r.embeddings[[0, 2]]).any()
    assert "no/such/file.jpg" in str(r.errors[1])
    lat = henc.identity_from_latents(r.encoding)
    assert torch.isnan(lat[1]).all() and torch.allclose(lat[[0, 2]], r.embeddings[[0, 2]], atol=1e-5)


def test_verify_one_pair_and_lists(henc: FaceEncoder, crops: list[np.ndarray]) -> None:
    same = henc.verify(crops[0], crops[0].copy(), detect=False)
    assert len(same) == 1 and bool(same.same_person[0]) and float(same.similarity[0]) == pytest.approx(1.0)
    assert "same_person=True" in repr(same)
    emb = henc.identity_embedding(crops[:2], detect=False).embeddings
    expected = float(emb[0] @ emb[1])
    v = henc.verify([crops[0], crops[0], "missing.png"], [crops[1], crops[0], crops[2]], detect=False)
    assert v.ok.tolist() == [True, True, False]
    assert float(v.similarity[0]) == pytest.approx(expected, abs=1e-5)
    assert bool(v.same_person[0]) == (expected >= 0.4) and bool(v.same_person[1])
    assert not bool(v.same_person[2]) and torch.isnan(v.similarity[2])
    assert v.errors[2] is not None and v.errors[2].startswith("a: ")
    strict = henc.verify(crops[0], crops[1], detect=False, threshold=1.0)
    assert not bool(strict.same_person[0]) and strict.threshold == 1.0


def test_verify_refuses_mismatched_sides(henc: FaceEncoder, crops: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="pairs"):
        henc.verify(crops[:2], crops[:3], detect=False)
    with pytest.raises(ValueError, match="one image on each side"):
        henc.verify(crops[0], crops[:2], detect=False)
    with pytest.raises(ValueError, match="threshold"):
        henc.verify(crops[0], crops[1], detect=False, threshold=2.0)


def test_expressions_are_probabilities_with_the_top_label(henc: FaceEncoder, crops: list[np.ndarray]) -> None:
    r = henc.expressions([*crops[:3], b"not an image"], detect=False)
    assert r.classes == CLASSES and r.probabilities.shape == (4, 7)
    ok = r.probabilities[:3]
    assert torch.allclose(ok.sum(1), torch.ones(3), atol=1e-5) and bool((ok >= 0).all())
    assert r.labels[:3] == [CLASSES[int(i)] for i in ok.argmax(1)] and r.labels[3] is None
    assert torch.isnan(r.probabilities[3]).all()
    top = r.top(2)
    assert [name for name, _ in top[0]][0] == r.labels[0] and len(top[0]) == 2 and top[3] == []
    arrays = r.numpy()
    assert arrays["expression"].tolist()[:3] == r.labels[:3] and arrays["expression"][3] == ""
    assert arrays["expression_classes"].tolist() == list(CLASSES)


def test_the_expression_head_reads_expression_features(henc: FaceEncoder, crops: list[np.ndarray]) -> None:
    feats = henc.expression_features(crops[:2], detect=False).features
    assert henc.heads.expression is not None
    want = torch.softmax(henc.heads.expression(feats), dim=1)
    got = henc.expressions(crops[:2], detect=False).probabilities
    assert torch.allclose(got, want, atol=1e-5)


def test_a_grey_trained_head_reads_colour_crops_grey(tmp_path: Path, crops: list[np.ndarray]) -> None:
    folder = _with_heads(tmp_path / "grey")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg["heads"]["expression_grey"] = True
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    enc = FaceEncoder.from_pretrained(folder, device="cpu")
    luma = [(c.astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8) for c in crops[:2]]
    grey = [np.repeat(g[..., None], 3, -1) for g in luma]
    a = enc.expressions(crops[:2], detect=False).probabilities
    b = enc.expressions(grey, detect=False).probabilities
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)  # probabilities; the grey copies are rounded to uint8
    colour = FaceEncoder.from_pretrained(_with_heads(tmp_path / "colour"), device="cpu")
    assert not torch.allclose(colour.expressions(crops[:2], detect=False).probabilities, a, atol=1e-4)


def test_weights_without_heads_say_so(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    assert enc.heads.empty
    with pytest.raises(ConfigError, match="no identity head"):
        enc.identity_embedding(crops[:1], detect=False)
    with pytest.raises(ConfigError, match="no expression head"):
        enc.expressions(crops[:1], detect=False)


def test_heads_round_trip_through_config_and_weights(model_dir: Path, henc: FaceEncoder,
                                                     tmp_path: Path) -> None:
    data = json.loads((model_dir / CONFIG_NAME).read_text())
    assert data["version"] == 3 and data["heads"]["identity_dim"] == 16
    assert data["heads"]["expression_classes"] == list(CLASSES)
    assert ModelConfig.from_dict(data).heads == henc.config.heads
    out = henc.save_pretrained(tmp_path / "again")
    back = FaceEncoder.from_pretrained(out, device="cpu")
    assert back.heads.identity is not None and henc.heads.identity is not None
    assert torch.equal(back.heads.identity.projection, henc.heads.identity.projection)


@pytest.mark.parametrize(("field", "value", "why"), [
    ("identity_input", "pixels", "identity_input must be one of"),
    ("identity_threshold", 1.5, "a cosine in"),
    ("identity_dim", -1, ">= 0"),
    ("expression_classes", ["happy", "happy"], "repeats a name"),
    ("expression_classes", [1, 2], "list of strings"),
])
def test_bad_heads_configs_are_refused(field: str, value: object, why: str) -> None:
    data = tiny_config().to_dict()
    data["heads"][field] = value
    with pytest.raises(ConfigError, match=why):
        ModelConfig.from_dict(data)


def test_a_version_2_config_without_heads_loads_without_heads() -> None:
    data = tiny_config().to_dict()
    data["version"] = 2
    del data["heads"]
    cfg = ModelConfig.from_dict(data)
    assert cfg.heads == HeadsConfig() and cfg.version == 3


@pytest.mark.slow
def test_the_onnx_export_gives_the_same_answers(model_dir: Path, henc: FaceEncoder, crops: list[np.ndarray],
                                                tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from latentface_sdk import OnnxFaceEncoder
    from latentface_sdk.deploy.export import export_onnx

    out = export_onnx(henc, tmp_path / "onnx")
    assert {"identity", "expression"} <= set(out.config["graphs"])
    assert out.config["heads"]["expression_classes"] == list(CLASSES)
    onnx_enc = OnnxFaceEncoder(out.folder, threads=1)
    assert onnx_enc.identity_threshold == pytest.approx(henc.identity_threshold)
    want, got = henc.identity_embedding(crops, detect=False), onnx_enc.identity_embedding(crops, detect=False)
    # unit vectors: an absolute tolerance is a relative one here
    torch.testing.assert_close(got.embeddings, want.embeddings, atol=1e-4, rtol=0)
    torch.testing.assert_close(onnx_enc.identity_from_latents(want.encoding), want.embeddings, atol=1e-4,
                               rtol=0)
    pe, po = henc.expressions(crops, detect=False), onnx_enc.expressions(crops, detect=False)
    torch.testing.assert_close(po.probabilities, pe.probabilities, atol=1e-4, rtol=0)
    assert po.labels == pe.labels and po.classes == CLASSES
    v = onnx_enc.verify(crops[0], crops[0].copy(), detect=False)
    assert bool(v.same_person[0])


def test_an_onnx_export_without_heads_says_so(tiny_onnx: tuple[Path, Path], crops: list[np.ndarray]) -> None:
    from latentface_sdk import OnnxFaceEncoder

    onnx_enc = OnnxFaceEncoder(tiny_onnx[1], threads=1)
    with pytest.raises(ConfigError, match="no identity graph"):
        onnx_enc.identity_embedding(crops[:1], detect=False)
    with pytest.raises(ConfigError, match="no expression graph"):
        onnx_enc.expressions(crops[:1], detect=False)
