"""End-to-end throughput from ordinary photos: ours against the facenet-pytorch pipeline, in the same run.

Both pipelines take image files and return one feature row per image with a face:

- **ours**: ``FaceEncoder.encode(paths)`` (defaults: decode with EXIF orientation, batched MTCNN on
  images of equal size, the crop policy, 64x64 stage-1 encoders, ``batch_size=64``);
- **facenet-pytorch**: what its README does: decode with PIL, ``MTCNN(image_size=160)`` called on
  lists of equal-size images (its batched mode, 32 at a time), then ``InceptionResnetV1`` (random
  weights, ``pretrained=None``: the published weights cannot be downloaded here; the speed is the same)
  on the stacked 160x160 faces.

Image sets (from ``../shared/data``): ``celeba`` (the first K celeba10k images, 89x109), ``photos``
(the 9 photographs of ``photos/``: two people, small, RGBA PNG, partial face, up to 1080p), and the
1080p photo alone (``obama-1080p.jpg``, one image per call). Each is timed ``--repeats`` times per
pipeline (the two alternate); ratio = our images/s over theirs. A cProfile of our pipeline on the
celeba set shows where its time goes.

**Detection modes** (issue 25, item 4): photo files/s of ``FaceEncoder.encode(paths)`` on ``--device``
for each ``FaceDetector.mixed_sizes`` (``group``: equal-size groups through facenet-pytorch's MTCNN;
``pad``: all sizes together, :mod:`latentface_sdk.detection_batch`) and each decode setting
(``decode_workers`` 0 and ``--decode-workers``), at ``--batch-size`` with the detector's ``--max-batch``,
on the ``mixed`` set (the photos plus CelebA, UTKFace and CelebA-in-the-wild files: 10 sizes) and the
``celeba`` set (one size). Each mode's faces are compared with the CPU's grouped path on the mixed set
(faces per image, min box IoU, max landmark distance): "the same boxes as the CPU path".
``--modes-only`` runs only this part (no facenet-pytorch peer, no profile).

Usage::

    python benchmarks/pipeline_speed.py --threads 2 --repeats 3 --json benchmarks/results/pipeline.json
    python benchmarks/pipeline_speed.py --device cuda --modes-only --batch-size 256 --max-batch 128 \
        --decode-workers 8 --json pipeline_gpu.json
"""

from __future__ import annotations

import cProfile
import functools
import itertools
import pstats
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

GOAL_RATIO = 2.0
GOAL_FILES_PER_S = 1000.0  # issue 25 item 4: photo files/s on one H200
PEER_BATCH = 32


class FacenetPipeline:
    """facenet-pytorch as its README uses it: MTCNN crops at 160 px, then InceptionResnetV1 embeddings."""

    def __init__(self) -> None:
        import torch
        from facenet_pytorch import MTCNN, InceptionResnetV1

        torch.manual_seed(0)
        self.mtcnn = MTCNN(image_size=160, margin=0, min_face_size=20, select_largest=True, device="cpu")
        self.resnet = InceptionResnetV1(pretrained=None).eval()

    def __call__(self, paths: Sequence[Path]) -> int:
        """Embed the largest face of each image; returns the number of faces embedded."""
        import torch
        from PIL import Image

        found = 0
        with torch.inference_mode():
            for start in range(0, len(paths), PEER_BATCH):
                images = [Image.open(p).convert("RGB") for p in paths[start : start + PEER_BATCH]]
                by_size: dict[tuple[int, int], list[Any]] = {}
                for im in images:  # its batched MTCNN needs images of one size
                    by_size.setdefault(im.size, []).append(im)
                for group in by_size.values():
                    faces = [f for f in self.mtcnn(group) if f is not None]
                    if faces:
                        emb = self.resnet(torch.stack(faces))
                        found += int(emb.shape[0])
        return found


def image_sets(data: Path, quick: bool) -> dict[str, list[Path]]:
    photos = sorted((data / "photos").iterdir())
    return {
        "celeba": _bench.celeba_paths(data, 32 if quick else 192),
        "photos": photos,
        "photo_1080p": [data / "photos" / "obama-1080p.jpg"],
    }


