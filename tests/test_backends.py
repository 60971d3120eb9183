"""One facade, two backends: the same calls through FaceEncoder (PyTorch) and OnnxFaceEncoder (ONNX Runtime)
on the same images give the same results up to float rounding, run the same code (FaceFacade's), and what
the ONNX side cannot do is refused with a typed error before any image is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale, scale_of
from test_answers import CLASSES, _with_heads

from latentface_sdk import FaceEncoder, LatentFaceError, OnnxFaceEncoder
from latentface_sdk.backends import TorchBackend, UnsupportedOperationError
from latentface_sdk.deploy.runtime import OnnxBackend
from latentface_sdk.errors import ConfigError
from latentface_sdk.facade import FaceFacade

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("biden.jpg", "obama2.jpg")  # of ../shared/data/photos


@pytest.fixture(scope="module")
def pair(tiny_onnx: tuple[Path, Path]) -> tuple[FaceEncoder, OnnxFaceEncoder]:
    """The tiny random model (no answer heads) of ``conftest.tiny_onnx`` on both backends."""
    return (FaceEncoder.from_pretrained(tiny_onnx[0], device="cpu"),
            OnnxFaceEncoder(tiny_onnx[1], threads=1))


@pytest.fixture(scope="module")
def heads_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[FaceEncoder, OnnxFaceEncoder]:
    """A tiny model with both answer heads, and its ONNX export (about a minute to export on 2 cores)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from latentface_sdk.deploy.export import export_onnx

    folder = _with_heads(tmp_path_factory.mktemp("heads"))
    torch_enc = FaceEncoder.from_pretrained(folder, device="cpu")
    out = export_onnx(torch_enc, tmp_path_factory.mktemp("onnx") / "export")
    return torch_enc, OnnxFaceEncoder(out.folder, threads=1)


def test_both_are_the_one_facade(pair: tuple[FaceEncoder, OnnxFaceEncoder]) -> None:
    torch_enc, onnx_enc = pair
    assert isinstance(torch_enc.backend, TorchBackend) and isinstance(onnx_enc.backend, OnnxBackend)
    for name in ("encode", "disentangle", "identity_embedding", "identity_from_latents", "verify",
                 "expressions", "encode_video", "render_from_latents"):
        assert getattr(FaceEncoder, name) is getattr(FaceFacade, name) is getattr(OnnxFaceEncoder, name), name


def test_encode_and_disentangle_give_the_same_results(pair: tuple[FaceEncoder, OnnxFaceEncoder],
                                                      crops: list[np.ndarray]) -> None:
    torch_enc, onnx_enc = pair
    items: list[object] = [crops[0], "no/such/file.jpg", *crops[1:]]  # a bad row keeps its place in both
    a, b = torch_enc.encode(items, detect=False), onnx_enc.encode(items, detect=False, batch_size=2)
    assert a.ok.tolist() == b.ok.tolist() == [True, False, True, True, True, True] and a.errors == b.errors
    for name in ("texture", "shape", "pose", "light", "boxes"):
        assert_close_to_scale(getattr(b, name), getattr(a, name), msg=f"encode {name}")

    kw = {"seed": 3, "init": "noise", "num_samples": 2, "detect": False}
    da, db = torch_enc.disentangle(items, **kw), onnx_enc.disentangle(items, **kw)  # type: ignore[arg-type]
    for name in ("identity_texture", "identity_shape", "expression_texture", "expression_shape"):
        latent = getattr(da.encoding, name.split("_")[1])  # expression = latent - identity: its rounding
        assert_close_to_scale(getattr(db, name), getattr(da, name), scale=scale_of(latent), msg=name)


