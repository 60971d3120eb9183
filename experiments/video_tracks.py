"""How the video tracks' thresholds were chosen (issue 35): the shot-cut rule and the identity cosines.

    python experiments/video_tracks.py cuts        # frame changes within shots and across cuts
    python experiments/video_tracks.py identity    # identity cosines: one person vs two, same session
    python experiments/video_tracks.py example     # the clip of docs/video-and-3d.md, old and new tracks

``cuts`` builds shots without a cut from the shared photos (pans, zooms, a shaking camera, flickering and
tinted light, a face moving over a still background; each through the MPEG-4 codec) plus the sample
clips Gradio ships (when the demo extra is installed), and hard cuts between every pair of 69 framed
stills (the shared photos and 60 CelebA faces). It prints how many cuts the rule of
:mod:`latentface_sdk.shots` finds and how many frame pairs of the shots (1, 3, 6 and 10 frames apart) it
calls a cut, then checks the same through :func:`latentface_sdk.video.read_frames` on clips written to
disk (every decoded frame, 24 x 24 thumbnails).

``identity`` needs weights with an identity head. Within one session (one camera, one light: what the
faces of one shot share) it compares the identity embeddings of one person's photos against two people's:
the Taiwan corpus (29 people, 7 posed expressions each) and the London set (neutral and smiling), both
``../shared/data``. It prints, for thresholds, the share of same-person pairs kept and of two-people pairs
passed: the tracker's gate (``min_similarity``, default the model's ``identity_threshold``) and the
re-join by identity (``rejoin_similarity``, the same by default). It compares them with two people in two
photos (the celeba10k ``verify`` pairs: what a missed cut between two people shows) and measures how far
one face's embedding moves when the face is tilted, mirrored (a turned head), blurred, darkened or
shrunk, as within a shot.

Results are written under ``runs/video_tracks/`` as JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from latentface_sdk.shots import (  # noqa: E402
    CUT_THRESHOLD,
    colour_change,
    frame_change,
    frame_signature,
    layout_change,
)

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "runs" / "video_tracks"
W, H = 320, 180


def av_module():  # type: ignore[no-untyped-def]
    import av

    return av


# ---------------------------------------------------------------------------------------------- frames
def fit(img: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    """Scale to cover w x h, then crop (centred across, the upper third down)."""
    im = Image.fromarray(img)
    s = max(w / im.width, h / im.height)
    im = im.resize((max(w, round(im.width * s)), max(h, round(im.height * s))), Image.BILINEAR)
    x, y = (im.width - w) // 2, (im.height - h) // 3
    return np.asarray(im)[y:y + h, x:x + w]


def _mux(target: Any, frames: list[np.ndarray], fps: int, **open_kw: Any) -> None:
    """Write ``frames`` as MPEG-4 at 800 kb/s into ``target`` (a path or a buffer)."""
    av = av_module()
    with av.open(target, "w", **open_kw) as out:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt, s.bit_rate = frames[0].shape[1], frames[0].shape[0], "yuv420p", 800_000
        packets = [p for f in frames for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f),
                                                                                   format="rgb24"))]
        for p in [*packets, *s.encode()]:
            out.mux(p)


def codec(frames: list[np.ndarray], fps: int = 30) -> list[np.ndarray]:
    """The frames after an MPEG-4 round trip at 800 kb/s (codec noise and blocking, as in real files)."""
    buf = io.BytesIO()
    _mux(buf, frames, fps, format="mp4")
    buf.seek(0)
    with av_module().open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    _mux(str(path), frames, fps)
    return path


def pan(img: np.ndarray, n: int = 60, dx: int = 3, dy: int = 1, zoom: float = 1.0) -> list[np.ndarray]:
    big = fit(img, int(W * 1.8), int(H * 1.8))
    out = []
    for i in range(n):
        z = zoom**i
        w, h = int(W * z), int(H * z)
        x, y = min(big.shape[1] - w, 10 + dx * i), min(big.shape[0] - h, 10 + dy * i)
        out.append(np.asarray(Image.fromarray(big[y:y + h, x:x + w]).resize((W, H))))
    return out


def flicker(img: np.ndarray, rng: np.random.Generator, n: int = 60, tint: bool = True) -> list[np.ndarray]:
    """Stage light: the brightness a random walk (x0.8-1.25 a frame, within 0.5-1.6), each channel
    x0.75-1.25 a frame when tinted."""
    base = fit(img).astype(np.float32)
    out, g = [], 1.0
    for _ in range(n):
        g = float(np.clip(g * rng.uniform(0.8, 1.25), 0.5, 1.6))
        c = rng.uniform(0.75, 1.25, 3) if tint else np.ones(3)
        out.append(np.clip(base * g * c, 0, 255).astype(np.uint8))
    return out


def shake(img: np.ndarray, rng: np.random.Generator, n: int = 60, amp: int = 8) -> list[np.ndarray]:
    big = fit(img, W + 2 * amp, H + 2 * amp)
    out = []
    for _ in range(n):
        x, y = rng.integers(0, 2 * amp, 2)
        out.append(big[y:y + H, x:x + W])
    return out


def mover(bg: np.ndarray, face: np.ndarray, n: int = 60) -> list[np.ndarray]:
    base, f = fit(bg), fit(face, 90, 110)
    out = []
    for i in range(n):
        fr = base.copy()
        x, y = 20 + 3 * i, 40 + int(10 * np.sin(i / 6))
        fr[y:y + 110, x:x + 90] = f
        out.append(fr)
    return out


def gradio_clips() -> dict[str, list[np.ndarray]]:
    """The sample videos of the Gradio package (real footage without a cut; a.mp4 fades to black at the
    end, cut off before), when installed."""
    try:
        import gradio
    except ImportError:
        return {}
    folder = Path(gradio.__file__).parent / "media_assets" / "videos"
    out = {}
    for name, n in (("a.mp4", 190), ("b.mp4", None), ("world.mp4", 300)):
        if (folder / name).is_file():
            with av_module().open(str(folder / name)) as c:
                frames = [np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize((W, H)))
                          for f in c.decode(video=0)]
            out["real_" + name.split(".")[0]] = frames[:n] if n else frames
    return out


def material(seed: int = 0) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((DATA / "photos").glob("*"))]
    celeb_paths = sorted((DATA / "celeba10k" / "images").glob("*.jpg"))
    celeb = [np.asarray(Image.open(p).convert("RGB")) for p in rng.choice(celeb_paths, 60, replace=False)]
    shots: dict[str, list[np.ndarray]] = {}
    for k, img in enumerate(photos):
        shots[f"pan{k}"] = codec(pan(img))
        shots[f"zoom{k}"] = codec(pan(img, dx=1, dy=1, zoom=0.99))
        shots[f"flicker{k}"] = codec(flicker(img, rng))
        shots[f"flickergrey{k}"] = codec(flicker(img, rng, tint=False))
        shots[f"shake{k}"] = codec(shake(img, rng))
    for k in range(4):
        shots[f"mover{k}"] = codec(mover(photos[k], celeb[k]))
    shots.update(gradio_clips())
    stills = codec([fit(p) for p in photos] + [fit(c) for c in celeb])
    return shots, stills


def cuts(_: argparse.Namespace) -> None:
    from latentface_sdk.video import read_frames

    shots, stills = material()
    sig = [frame_signature(f) for f in stills]
    pairs = [(i, j) for i, j in itertools.combinations(range(len(stills)), 2)
             if np.abs(stills[i].astype(np.int16) - stills[j]).mean() > 3]  # two files of one photo: no cut
    cut = np.array([frame_change(sig[i], sig[j]) for i, j in pairs])
    report: dict[str, object] = {
        "cuts": len(cut), "cuts_found": float((cut >= CUT_THRESHOLD).mean()),
        "cut_score_min": float(cut.min()), "cut_score_p1": float(np.percentile(cut, 1)),
        "cut_score_median": float(np.median(cut))}
    print(f"hard cuts: {len(cut)}, found {100 * (cut >= CUT_THRESHOLD).mean():.2f}% "
          f"(score min {cut.min():.2f}, 1st percentile {np.percentile(cut, 1):.2f}, "
          f"median {np.median(cut):.2f})")
    signatures = {k: [frame_signature(f) for f in v] for k, v in shots.items()}
    parts = {"layout without shifts": lambda a, b: layout_change(a, b, max_shift=0),
             "colour alone": colour_change}
    for label, measure in parts.items():
        across = np.array([measure(sig[i], sig[j]) for i, j in pairs])
        within = max(measure(s[i], s[i + step]) for s in signatures.values() for step in (1, 3, 6, 10)
                     for i in range(len(s) - step))
        report[label] = {"within_max": float(within), "cuts_p1": float(np.percentile(across, 1))}
        print(f"{label}: within shots up to {within:.2f}, across cuts 1st percentile "
              f"{np.percentile(across, 1):.2f}")
    for step in (1, 3, 6, 10):
        scores = {k: [frame_change(s[i], s[i + step]) for i in range(len(s) - step)]
                  for k, s in signatures.items()}
        kinds: dict[str, float] = {}
        for k, v in scores.items():
            kind = k.rstrip("0123456789")
            kinds[kind] = max(kinds.get(kind, 0.0), max(v))
        flat = np.concatenate([np.asarray(v) for v in scores.values()])
        false = int((flat >= CUT_THRESHOLD).sum())
        report[f"within_step{step}"] = {"pairs": len(flat), "false_cuts": false, "max_by_kind": kinds}
        print(f"{len(shots)} shots, frames {step} apart: {len(flat)} pairs, {false} called a cut; the "
              "largest score by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in kinds.items()))
    # the reader's path: clips on disk, every decoded frame through a 24 x 24 thumbnail
    OUT.mkdir(parents=True, exist_ok=True)
    names = list(shots)
    joined: list[np.ndarray] = []
    starts: list[int] = []
    last = ""
    for k in np.random.default_rng(1).permutation(len(names)):
        source = names[k].lstrip("abcdefghijklmnopqrstuvwxyz")  # the photo a shot was made from
        if len(starts) == 20 or (source and source == last):  # two shots of one photo: no cut between
            continue
        last = source
        starts.append(len(joined))
        joined.extend(shots[names[k]][:30])
    path = write_clip(OUT / "joined.mp4", joined)
    found = [f.shot for f in read_frames(path)]
    new = [i for i in range(1, len(found)) if found[i] != found[i - 1]]
    report["reader"] = {"shots": 20, "cuts_true": starts[1:], "cuts_found": new}
    print(f"read_frames on 20 shots joined by 19 hard cuts: cuts found at {new} (true: {starts[1:]})")
    (OUT / "cuts.json").write_text(json.dumps(report, indent=1))


# -------------------------------------------------------------------------------------------- identity
def identity(args: argparse.Namespace) -> None:
    import torch

    from latentface_sdk import FaceEncoder

    torch.set_num_threads(args.threads)
    enc = FaceEncoder.from_pretrained(args.model, device="cpu")
    print(f"model {enc.config.name}: identity_threshold {enc.identity_threshold:.3f}")
    report: dict[str, object] = {"identity_threshold": enc.identity_threshold}
    thresholds = sorted({round(enc.identity_threshold, 3), 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9})
    for name in ("taiwan_tcce", "london_frl"):
        rows = list(csv.DictReader(open(DATA / name / "labels.csv", newline="")))
        found = enc.encode([DATA / name / "images" / r["image"] for r in rows], batch_size=64)
        emb = enc.identity_from_latents(found).numpy()
        ok = found.ok.numpy()
        emb, labels = emb[ok], np.array([r["identity"] for r in rows])[ok]
        iu = np.triu_indices(len(labels), 1)
        cos = (emb @ emb.T)[iu]
        same = labels[iu[0]] == labels[iu[1]]
        pos, neg = cos[same], cos[~same]
        table = {f"{t:.3f}": {"same_kept": float((pos >= t).mean()), "two_passed": float((neg >= t).mean())}
                 for t in thresholds}
        report[name] = {"faces": int(ok.sum()), "same_pairs": int(same.sum()),
                        "two_pairs": int((~same).sum()),
                        "same_p1": float(np.percentile(pos, 1)), "same_p5": float(np.percentile(pos, 5)),
                        "same_median": float(np.median(pos)), "two_median": float(np.median(neg)),
                        "two_p95": float(np.percentile(neg, 95)), "two_p99": float(np.percentile(neg, 99)),
                        "thresholds": table}
        print(f"{name}: {ok.sum()} faces; one person: 1st percentile {np.percentile(pos, 1):.2f}, median "
              f"{np.median(pos):.2f}; two people: median {np.median(neg):.2f}, 95th percentile "
              f"{np.percentile(neg, 95):.2f}, 99th {np.percentile(neg, 99):.2f}")
        for t, r in table.items():
            print(f"   cosine >= {t}: one person's pairs kept {100 * r['same_kept']:5.1f}%, two people's "
                  f"passed {100 * r['two_passed']:5.1f}%")
    # two photos: celeba10k verify pairs (what a missed cut between two people shows)
    text = (DATA / "celeba10k" / "pairs_verify.txt").read_text()
    pairs = [line.split("\t") for line in text.split("\n")[1:] if line.strip()]
    files = sorted({p[1] for p in pairs if len(p) == 3} | {p[2] for p in pairs if len(p) == 3}
                   | {p[1] for p in pairs if len(p) == 4} | {p[3] for p in pairs if len(p) == 4})
    found = enc.encode([DATA / "celeba10k" / "images" / f for f in files], batch_size=64)
    emb = dict(zip(files, enc.identity_from_latents(found).numpy(), strict=True))
    same = np.array([emb[p[1]] @ emb[p[2]] for p in pairs if len(p) == 3])
    two = np.array([emb[p[1]] @ emb[p[3]] for p in pairs if len(p) == 4])
    same, two = same[np.isfinite(same)], two[np.isfinite(two)]
    report["celeba_verify"] = {f"{t:.3f}": {"same_kept": float((same >= t).mean()),
                                            "two_passed": float((two >= t).mean())} for t in thresholds}
    print(f"celeba10k verify pairs (two photos): {len(same)} of one person, {len(two)} of two people")
    for t, r in report["celeba_verify"].items():  # type: ignore[union-attr]
        print(f"   cosine >= {t}: one person's pairs kept {100 * r['same_kept']:5.1f}%, two people's "
              f"passed {100 * r['two_passed']:5.2f}%")
    # one face changed as within a shot: tilted, mirrored (a turn), blurred, darker, smaller
    from PIL import ImageEnhance, ImageFilter

    rng = np.random.default_rng(0)
    faces = []
    for name in ("taiwan_tcce", "london_frl", "celeba_ids_wild"):
        rows = list(csv.DictReader(open(DATA / name / "labels.csv", newline="")))
        faces += [Image.open(DATA / name / "images" / r["image"]).convert("RGB").resize((128, 128))
                  for r in rng.choice(rows, 40, replace=False)]

    def framed(im: Image.Image, scale: float = 1.0) -> np.ndarray:
        w = int(128 * scale)
        canvas = Image.new("RGB", (max(2 * w, 96), max(2 * w, 96)), (90, 90, 90))
        canvas.paste(im.resize((w, w)), (w // 2, w // 2))
        return np.asarray(canvas)

    changes = {"tilted 15 degrees": lambda im: framed(im.rotate(15, resample=Image.BILINEAR)),
               "mirrored (a turned head)": lambda im: framed(im.transpose(Image.FLIP_LEFT_RIGHT)),
               "blurred (radius 2)": lambda im: framed(im.filter(ImageFilter.GaussianBlur(2))),
               "half as bright": lambda im: framed(ImageEnhance.Brightness(im).enhance(0.5)),
               "a third the size": lambda im: framed(im, 0.35)}
    base = enc.identity_from_latents(enc.encode([framed(im) for im in faces], batch_size=64)).numpy()
    report["changes"] = {}
    for label, change in changes.items():
        e = enc.identity_from_latents(enc.encode([change(im) for im in faces], batch_size=64)).numpy()
        c = np.sum(base * e, 1)
        c = c[np.isfinite(c)]
        report["changes"][label] = {"median": float(np.median(c)),  # type: ignore[index]
                                    **{f"under_{t:.3f}": float((c < t).mean()) for t in thresholds}}
        print(f"{label}: cosine to the unchanged face median {np.median(c):.2f}, under the threshold "
              f"{100 * (c < enc.identity_threshold).mean():.1f}%, under 0.3 {100 * (c < 0.3).mean():.1f}%")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "identity.json").write_text(json.dumps(report, indent=1))


# --------------------------------------------------------------------------------------------- example
def example(args: argparse.Namespace) -> None:
    import torch

    from latentface_sdk import FaceEncoder
    from latentface_sdk.video import box_iou

    torch.set_num_threads(args.threads)
    enc = FaceEncoder.from_pretrained(args.model, device="cpu")
    names = ["obama2.jpg", "biden.jpg", "obama-1080p.jpg"]
    found = enc.encode([DATA / "photos" / n for n in names])
    frames = []
    for k, n in enumerate(names):
        img = Image.open(DATA / "photos" / n).convert("RGB")
        x1, y1, x2, y2 = found.boxes[k].tolist()
        s = 90 / (x2 - x1)
        arr = np.asarray(img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR))
        arr = np.pad(arr, ((320, 320), (320, 320), (0, 0)), mode="edge")
        for i in range(8):
            ox = int(round((x1 + x2) / 2 * s - 160 - 2 * (8 * k + i))) + 320
            oy = int(round((y1 + y2) / 2 * s - 110)) + 320
            frames.append(arr[oy:oy + 240, ox:ox + 320])
    OUT.mkdir(parents=True, exist_ok=True)
    path = write_clip(OUT / "three_shots.mp4", frames, fps=10)
    report: dict[str, object] = {}
    for label, options in (("boxes only, no cuts (before)", {"cut_threshold": None, "min_similarity": -1.0}),
                           ("identity, no cuts", {"cut_threshold": None}), ("default", {})):
        if "min_similarity" not in options and enc.heads.identity is None:
            continue
        res = enc.encode_video(path, **options)  # type: ignore[arg-type]
        b = res.encoding.boxes.numpy()
        cut_iou = [float(box_iou(b[i - 1:i], b[i:i + 1])[0, 0]) for i in (8, 16)]
        row = {"shot": res.shot.tolist(), "track": res.track.tolist()}
        if res.identity_embedding is not None:
            e = res.identity_embedding.numpy()
            row["cosine_across_cuts"] = [float(e[7] @ e[8]), float(e[15] @ e[16])]
            row["cosine_within_shots_min"] = float(min(e[i] @ e[i + 1] for i in range(23)
                                                       if i not in (7, 15)))
        row["box_iou_across_cuts"] = cut_iou
        report[label] = row
        print(label, json.dumps(row))
    (OUT / "example.json").write_text(json.dumps(report, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("cuts", "identity", "example"))
    p.add_argument("--model", default=None, help="model name, folder or Hub id (default: the bundled one)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    {"cuts": cuts, "identity": identity, "example": example}[a.what](a)


if __name__ == "__main__":
    main()