def mixed_paths(data: Path, quick: bool) -> list[Path]:
    """The photos of ``photos/`` and the first files of CelebA (89x109), UTKFace and CelebA in the wild
    (128x128), interleaved so that every batch holds several sizes; folders that are absent are skipped."""
    n = 16 if quick else 96
    groups = [sorted((data / "photos").iterdir())] if (data / "photos").is_dir() else []
    for folder in ("celeba10k/images", "utkface/images", "celeba_ids_wild/images"):
        if (data / folder).is_dir():
            groups.append(sorted((data / folder).glob("*.jpg"))[:n])
    paths = [p for row in itertools.zip_longest(*groups) for p in row if p is not None]
    if not paths:
        raise SystemExit(f"{data}: none of photos/, celeba10k/, utkface/, celeba_ids_wild/ found")
    return paths


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def agreement(reference: Sequence[Sequence[Any]], found: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Faces of ``found`` against ``reference`` (lists of ``FaceBox`` per image): images whose face count
    differs, and over the others the min box IoU and the max landmark distance (pixels)."""
    import numpy as np

    differ, ious, dists = 0, [1.0], [0.0]
    for ref, got in zip(reference, found, strict=True):
        if len(ref) != len(got):
            differ += 1
            continue
        for a, b in zip(ref, got, strict=True):
            ious.append(_iou(a.box, b.box))
            if a.landmarks is not None and b.landmarks is not None:
                dists.append(float(np.abs(a.landmarks - b.landmarks).max()))
    return {"images": len(reference), "faces": sum(len(r) for r in reference), "count_differs": differ,
            "min_iou": min(ious), "max_landmark_px": max(dists)}


def detection_modes(enc: Any, args: Any) -> dict[str, Any]:
    """Photo files/s per detection mode and decode setting (see the module docstring), with each mode's
    agreement with the CPU's grouped detection on the mixed set."""
    from latentface_sdk.detection import FaceDetector
    from latentface_sdk.images import to_rgb

    sets = {"mixed": mixed_paths(args.data, args.quick)}
    if (args.data / "celeba10k" / "images").is_dir():
        sets["celeba"] = _bench.celeba_paths(args.data, 32 if args.quick else 192)
    det = enc.detector
    if args.max_batch is not None:
        det.max_batch = args.max_batch
    rgbs = [to_rgb(p) for p in sets["mixed"]]
    reference = FaceDetector(enc.config.crop, device="cpu", mixed_sizes="group").detect_batch(rgbs)
    workers = sorted({0, args.decode_workers})
    rows: list[dict[str, Any]] = []
    agree: dict[str, Any] = {}
    for mode in ("group", "pad"):
        det.mixed_sizes = mode
        agree[mode] = agreement(reference, det.detect_batch(rgbs))
        for name, paths in sets.items():
            for w in workers:
                enc.decode_workers = w

                def call(paths: Sequence[Path] = paths) -> int:
                    return int(enc.encode(list(paths), batch_size=args.batch_size).ok.sum())

                faces = call()  # also the warm-up
                fps = _bench.rate(len(paths), _bench.time_runs(call, args.repeats, warmup=0))
                rows.append({"set": name, "mixed_sizes": mode, "decode_workers": w, "files": len(paths),
                             "faces": faces, "files_per_s": fps})
                print(f"{name:7s} {mode:5s} decode_workers {w}: {_bench.fmt(fps)} files/s "
                      f"({faces} with a face)", flush=True)
        print(f"{mode}: against the CPU grouped path: {agree[mode]}", flush=True)
    det.mixed_sizes = "auto"
    enc.decode_workers = None
    best = max(r["files_per_s"]["median"] for r in rows if r["set"] == "mixed")
    return {"device": str(enc.device), "batch_size": args.batch_size, "max_batch": det.max_batch,
            "sets": {k: {"files": len(v), "sizes": len({im.shape[:2] for im in rgbs}) if k == "mixed" else 1}
                     for k, v in sets.items()},
            "rows": rows, "agreement_with_cpu_group": agree, "best_mixed_files_per_s": best}


def run(args: Any) -> dict[str, Any]:
    from PIL import Image

    _bench.set_threads(args.threads)
    enc, model_desc = _bench.load_model(args.device, args.model)
    modes = detection_modes(enc, args)
    if args.modes_only:
        best = modes["best_mixed_files_per_s"]
        return {"benchmark": "pipeline_modes", "command": _bench.command(),
                "machine": _bench.machine(args.threads), "model": model_desc, "detection_modes": modes,
                "goal": {"what": f"photo files/s on {args.device} (mixed sizes, best mode)",
                         "achieved": best, "target": GOAL_FILES_PER_S, "met": best >= GOAL_FILES_PER_S}}
    peer = FacenetPipeline()
    sets = image_sets(args.data, args.quick)

    def ours(paths: Sequence[Path]) -> int:
        return int(enc.encode(list(paths)).ok.sum())

    results: dict[str, Any] = {}
    for name, paths in sets.items():
        sizes = sorted({Image.open(p).size for p in paths})
        counts = {"ours": ours(paths), "facenet": peer(paths)}  # also the warm-up
        timings: dict[str, list[float]] = {"ours": [], "facenet": [], "ours_plain": []}
        fns: dict[str, Callable[[], object]] = {"ours": functools.partial(ours, paths),
                                                "facenet": functools.partial(peer, paths),
                                                "ours_plain": functools.partial(ours, paths)}
        for _ in range(args.repeats):
            for who in ("ours", "facenet", "ours_plain"):
                enc.use_channels_last(who != "ours_plain")  # the fast path on, except for ours_plain
                timings[who] += _bench.time_runs(fns[who], 1, warmup=0)
            enc.use_channels_last(True)
        ips = {who: _bench.rate(len(paths), t) for who, t in timings.items()}
        ratio = ips["ours"]["median"] / ips["facenet"]["median"]
        results[name] = {
            "images": len(paths),
            "image_sizes": [f"{w}x{h}" for w, h in sizes[:6]] + (["..."] if len(sizes) > 6 else []),
            "faces_found": counts,
            "images_per_s": ips,
            "ratio_ours_over_facenet": ratio,
        }
        print(f"{name:12s} ({len(paths)} images): ours {_bench.fmt(ips['ours'])} img/s (plain layout "
              f"{_bench.fmt(ips['ours_plain'])}), facenet-pytorch {_bench.fmt(ips['facenet'])} img/s, "
              f"ratio {ratio:.2f}x; faces {counts}", flush=True)

    # Where our time goes (celeba set), and the share of the peer's embedding network.
    prof = cProfile.Profile()
    prof.enable()
    ours(sets["celeba"])
    prof.disable()
    ours_top = _bench.top_functions(pstats.Stats(prof))
    split_repeats = max(1, min(args.repeats, 2))
    stage_split = split_ours(enc, sets["celeba"], split_repeats)
    peer_split = split_peer(peer, sets["celeba"], split_repeats)
    photos_split = {"ours": split_ours(enc, sets["photos"], split_repeats),
                    "facenet": split_peer(peer, sets["photos"], split_repeats)}

    # Combined set: the time each pipeline needs for celeba + photos (sum of the median times).
    keys = ("celeba", "photos")
    total_imgs = sum(results[k]["images"] for k in keys)
    t_ours = sum(results[k]["images"] / results[k]["images_per_s"]["ours"]["median"] for k in keys)
    t_peer = sum(results[k]["images"] / results[k]["images_per_s"]["facenet"]["median"] for k in keys)
    combined = {"images": total_imgs, "ours_images_per_s": total_imgs / t_ours,
                "facenet_images_per_s": total_imgs / t_peer, "ratio": t_peer / t_ours}
    return {
        "benchmark": "pipeline",
        "flops_per_face": feature_flops(enc, peer),
        "command": _bench.command(),
        "machine": _bench.machine(args.threads),
        "model": model_desc,
        "peer": "facenet-pytorch MTCNN(image_size=160) + InceptionResnetV1(pretrained=None), batches of 32",
        "sets": results,
        "combined_celeba_plus_photos": combined,
        "ours_stage_seconds_celeba": stage_split,
        "facenet_stage_seconds_celeba": peer_split,
        "stage_seconds_photos": photos_split,
        "ours_cprofile_celeba": ours_top,
        "detection_modes": modes,
        "goal": {"what": f"end-to-end images/s at least {GOAL_RATIO:.0f}x facenet-pytorch's "
                         "(celeba + photos)",
                 "achieved": combined["ratio"], "target": GOAL_RATIO, "met": combined["ratio"] >= GOAL_RATIO},
    }


def feature_flops(enc: Any, peer: FacenetPipeline) -> dict[str, float]:
    """FLOPs of one face's features: our stage-1 encoders (64x64) and InceptionResnetV1 (160x160)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        with FlopCounterMode(display=False) as ours:
            enc.autoencoder.encode(torch.rand(2, 3, 64, 64))
        with FlopCounterMode(display=False) as theirs:
            peer.resnet(torch.rand(2, 3, 160, 160))
    return {"ours": ours.get_total_flops() / 2, "facenet": theirs.get_total_flops() / 2}


def split_ours(enc: Any, paths: Sequence[Path], repeats: int) -> dict[str, Any]:
    """Seconds of our stages on ``paths``: decode, MTCNN, crop, encoders (median of ``repeats``)."""
    from latentface_sdk.detection import crop_face, select_faces
    from latentface_sdk.images import to_rgb

    rgbs = [to_rgb(p) for p in paths]
    found = enc.detector.detect_batch(rgbs)
    crops = [crop_face(r, select_faces(f)[0].box, enc.config.crop) for r, f in zip(rgbs, found, strict=True)
             if f]
    import numpy as np

    stacked = np.stack(crops)
    return {
        "decode": _bench.stats(_bench.time_runs(lambda: [to_rgb(p) for p in paths], repeats, warmup=0)),
        "mtcnn": _bench.stats(_bench.time_runs(lambda: enc.detector.detect_batch(rgbs), repeats, warmup=0)),
        "crop": _bench.stats(_bench.time_runs(
            lambda: [crop_face(r, select_faces(f)[0].box, enc.config.crop)
                     for r, f in zip(rgbs, found, strict=True) if f], repeats, warmup=0)),
        "encode": _bench.stats(_bench.time_runs(lambda: enc.encode(stacked, detect=False), repeats,
                                                warmup=0)),
    }


def split_peer(peer: FacenetPipeline, paths: Sequence[Path], repeats: int) -> dict[str, Any]:
    """Seconds of the peer's stages on ``paths``: decode, MTCNN (detect + extract), InceptionResnetV1."""
    import torch
    from PIL import Image

    def decode() -> list[Any]:
        return [Image.open(p).convert("RGB") for p in paths]

    images = decode()

    def detect() -> list[Any]:
        out: list[Any] = []
        by_size: dict[tuple[int, int], list[Any]] = {}
        for im in images:  # its batched MTCNN needs images of one size
            by_size.setdefault(im.size, []).append(im)
        with torch.inference_mode():
            for group in by_size.values():
                for s in range(0, len(group), PEER_BATCH):
                    out += [f for f in peer.mtcnn(group[s : s + PEER_BATCH]) if f is not None]
        return out

    faces = detect()

    def embed() -> None:
        with torch.inference_mode():
            for s in range(0, len(faces), PEER_BATCH):
                peer.resnet(torch.stack(faces[s : s + PEER_BATCH]))

    return {
        "decode": _bench.stats(_bench.time_runs(decode, repeats, warmup=0)),
        "mtcnn": _bench.stats(_bench.time_runs(detect, repeats, warmup=0)),
        "embed": _bench.stats(_bench.time_runs(embed, repeats, warmup=0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = _bench.base_parser((__doc__ or "").splitlines()[0])
    parser.set_defaults(repeats=3)
    parser.add_argument("--device", default="cpu", help="where the model and MTCNN run (default cpu)")
    parser.add_argument("--batch-size", type=int, default=64, help="encode batch size of the modes table")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="images per MTCNN call (FaceDetector.max_batch; default the detector's, 32)")
    parser.add_argument("--decode-workers", type=int, default=4, help="the N of decode_workers 0 against N")
    parser.add_argument("--modes-only", action="store_true",
                        help="only the detection-modes table (no facenet-pytorch peer, no profile)")
    args = parser.parse_args(argv)
    result = run(args)
    g = result["goal"]
    print(f"goal: {g['what']}: {g['achieved']:.2f} ({'met' if g['met'] else 'missed'})")
    _bench.write_json(args.json, result)
    return 0

if __name__ == "__main__":
    sys.exit(main())
