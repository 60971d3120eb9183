"""Outputs of the bundled weights on three shared photos, pinned (issue 14: refactors must not change them).

    python tests/_pinned.py --write      # after a deliberate change (new weights, a fixed bug): say why

:func:`outputs` runs ``encode``, ``disentangle`` (its default, deterministic start), ``frontalize`` (with
maps) and ``render`` at yaw 30 on the photos (``faces="all"``: four faces, one bad input row) and on the
faces' crops with ``detect=False``. ``tests/test_pinned_outputs.py`` compares them with
``tests/data/pinned_outputs.npz``, written together with the weights' checksum.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PINNED = REPO / "tests" / "data" / "pinned_outputs.npz"
PHOTOS = ("obama_small.jpg", "two_people.jpg", "biden.jpg")


def outputs(shared: Path) -> dict[str, np.ndarray]:
    """The arrays that are pinned, computed now with the bundled weights on one thread."""
    import torch
    from PIL import Image

    from latentface_sdk import FaceEncoder
    from latentface_sdk.detection import crop_face

    torch.set_num_threads(1)
    enc = FaceEncoder.from_pretrained(device="cpu", threads=1)
    inputs = [str(shared / "photos" / p) for p in PHOTOS] + [str(shared / "photos" / "no_such_photo.jpg")]
    e = enc.encode(inputs, faces="all")
    d = enc.disentangle(inputs, faces="all")
    # the paper's albedo rendering (texture="albedo"), pinned before the photo texture became the default
    f = enc.frontalize(inputs, faces="all", maps=True, return_tensors=True, texture="albedo")
    r = enc.render(inputs, faces="all", yaw=30.0, light="neutral", return_tensors=True, texture="albedo")
    assert f.albedo is not None and f.depth is not None
    out = {f"encode_{k}": v for k, v in e.numpy().items() if k not in ("names", "errors")}
    out.update({f"disentangle_{k}": d.numpy()[k] for k in ("identity_texture", "identity_shape")})
    out.update(frontal=f.tensor.numpy(), frontal_mask=f.mask.numpy(), albedo=f.albedo.numpy(),
               depth=f.depth.numpy(), render_yaw30=r.tensor.numpy())
    ok = e.ok.numpy()
    rows = [i for i in range(len(ok)) if ok[i]]
    faces = [crop_face(np.asarray(Image.open(inputs[int(e.source[i])]).convert("RGB")),
                       tuple(e.boxes[i].tolist()), enc.config.crop) for i in rows]
    out["crops_texture"] = enc.encode(faces, detect=False).texture.numpy()
    out["errors_ok"] = np.asarray([err is None for err in e.errors])
    out["checksum"] = np.asarray(enc.config.checksum or "")
    return out


def main() -> int:
    if sys.argv[1:] != ["--write"]:
        print(__doc__)
        return 2
    arrays = outputs(REPO.parent / "shared" / "data")
    PINNED.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(PINNED, **{k: v.astype(np.float16) if v.dtype == np.float32 else v
                                   for k, v in arrays.items()})
    print(f"wrote {PINNED} ({PINNED.stat().st_size} bytes, weights {arrays['checksum']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
