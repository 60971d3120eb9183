"""Inference with the core dependencies only: PyTorch3D is the extra ``[pytorch3d]``, and neither
torchvision nor facenet-pytorch is needed (the SDK carries MTCNN, :mod:`latentface_sdk.mtcnn`). Face
detection, encode, disentangle, expression features, frontalize, render, mesh and the ``latentface``
command run in a process where importing any of the three fails, give the outputs they give beside them,
and the paths that do need PyTorch3D raise an error that names the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent

#: Packages that are not core dependencies (PyTorch3D) or no longer dependencies at all.
BLOCKED = ("pytorch3d", "torchvision", "facenet_pytorch")

#: Run first in the child: the BLOCKED packages cannot be imported and importlib.util.find_spec finds none
#: of them, as where they are not installed (a None in sys.modules does both).
BLOCK = textwrap.dedent("""
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[name]
    for name in BLOCKED:
        sys.modules[name] = None
""")

#: What the child runs on the tiny model: every inference operation, then the paths that need PyTorch3D.
CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import numpy as np
    import torch

    sys.path.insert(0, TESTS)
    from _tiny_model import save_tiny_model, synthetic_crops

    from latentface_sdk import FaceEncoder, cli
    from latentface_sdk.render.rasterize import has_pytorch3d, pytorch3d_problem
    from latentface_sdk.render.renderer import FaceRenderer
    from latentface_sdk.train.stage1 import renderer_backend

    torch.set_num_threads(1)
    out = Path(OUT)
    enc = FaceEncoder.from_pretrained(save_tiny_model(out / "model"), device="cpu")
    arrays = run_operations(enc, synthetic_crops(3), out, PHOTO)
    np.savez(out / "child.npz", **arrays)
    assert cli.main(["mesh", str(out / "crop.png"), "-o", str(out / "cli.obj"), "--no-detect",
                     "--model", str(out / "model"), "--no-progress"]) == 0
    errors = {}
    for name, call in [
        ("renderer", lambda: FaceRenderer(backend="pytorch3d").render(
            torch.rand(1, 3, 64, 64), torch.ones(1, 64, 64), torch.zeros(1, 6))),
        ("training", lambda: renderer_backend("pytorch3d", torch.device("cpu"))),
    ]:
        try:
            call()
            errors[name] = None
        except ImportError as exc:
            errors[name] = str(exc)
    print(json.dumps({"has_pytorch3d": has_pytorch3d(), "problem": pytorch3d_problem(), "errors": errors,
                      "imported": sorted(m for m, mod in sys.modules.items()
                                        if mod is not None and m.split(".")[0] in BLOCKED)}))
""")


def run_operations(enc, crops, out, photo=None):  # type: ignore[no-untyped-def]
    """Every inference operation on ``crops`` (detect=False) and face detection on ``photo`` (a path, if
    given); the arrays to compare, and the meshes and one crop written under ``out``. The same source
    runs in the test process and in the child."""
    from PIL import Image

    Image.fromarray(crops[0]).save(out / "crop.png")
    found = {}
    if photo is not None:
        e = enc.encode(photo, faces="all")
        found = {"boxes": e.boxes.numpy(), "scores": e.scores.numpy(), "photo_texture": e.texture.numpy()}
    r = enc.encode(crops, detect=False)
    d = enc.disentangle(crops, detect=False, seed=0)
    x = enc.expression_features(crops, detect=False)
    f = enc.frontalize(crops, detect=False)
    v = enc.render(crops, detect=False, yaw=30.0)
    m = enc.mesh(crops[0], detect=False).meshes[0]
    m.save(out / "face.obj")
    m.save(out / "face.ply")
    return {"texture": r.texture.numpy(), "shape": r.shape.numpy(), "pose": r.pose.numpy(),
            "light": r.light.numpy(), "identity": d.identity_texture.numpy(),
            "expression": x.features.numpy(), "frontal": f.tensor.numpy(), "frontal_mask": f.mask.numpy(),
            "yaw30": v.tensor.numpy(), "vertices": m.vertices, "faces": m.faces, **found}


@pytest.mark.slow
def test_inference_runs_on_the_core_dependencies_and_gives_the_same_outputs(tmp_path: Path) -> None:
    import inspect

    from _tiny_model import save_tiny_model, synthetic_crops
    from conftest import SHARED_DATA

    from latentface_sdk import FaceEncoder

    photo = SHARED_DATA / "photos" / "two_people.jpg"  # detection too, where the shared data is
    photo_arg = str(photo) if photo.is_file() else None
    child_dir, here_dir = tmp_path / "child", tmp_path / "here"
    child_dir.mkdir()
    here_dir.mkdir()
    code = (f"BLOCKED = {BLOCKED!r}\n" + BLOCK
            + f"TESTS, OUT, PHOTO = {str(HERE)!r}, {str(child_dir)!r}, {photo_arg!r}\n"
            + inspect.getsource(run_operations) + CHILD)
    import latentface_sdk

    package_root = str(Path(latentface_sdk.__file__).resolve().parents[1])  # the child imports this one too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                                      os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["imported"] == [] and not report["has_pytorch3d"]
    assert report["problem"] == "PyTorch3D is not installed"
    for name, message in report["errors"].items():  # the paths that need it say how to get it
        assert message is not None and "latentface-sdk[pytorch3d]" in message, (name, message)
        assert "pip install -e '.[pytorch3d]'" in message, (name, message)

    # The same operations here, where PyTorch3D may be installed: the same numbers and the same files.
    torch.set_num_threads(1)
    enc = FaceEncoder.from_pretrained(save_tiny_model(here_dir / "model"), device="cpu")
    here = run_operations(enc, synthetic_crops(3), here_dir, photo_arg)
    if photo_arg is not None:
        assert len(here["boxes"]) == 2  # both faces of the photo
    child = np.load(child_dir / "child.npz")
    assert sorted(child.files) == sorted(here)
    for key, value in here.items():
        np.testing.assert_array_equal(child[key], value, err_msg=key)
    for name in ("face.obj", "face.mtl", "face.png", "face.ply"):
        assert (child_dir / name).read_bytes() == (here_dir / name).read_bytes(), name
    assert (child_dir / "cli.obj").is_file() and (child_dir / "cli.png").is_file()


def test_cuda_renders_with_pytorch3d_only_where_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """FaceEncoder.render_backend: PyTorch3D's rasteriser on CUDA when it loads, else the project's own."""
    from types import SimpleNamespace

    from latentface_sdk import FaceEncoder
    from latentface_sdk.render.rasterize import has_pytorch3d

    backend = FaceEncoder.render_backend.fget  # type: ignore[attr-defined]
    cuda, cpu = SimpleNamespace(device=torch.device("cuda")), SimpleNamespace(device=torch.device("cpu"))
    assert backend(cpu) == "fast"
    assert backend(cuda) == ("pytorch3d" if has_pytorch3d() else "fast")
    monkeypatch.setitem(sys.modules, "pytorch3d", None)  # "import pytorch3d" now fails
    assert not has_pytorch3d() and backend(cuda) == "fast" and backend(cpu) == "fast"


def test_vgg16_features_are_torchvisions_without_torchvision() -> None:
    """The recipe option feature_net 'vgg16' builds VGG16's layers itself: torchvision's state dict loads
    into them and they compute what torchvision's do."""
    vgg = pytest.importorskip("torchvision.models.vgg")
    from latentface_sdk.train.perceptual import vgg16_layers

    theirs = vgg.make_layers(vgg.cfgs["D"])  # what vgg16() puts in .features, without the classifier
    ours = vgg16_layers()
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(ours[:16](x), theirs[:16](x))
