"""Video against image files (issue 26): frames/s of ``FaceEncoder.encode_video`` on a video made from photos,
against encoding the same frames written as JPEG files (what a user had to do before).

    python benchmarks/video_speed.py --threads 2 --json benchmarks/results/video_speed.json

The clip: ``--frames`` frames (default 120) at 25 fps, 640 px wide, made from the photos of
``../shared/data/photos`` (each photo held for a few frames, drifting sideways so detection and the tracker
see motion), MPEG-4. Both paths detect with MTCNN, encode every frame (``faces="all"``) and keep the same
rows; the image-file path also pays for writing and reading the JPEGs, the video path for decoding. Also
recorded: the faces found and tracks linked, and the peak memory growth of the video path (frames are decoded
one at a time, so it does not grow with the clip's length).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

FPS = 25
WIDTH = 640


def make_clip(photos: Path, out: Path, frames: int) -> list[np.ndarray]:
    """Write the clip; returns its frames (RGB uint8)."""
    import av

    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    height = int(WIDTH * 3 / 4) // 2 * 2
    made: list[np.ndarray] = []
    per_photo = max(1, frames // max(1, len(files)))
    for i in range(frames):
        img = Image.open(files[(i // per_photo) % len(files)]).convert("RGB")
        img.thumbnail((WIDTH + 64, height), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (WIDTH + 64, height))
        canvas.paste(img, ((WIDTH + 64 - img.width) // 2, (height - img.height) // 2))
        shift = 2 * (i % per_photo)
        made.append(np.asarray(canvas)[:, shift : shift + WIDTH].copy())
    with av.open(str(out), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, height, "yuv420p"
        stream.options = {"qscale": "3"}
        for f in made:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return made


def main(argv: list[str] | None = None) -> int:
    p = _bench.base_parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args(argv)
    frames = 24 if args.quick else args.frames
    repeats = 1 if args.quick else args.repeats
    _bench.set_threads(args.threads)
    enc, name = _bench.load_model("cpu", args.model)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        made = make_clip(args.data / "photos", clip, frames)
        enc.encode(made[:2], faces="all")  # warm up (detector built, first calls)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        video_s, files_s = [], []
        result = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = enc.encode_video(clip, faces="all")
            video_s.append(time.perf_counter() - t0)
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        faces_images = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            folder = Path(tmp) / "frames"
            folder.mkdir(exist_ok=True)
            paths = []
            for i, f in enumerate(made):
                path = folder / f"frame_{i:06d}.jpg"
                Image.fromarray(f).save(path, quality=95)
                paths.append(str(path))
            out = enc.encode(paths, faces="all", batch_size=64)
            files_s.append(time.perf_counter() - t0)
            faces_images = int(out.ok.sum())
    assert result is not None
    for mode, secs, faces in (("video", video_s, len(result)), ("image files", files_s, faces_images)):
        med = float(np.median(secs))
        rows.append({"mode": mode, "frames": frames, "seconds": round(med, 3),
                     "frames_per_s": round(frames / med, 1), "faces": faces})
        print(f"{mode:12} {frames} frames: {med:.2f} s, {frames / med:.1f} frames/s, {faces} faces",
              flush=True)
    rows[0]["tracks"] = int(result.track.unique().numel()) if len(result) else 0
    rows[0]["peak_rss_growth_mb"] = round((rss1 - rss0) / 1024, 1)
    _bench.write_json(args.json, {"command": _bench.command(), "machine": _bench.machine(args.threads),
                                  "model": name, "frames": frames, "fps": FPS, "width": WIDTH, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
