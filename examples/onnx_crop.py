"""LatentFace on a face crop with onnxruntime, numpy and pillow only: no PyTorch, no latentface-sdk import.

Export the model once (on a machine with the SDK), then ship the folder with your app::

    latentface export-onnx --out latentface-onnx/
    python examples/onnx_crop.py --onnx latentface-onnx/ face1.jpg face2.jpg

Each image should be a face crop (a photo cut around one face, roughly centred, as the SDK's MTCNN crop
does): the centred square is resized to the export's crop size, as ``FaceEncoder.encode(..., detect=False)``
does. The script prints each face's pose and light, its expression (when the export has the expression
head: the top class and its probability) and, for two or more images, the cosine similarity of their
identity embeddings (``identity.onnx``, made for cosine; ``*`` marks pairs at or above the model's
same-person threshold). An export of weights without heads falls back to the cosine of ``Z_id``, which
tells people apart far less well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def load_crop(path: str, size: int) -> np.ndarray:
    """The centred square of an image, resized to ``size`` px: uint8 ``(size, size, 3)`` RGB."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True, help="a folder written by `latentface export-onnx`")
    parser.add_argument("images", nargs="+", help="face crops (any image files)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    args = parser.parse_args(argv)

    folder = Path(args.onnx)
    card = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    size, dim = card["crop"]["size"], card["latent_dim"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    encoder = ort.InferenceSession(str(folder / card["graphs"]["encoder"]["file"]), opts,
                                   providers=["CPUExecutionProvider"])
    disentangle = ort.InferenceSession(str(folder / card["graphs"]["disentangle"]["file"]), opts,
                                       providers=["CPUExecutionProvider"])

    crops = np.stack([load_crop(p, size) for p in args.images])
    texture, shape, pose, light = encoder.run(None, {"crops": crops})
    # The model's default start for the RDMs: z_T = 0 ("zero"), or standard normal noise ("noise").
    rng = np.random.default_rng(0)
    if card["rdm"]["sample_init"] == "zero":
        noise_t = noise_s = np.zeros((len(crops), dim), dtype=np.float32)
    else:
        noise_t, noise_s = (rng.standard_normal((len(crops), dim), dtype=np.float32) for _ in range(2))
    id_t, id_s, exp_t, exp_s = disentangle.run(
        None, {"texture": texture, "shape": shape, "noise_texture": noise_t, "noise_shape": noise_s})

    graphs, heads = card["graphs"], card.get("heads", {})
    labels = [""] * len(crops)
    if "expression" in graphs:
        expression = ort.InferenceSession(str(folder / graphs["expression"]["file"]), opts,
                                          providers=["CPUExecutionProvider"])
        probs = expression.run(None, {"crops": crops})[0]
        classes = heads["expression_classes"]
        labels = [f"; looks {classes[int(p.argmax())]} ({p.max():.0%})" for p in probs]
    for i, name in enumerate(args.images):
        yaw, pitch, roll = pose[i, 3:]
        print(f"{name}: yaw {yaw:+.1f} pitch {pitch:+.1f} roll {roll:+.1f} deg; light ambient "
              f"{light[i, 0]:.2f} diffuse {light[i, 1]:.2f}; expression |Δexp| "
              f"{np.linalg.norm(exp_t[i]):.2f}{labels[i]}")
    if len(crops) > 1:
        if "identity" in graphs:
            session = ort.InferenceSession(str(folder / graphs["identity"]["file"]), opts,
                                           providers=["CPUExecutionProvider"])
            ident = session.run(None, {"texture": texture, "shape": shape})[0]  # unit rows already
            threshold = float(heads["identity_threshold"])
            what = f"identity embedding cosine similarity (* = same person, threshold {threshold:.3f})"
        else:
            ident = np.concatenate([id_t, id_s], axis=1)
            ident /= np.linalg.norm(ident, axis=1, keepdims=True)
            threshold, what = 2.0, "identity cosine similarity (Z_id; this export has no identity head)"
        sim = ident @ ident.T
        print(what + ":")
        for i, name in enumerate(args.images):
            cells = " ".join(f"{v:+.3f}{'*' if v >= threshold and i != j else ' '}"
                             for j, v in enumerate(sim[i]))
            print(f"  {cells}  {Path(name).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
