"""Why some photo-textured frontal views look distorted (issue 38), and two levers that do not explain it.

``examples/frontal_photo.py --out docs/images`` draws 24 held-out faces beside their frontal views. Read by
eye, the photo texture of 7 of them shows doubled or sheared features (:data:`DISTORTED`: the turned
UTKFace faces at |yaw| 17-34 degrees whose crops extend past the photo's edge, and CelebA 000036 at yaw
+38). Two causes were proposed and are measured here on the same 24 faces:

1. **The pose**: if the predicted pose put the canonical face at the wrong place in the photo, refining it
   from MTCNN's five landmarks would help. Measured: the reprojection error (64 px crop) of the model's
   canonical keypoints (``config.json`` ``metadata.stage1.canonical_keypoints``, at the decoded depth)
   under the predicted pose, against the detected landmarks.
2. **The symmetry**: if the canonical face's mirror axis missed the person's, the mirrored fill would
   double features, and the two sides would disagree where the photo sees both. Measured: the mean
   difference between the de-shaded photo colours (and their high-pass structure) at mirrored canonical
   pixels both seen, relative to the structure's own size.

Neither separates the distorted faces from the others (see the printed means), so neither refinement was
built: the distortion follows the turn and the crop's missing pixels, where the model's 64x64 depth of
the hidden side is the limit.

Usage::

    python experiments/frontal_photo_levers.py --json experiments/results/frontal_photo_levers.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import frontal_photo as pictures  # noqa: E402
from _options import held_out_faces  # noqa: E402

from latentface_sdk import FaceEncoder  # noqa: E402
from latentface_sdk.detection import crop_face, landmarks_in_crop, select_faces  # noqa: E402
from latentface_sdk.images import to_rgb  # noqa: E402
from latentface_sdk.render import geometry as geo  # noqa: E402
from latentface_sdk.render import photo_texture as pt  # noqa: E402
from latentface_sdk.train.data import shared_source  # noqa: E402
from latentface_sdk.train.losses import depth_at  # noqa: E402

#: The pictured faces (their order in docs/images/frontal_photo.png) whose photo texture was judged
#: distorted by eye.
DISTORTED = (4, 6, 8, 11, 12, 15, 20)


def pictured(enc: FaceEncoder, data: Path) -> list[str]:
    """The 24 faces of ``examples/frontal_photo.py``, chosen the same way."""
    utk = shared_source(data, "utkface-heldout")
    found = enc.encode(utk, batch_size=32)
    yaw = np.where(found.ok.numpy(), found.yaw.numpy(), np.nan)
    return ([utk[i] for i in pictures.choose_utk(utk, yaw, 16, 6)]
            + [str(p) for p in held_out_faces(data / "celeba10k", 8)])


def measure(enc: FaceEncoder, paths: list[str]) -> list[dict[str, Any]]:
    """Per face: its caption, the keypoints' reprojection error and the two sides' disagreement."""
    e = enc.encode(paths)
    stage1 = enc.config.metadata.get("stage1", {}) if isinstance(enc.config.metadata, dict) else {}
    keypoints = torch.tensor(stage1["canonical_keypoints"], dtype=torch.float32)
    r = enc.renderer
    rgbs = [to_rgb(p) for p in paths]
    crops = torch.from_numpy(np.stack([crop_face(rgb, tuple(e.boxes[i].tolist()), enc.config.crop)
                                       for i, rgb in enumerate(rgbs)])).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        maps = enc.autoencoder.decode(e.texture, e.shape)
        z = depth_at(maps.depth, keypoints)
        points = torch.cat([keypoints[None] * z[..., None] / r.focal, z[..., None]], dim=-1)
        projected = geo.project(geo.apply_pose(points, e.pose, r.centre_depth), r.focal)
        shading = r.shade(maps.albedo, maps.depth, e.light).shading
        vis = pt.photo_visibility(maps.depth, e.pose, focal=r.focal, centre_depth=r.centre_depth,
                                  fov_deg=r.fov_deg)
        uv, _ = pt.photo_coordinates(maps.depth, e.pose, focal=r.focal, centre_depth=r.centre_depth)
        colours = pt.sample_photo(crops, uv) / shading.clamp(min=0.05)
        both = vis * vis.flip(-1) * geo.face_region(maps.depth.shape[-1])
        grey = colours.mean(1, keepdim=True)
        blur = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(grey, (3, 3, 3, 3), mode="replicate"),
                                              7, stride=1)
        structure = grey - blur
        area = both.sum((1, 2, 3)).clamp(min=1.0)
        asym = ((structure - structure.flip(-1)).abs() * both).sum((1, 2, 3)) / area
        size = (structure.abs() * both).sum((1, 2, 3)) / area
        colour = ((colours - colours.flip(-1)).abs().mean(1, keepdim=True) * both).sum((1, 2, 3)) / area
    rows = []
    for i, (path, rgb) in enumerate(zip(paths, rgbs, strict=True)):
        face = select_faces(enc.detector.detect(rgb), "largest")[0]
        assert face.landmarks is not None
        marks = landmarks_in_crop(face.landmarks, face.box, enc.config.crop.margin)
        err = np.linalg.norm(projected[i].numpy() - marks, axis=1) * enc.config.crop.size / 2
        rows.append({"face": pictures.caption(path, float(e.yaw[i])), "distorted": i in DISTORTED,
                     "yaw": float(e.yaw[i]), "keypoint_error_px": float(err.mean()),
                     "both_sides_seen": float(both[i].mean()),
                     "structure_asymmetry": float(asym[i] / size[i]), "colour_asymmetry": float(colour[i])})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"faces": len(rows), "distorted_faces": sum(r["distorted"] for r in rows)}
    for key in ("keypoint_error_px", "structure_asymmetry", "colour_asymmetry", "yaw"):
        bad = [abs(r[key]) for r in rows if r["distorted"]]
        good = [abs(r[key]) for r in rows if not r["distorted"]]
        out[key] = {"distorted_mean": float(np.mean(bad)), "others_mean": float(np.mean(good)),
                    "others_range": [float(np.min(good)), float(np.max(good))]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    enc = FaceEncoder.from_pretrained(args.model)
    rows = measure(enc, pictured(enc, args.data))
    for r in rows:
        flag = "distorted" if r["distorted"] else ""
        print(f"{flag:9s} {r['face']:44s} keypoints {r['keypoint_error_px']:.2f} px"
              f"  structure asym {r['structure_asymmetry']:.2f}  colour asym {r['colour_asymmetry']:.3f}")
    result = {"experiment": "frontal_photo_levers",
              "command": "python experiments/frontal_photo_levers.py --json "
                         "experiments/results/frontal_photo_levers.json",
              "summary": summary(rows), "faces": rows}
    print(json.dumps(result["summary"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