@pytest.mark.slow
def test_the_same_answers(heads_pair: tuple[FaceEncoder, OnnxFaceEncoder], crops: list[np.ndarray]) -> None:
    """identity_embedding, identity_from_latents, verify and expressions through the exported heads."""
    torch_enc, onnx_enc = heads_pair
    items: list[object] = [crops[0], "no/such/file.jpg", *crops[1:]]
    a = torch_enc.encode(items, detect=False)
    ia = torch_enc.identity_embedding(items, detect=False)
    ib = onnx_enc.identity_embedding(items, detect=False)
    assert ia.ok.tolist() == ib.ok.tolist()
    assert_close_to_scale(ib.embeddings, ia.embeddings, rel=1e-4, msg="identity_embedding")  # unit rows
    assert_close_to_scale(onnx_enc.identity_from_latents(a), torch_enc.identity_from_latents(a), rel=1e-4)
    assert_close_to_scale(torch_enc.identity_from_latents(a), ia.embeddings, rel=1e-4)

    va = torch_enc.verify(crops[:2], [crops[0], crops[2]], detect=False)
    vb = onnx_enc.verify(crops[:2], [crops[0], crops[2]], detect=False)
    assert_close_to_scale(vb.similarity, va.similarity, rel=1e-4, msg="verify")
    assert vb.same_person.tolist() == va.same_person.tolist() and bool(va.same_person[0])

    ea, eb = torch_enc.expressions(items, detect=False), onnx_enc.expressions(items, detect=False)
    assert eb.classes == ea.classes == CLASSES
    assert_close_to_scale(eb.probabilities, ea.probabilities, rel=1e-4, msg="expressions")
    assert eb.labels == ea.labels and eb.labels[1] is None
    assert onnx_enc.identity_threshold == pytest.approx(torch_enc.identity_threshold)


def test_faces_found_in_photos_are_the_same(pair: tuple[FaceEncoder, OnnxFaceEncoder],
                                            shared_data: Path) -> None:
    """detect=True: the one pipeline (MTCNN, the crop policy) in front of either backend."""
    torch_enc, onnx_enc = pair
    photos = [str(shared_data / "photos" / n) for n in PHOTOS]
    a, b = torch_enc.encode(photos, faces="all"), onnx_enc.encode(photos, faces="all")
    assert a.ok.all() and a.names == b.names
    torch.testing.assert_close(b.boxes, a.boxes)
    assert_close_to_scale(b.texture, a.texture, msg="texture")


def test_what_onnx_cannot_do_is_refused_with_a_typed_error(pair: tuple[FaceEncoder, OnnxFaceEncoder],
                                                          crops: list[np.ndarray]) -> None:
    torch_enc, onnx_enc = pair
    missing = "no/such/file.jpg"  # refused before any image is read: no InvalidImageError
    enc = torch_enc.encode(crops[:2], detect=False)
    calls = {
        "render": lambda: onnx_enc.render(missing, yaw=20.0),
        "frontalize": lambda: onnx_enc.frontalize(missing),
        "mesh": lambda: onnx_enc.mesh(missing),
        "expression_features": lambda: onnx_enc.expression_features(missing),
        "render_from_latents": lambda: onnx_enc.render_from_latents(enc),
        "mesh_from_latents": lambda: onnx_enc.mesh_from_latents(enc),
    }
    for name, call in calls.items():
        with pytest.raises(UnsupportedOperationError, match="FaceEncoder") as info:
            call()
        assert isinstance(info.value, LatentFaceError) and isinstance(info.value, NotImplementedError), name
    with pytest.raises(UnsupportedOperationError, match="unrolled"):
        onnx_enc.disentangle(missing, steps=onnx_enc.sample_steps + 1)
    ok = onnx_enc.disentangle(crops[0], steps=onnx_enc.sample_steps, detect=False, seed=0)
    assert bool(ok.ok.all())


def test_an_export_without_heads_names_the_missing_graph(pair: tuple[FaceEncoder, OnnxFaceEncoder],
                                                         crops: list[np.ndarray]) -> None:
    onnx_enc = pair[1]
    assert not onnx_enc.backend.has("identity") and onnx_enc.identity_dim == 0
    for call in (lambda: onnx_enc.verify(crops[0], crops[1], detect=False),
                 lambda: onnx_enc.identity_from_latents(onnx_enc.encode(crops[:1], detect=False))):
        with pytest.raises(ConfigError, match="no identity graph"):
            call()
