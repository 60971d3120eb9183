"""latentface_sdk.deploy.export and .graphs: the ONNX graphs compute what the PyTorch model computes."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale, scale_of

from latentface_sdk import FaceEncoder
from latentface_sdk.deploy.export import FORMAT, export_onnx, read_card
from latentface_sdk.deploy.graphs import UnrolledDDIM, ddim_coefficients
from latentface_sdk.errors import OnnxFormatError

ort = pytest.importorskip("onnxruntime", reason="needs the [onnx] extra (pip install 'latentface-sdk[onnx]')")
onnx = pytest.importorskip("onnx")


def _plain(model_dir: Path) -> FaceEncoder:
    return FaceEncoder.from_pretrained(model_dir, device="cpu").use_channels_last(False)


def test_card_describes_the_graphs(tiny_onnx: tuple[Path, Path]) -> None:
    model_dir, out = tiny_onnx
    card = read_card(out)
    assert card["format"] == FORMAT and card["opset"] == 18
    assert card["model"]["checksum"] == json.loads((model_dir / "config.json").read_text())["checksum"]
    enc_graph = card["graphs"]["encoder"]
    assert [t["name"] for t in enc_graph["inputs"]] == ["crops"]
    assert (enc_graph["inputs"][0]["shape"] == ["batch", 64, 64, 3]
            and enc_graph["inputs"][0]["dtype"] == "uint8")
    assert [t["name"] for t in enc_graph["outputs"]] == ["texture", "shape", "pose", "light"]
    for key in ("encoder", "disentangle"):
        graph = onnx.load(str(out / card["graphs"][key]["file"]))
        onnx.checker.check_model(graph)
        names = [i.name for i in graph.graph.input]
        assert names == [t["name"] for t in card["graphs"][key]["inputs"]]
        # the batch dimension is symbolic
        assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert "preprocessing" in card and "README.md" in {p.name for p in out.iterdir()}


def test_encoder_graph_matches_pytorch_for_any_batch(tiny_onnx: tuple[Path, Path]) -> None:
    model_dir, out = tiny_onnx
    enc = _plain(model_dir)
    sess = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (1, 7):
        crops = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        got = sess.run(None, {"crops": crops})
        with torch.no_grad():
            ref = enc.autoencoder.encode(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0)
        for g, r in zip(got, (ref.texture, ref.shape, ref.pose, ref.light), strict=True):
            assert g.shape == tuple(r.shape)
            assert_close_to_scale(g, r.numpy())  # float32 rounding of two runtimes: tests/_close.py


def test_disentangle_graph_matches_ddim_sampling(tiny_onnx: tuple[Path, Path]) -> None:
    model_dir, out = tiny_onnx
    enc = _plain(model_dir)
    sess = ort.InferenceSession(str(out / "disentangle.onnx"), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    z_t, z_s, n_t, n_s = (torch.randn(5, 256, generator=g) for _ in range(4))
    got = sess.run(None, {"texture": z_t.numpy(), "shape": z_s.numpy(), "noise_texture": n_t.numpy(),
                          "noise_shape": n_s.numpy()})
    id_t = enc.rdm_texture.sample(z_t, noise=n_t)
    id_s = enc.rdm_shape.sample(z_s, noise=n_s)
    assert float((id_t - z_t).abs().max()) > 0.1  # the RDM does change the latent
    for g_, r in zip(got, (id_t, id_s, z_t - id_t, z_s - id_s), strict=True):
        assert_close_to_scale(g_, r.numpy(), scale=scale_of(torch.cat([z_t, z_s])))  # z - id: z's rounding


def test_unrolled_ddim_coefficients_come_from_the_scheduler(tiny_onnx: tuple[Path, Path]) -> None:
    enc = _plain(tiny_onnx[0])
    coeffs = ddim_coefficients(enc.rdm_texture, 5)
    assert [t for t, _, _ in coeffs] == [999, 799, 599, 399, 199]
    assert coeffs[-1][1:] == pytest.approx((1.0, 0.0))  # the last step lands on the predicted sample
    for steps in (1, 3):
        u = UnrolledDDIM(enc.rdm_shape, steps)
        z, n = torch.randn(3, 256), torch.randn(3, 256)
        with torch.no_grad():
            torch.testing.assert_close(u(z, n), enc.rdm_shape.sample(z, steps=steps, noise=n), atol=1e-5,
                                       rtol=0)


def test_export_refuses_to_overwrite_what_is_not_an_export(tiny_onnx: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    model_dir, _ = tiny_onnx
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        export_onnx(str(model_dir), tmp_path)
    with pytest.raises(FileExistsError, match="not an ONNX export"):
        export_onnx(str(model_dir), tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="opset"):
        export_onnx(str(model_dir), tmp_path / "x", opset=9)
    with pytest.raises(ValueError, match="steps"):
        export_onnx(str(model_dir), tmp_path / "x", steps=0)
    assert not (tmp_path / "x").exists()


def test_export_folder_has_the_mode_of_any_folder_the_user_makes(tiny_onnx: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    """Not owner-only (0700, what a temporary folder gets): the umask decides, as for ``mkdir`` (0755 under
    umask 022)."""
    _, out = tiny_onnx
    made = tmp_path / "made"
    made.mkdir()
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(made.stat().st_mode) == 0o777 & ~umask
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".onnx-export-")]  # no leftovers


def test_read_card_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(OnnxFormatError, match="no readable"):
        read_card(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OnnxFormatError, match="not valid JSON"):
        read_card(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"version": 3, "name": "a torch model"}))
    with pytest.raises(OnnxFormatError, match="not an ONNX export"):
        read_card(tmp_path)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tiny_onnx: tuple[Path, Path],
                                tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(ImportError, match=r"latentface-sdk\[onnx\]"):
        export_onnx(str(tiny_onnx[0]), tmp_path / "out")
