"""The ``latentface`` command: encode, disentangle or frontalize the faces of image files and folders.

::

    latentface encode      INPUTS... -o OUT.npz   [--answers] [options]
    latentface verify      A B [--threshold T --json]
    latentface disentangle INPUTS... -o OUT.npz   [--seed 0 --steps 5] [options]
    latentface frontalize  INPUTS... -o OUT_DIR   [--light same|neutral --maps --texture --size] [options]
    latentface encode      INPUTS... -o OUT_DIR --engine ray [--workers N --address auto]
    latentface demo        [--port 7860 --share]
    latentface export-onnx --out DIR [--model NAME_OR_DIR --overwrite]
    latentface models      [--json]
    latentface mesh        INPUTS... -o face.obj|.ply|.glb|OUT_DIR [--view --format --texture photo|albedo]
    latentface video       VIDEO -o ROWS.npz [--every N | --fps F] [--disentangle --track-means]

INPUTS are image files and folders; folders are searched recursively for image files (by extension),
in sorted order. ``encode`` and ``disentangle`` write one ``.npz`` with one row per face (see
:func:`main`'s help for the keys); ``frontalize`` writes one PNG per face and ``OUT_DIR/index.csv``.

Streaming and resuming: the inputs are processed ``--chunk-size`` files at a time and each finished
chunk is written atomically to ``OUT.parts/`` (``OUT_DIR/.latentface-parts/`` for frontalize), so memory
stays flat however many files there are, and a run that stops half way, rerun with the same command,
skips the chunks already done. The final file is assembled from the parts, streamed, and is
byte-identical to the one an uninterrupted run writes. Parts of a different command (other inputs,
options or model) are discarded.

With ``--engine ray`` (extra ``[ray]``), ``encode`` and ``disentangle`` run on Ray
Data (:mod:`latentface_sdk.integrations.ray`): a local Ray with ``--workers`` model copies, or the cluster
at ``--address``; the rows, with the columns of the ``.npz``, are written as Parquet files into the folder
OUT_DIR. Ray retries failed tasks; an interrupted run starts again. ``latentface demo``
(extra ``[demo]``) starts the Gradio demo page
(:mod:`latentface_sdk.integrations.demo`). ``latentface export-onnx`` (extra ``[onnx]``)
writes the model as ONNX graphs (:mod:`latentface_sdk.deploy`). An extra installs with
``pip install 'latentface-sdk[EXTRA]'``, or from a checkout ``pip install -e '.[EXTRA]'``.

Exit codes: 0 every input gave a face; 1 some input failed (unreadable, or no face), the others are
written and the failures listed on stderr; 2 usage error (bad option, no input found, model cannot load);
130 interrupted (the finished chunks are kept).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from . import runfiles
from ._extras import install_hint
from ._version import __version__
from .atomic import atomic_write
from .errors import LatentFaceError

if TYPE_CHECKING:
    from .encoder import FaceEncoder

__all__ = ["main", "IMAGE_EXTENSIONS", "collect_inputs"]

#: File extensions searched for in folders (explicitly named files are taken whatever their extension).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)



class UsageError(Exception):
    """A problem with the command line or its inputs (exit code 2)."""


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputFile:
    """One input file: its path as it will be named in the outputs, and a base name for PNG outputs."""

    path: str
    base: str


def collect_inputs(args: Sequence[str]) -> list[InputFile]:
    """Files named on the command line, and the image files under named folders (recursive, sorted).

    Order: the arguments in order, each folder's files sorted by path; duplicates keep their first place.
    Raises :class:`UsageError` for a path that does not exist, for a named video file (pointing to
    ``latentface video``) and when nothing is found.
    """
    from .images import VIDEO_EXTENSIONS, video_kind

    found: list[InputFile] = []
    seen: set[str] = set()
    bases: set[str] = set()
    videos = 0  # video files in the named folders (not searched: said when no image is found)

    def add(path: Path, base: str) -> None:
        key = os.path.normpath(os.fspath(path))
        if key in seen:
            return
        seen.add(key)
        unique, k = base, 2
        while unique in bases:
            unique, k = f"{base}-{k}", k + 1
        bases.add(unique)
        found.append(InputFile(os.fspath(path), unique))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            # Every entry with an image extension that is not a folder: a dangling link or an unreadable
            # file is then reported as a failed item rather than skipped in silence.
            entries = [f for f in p.rglob("*") if not f.is_dir()]
            videos += sum(f.suffix.lower() in VIDEO_EXTENSIONS for f in entries)
            for f in sorted(f for f in entries if f.suffix.lower() in IMAGE_EXTENSIONS):
                add(f, f.relative_to(p).with_suffix("").as_posix())
        elif p.exists():
            kind = video_kind(p)
            if kind is not None:
                raise UsageError(f"{arg}: is a video file ({kind}), and this command reads images: "
                                 f"`latentface video {arg} -o rows.npz` encodes the faces of its frames")
            add(p, p.stem)
        else:
            raise UsageError(f"{arg}: no such file or folder")
    if not found:
        hint = (f"; {videos} video file(s) there: `latentface video VIDEO -o rows.npz` reads one"
                if videos else "")
        raise UsageError(
            f"no image files found in {', '.join(args)} (extensions searched in folders: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}){hint}"
        )
    return found


def _run_features(args: argparse.Namespace, enc: FaceEncoder, model_id: str, inputs: list[InputFile]) -> int:
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; {args.command} writes one .npz file")
    options: dict[str, Any] = {"detect": not args.no_detect, "faces": args.faces}
    if args.command == "encode" and args.answers:
        options["answers"] = True
    if args.command == "disentangle":
        options.update(seed=args.seed, steps=args.steps or enc.config.rdm.sample_steps, samples=args.samples,
                       init=args.init or enc.config.rdm.sample_init)
    key = runfiles.run_key(args.command, options, model_id, [f.path for f in inputs], args.chunk_size)
    paths = [f.path for f in inputs]
    parts_dir = out.with_name(out.name + ".parts")
    if out.is_file() and not parts_dir.exists() and runfiles.stored_key(out) == key:
        print(f"latentface {args.command}: {out} is already complete for these inputs", file=sys.stderr)
        return runfiles.summary_of(out, len(inputs)).report(args.command, str(out))
    runfiles.prepare_parts(parts_dir, key)
    parts: list[Path] = []
    with runfiles.progress_bar(len(inputs), args.command, args.progress) as bar:
        for index, start, stop in runfiles.chunks(len(inputs), args.chunk_size):
            part = parts_dir / f"part-{index:06d}.npz"
            parts.append(part)
            if not runfiles.part_done(part):
                chunk = paths[start:stop]
                if args.command == "encode" and args.answers:
                    # one pass: expressions() encodes too; the identity comes from its latents
                    x = enc.expressions(chunk, detect=not args.no_detect, faces=args.faces,
                                        batch_size=args.batch_size)
                    arrays = x.numpy()
                    arrays.pop("expression_classes")  # once per file, in the extra arrays below
                    arrays["identity_embedding"] = enc.identity_from_latents(x.encoding).numpy()
                elif args.command == "encode":
                    arrays = enc.encode(chunk, detect=not args.no_detect, faces=args.faces,
                                        batch_size=args.batch_size).numpy()
                else:
                    d = enc.disentangle(chunk, detect=not args.no_detect, faces=args.faces,
                                        batch_size=args.batch_size, seed=args.seed, steps=args.steps,
                                        num_samples=args.samples, init=args.init)
                    arrays = d.numpy()
                    # The two feature vectors are concatenations of stored arrays: not stored twice.
                    arrays.pop("verification_features")
                    arrays.pop("fer_features")
                arrays["source"] = arrays["source"] + start
                runfiles.save_part(part, arrays)
            bar.update(stop - start)
    extra = {
        "inputs": np.asarray(paths, dtype=str),
        "model": np.asarray(model_id),
        "run_key": np.asarray(key),
    }
    if options.get("answers"):
        extra["expression_classes"] = np.asarray(enc.config.heads.expression_classes, dtype=str)
        extra["identity_threshold"] = np.asarray(enc.identity_threshold)
    runfiles.assemble_npz(out, parts, extra)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return runfiles.summary_of(out, len(inputs)).report(args.command, str(out))


def _run_video(args: argparse.Namespace, enc: FaceEncoder, model_id: str) -> int:
    """``latentface video``: one row per face per sampled frame into one .npz (parts streamed to disk)."""
    from .video import VideoDecodeError, _av, empty_video

    try:
        _av()  # PyAV missing: say which extra, not a traceback
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        raise UsageError(f"{out}: video rows are written as one .npz file")
    video = Path(args.input)
    if video.is_dir():
        raise UsageError(f"{video}: is a folder; give one video file")
    parts_dir = out.with_name(out.name + ".parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    parts: list[Path] = []
    error: VideoDecodeError | None = None
    features: Literal["encode", "disentangle"] = "disentangle" if args.disentangle else "encode"
    last = None
    try:
        for part in enc.encode_video_parts(video, every=args.every, fps=args.fps, features=features,
                                           faces=args.faces, batch_size=args.batch_size,
                                           progress=args.progress, min_iou=args.min_iou, seed=args.seed,
                                           min_similarity=args.min_similarity,
                                           cut_threshold=None if args.no_cuts else args.cut_threshold):
            arrays = part.numpy()
            arrays.pop("verification_features", None)
            arrays.pop("fer_features", None)
            path = parts_dir / f"part-{len(parts):06d}.npz"
            runfiles.save_part(path, arrays)
            parts.append(path)
            last = part
    except VideoDecodeError as exc:
        error = exc
    if not parts:
        identity_dim = enc.config.heads.identity_dim if enc.heads.identity is not None else 0
        empty = empty_video(str(video), features, enc.config.autoencoder.latent_dim,
                            identity_dim=identity_dim).numpy()
        empty.pop("verification_features", None)
        empty.pop("fer_features", None)
        parts.append(parts_dir / "part-000000.npz")
        runfiles.save_part(parts[0], empty)
    extra = {"video": np.asarray(str(video)), "model": np.asarray(model_id),
             "frames_decoded": np.asarray(last.frames_decoded if last else 0),
             "frames_sampled": np.asarray(last.frames_sampled if last else 0),
             "start_time": np.asarray(last.start_time if last else 0.0),
             "decode_error": np.asarray("" if error is None else str(error))}
    runfiles.assemble_npz(out, parts, extra)
    shutil.rmtree(parts_dir, ignore_errors=True)
    with np.load(out, allow_pickle=False) as z:
        rows, tracks, shots = int(z["ok"].shape[0]), len(np.unique(z["track"])), len(np.unique(z["shot"]))
        if args.track_means and rows:
            from .video import track_means

            arrays = {k: z[k] for k in z.files if z[k].ndim >= 1 and z[k].shape[0] == rows}
            means = track_means(arrays)
            np.savez(out.with_name(out.stem + ".tracks.npz"), **means)  # type: ignore[arg-type]
    sampled = int(extra["frames_sampled"])
    print(f"latentface video: {video}: {sampled} frame(s) sampled, {rows} face row(s) in {tracks} track(s) "
          f"and {shots} shot(s) written to {out}")
    if error is not None:
        print(f"latentface video: error: {error} (the rows of the frames before it are written)",
              file=sys.stderr)
        return 1
    return 0


def _to_uint8(x: Any) -> np.ndarray:
    arr = x.nan_to_num(0.0).clamp(0, 1).mul(255).round().byte()
    if arr.ndim == 3:
        arr = arr.permute(1, 2, 0)
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
    return np.ascontiguousarray(arr.numpy())


def shading_png(shading: Any) -> np.ndarray:
    """A shading map ``(1, H, W)`` as the grey ``uint8`` image ``--maps`` writes: divided by its maximum,
    so that the brightest point is white and every ratio between two pixels is kept (shading is
    ``ambient + diffuse * max(0, n . l)``, often above 1: clipped to 1 it was a white square)."""
    s = shading.nan_to_num(0.0).clamp(min=0.0)
    return _to_uint8(s / s.max().clamp(min=1e-6))


#: Output names that mean "write this one image" for ``frontalize`` (anything else is a folder).
_IMAGE_OUTPUTS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _frontalize_one(args: argparse.Namespace, enc: FaceEncoder, inputs: list[InputFile]) -> int:
    """``-o face.png``: one input, its largest face, one image file (no index, no parts)."""
    out = Path(args.output)
    if len(inputs) != 1 or args.faces != "largest" or args.maps:
        raise UsageError(
            f"{out}: an output ending in {out.suffix} is one image, for one input and its largest face "
            f"(got {len(inputs)} input(s){', --faces all' if args.faces != 'largest' else ''}"
            f"{', --maps' if args.maps else ''}); give a folder to write several PNGs and index.csv"
        )
    r = enc.frontalize([inputs[0].path], detect=not args.no_detect, light=args.light, texture=args.texture,
                       size=args.size, return_tensors=True)
    if not bool(r.ok[0]):
        print(f"latentface frontalize: {inputs[0].path}: {r.errors[0]}; nothing written", file=sys.stderr)
        return 1
    from PIL import Image

    image = Image.fromarray(_to_uint8(r.tensor[0]))
    atomic_write(out, lambda fh: image.save(fh, format=_IMAGE_OUTPUTS[out.suffix.lower()]))
    side = r.tensor.shape[-1]
    print(f"latentface frontalize: wrote {out} ({side}x{side}, the face of {inputs[0].path} seen from the "
          "front)", file=sys.stderr)
    return 0


def _run_mesh(args: argparse.Namespace, enc: FaceEncoder, inputs: list[InputFile]) -> int:
    """``latentface mesh``: each face as a textured mesh (``.obj`` + ``.mtl`` + PNG, or ``.ply``)."""
    from .mesh import MESH_SUFFIXES

    out = Path(args.output)
    suffix = out.suffix.lower()
    single = suffix in MESH_SUFFIXES and not out.is_dir()
    if single and (len(inputs) != 1 or args.faces != "largest"):
        raise UsageError(f"{out}: an output ending in {out.suffix} is one mesh, for one input and its "
                         f"largest face (got {len(inputs)} input(s)); "
                         "give a folder to write one mesh per face")
    if not single and out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; give a .obj, .ply or .glb file for one face, or a folder")
    written, failed = 0, 0
    with runfiles.progress_bar(len(inputs), "mesh", args.progress) as bar:
        for start in range(0, len(inputs), args.chunk_size):
            chunk = inputs[start:start + args.chunk_size]
            r = enc.mesh([f.path for f in chunk], view=args.view, detect=not args.no_detect, faces=args.faces,
                         batch_size=args.batch_size, texture=args.texture)
            face_of: dict[int, int] = {}
            for i, mesh in enumerate(r.meshes):
                src = int(r.source[i])
                j = face_of.get(src, 0)
                face_of[src] = j + 1
                f = chunk[src]
                if mesh is None:
                    failed += 1
                    print(f"latentface mesh: {f.path}: {r.errors[i]}", file=sys.stderr)
                    continue
                stem = f.base if args.faces == "largest" else f"{f.base}_face{j}"
                target = out if single else out / f"{stem}.{args.format}"
                files = mesh.save(target)
                written += 1
                if single:
                    print(f"latentface mesh: wrote {', '.join(str(p) for p in files)} ({len(mesh.vertices)} "
                          f"vertices, {len(mesh.faces)} triangles; y up, facing +z)", file=sys.stderr)
            bar.update(len(chunk))
    if not single:
        print(f"latentface mesh: {written} mesh(es) in {out}, {failed} input(s) without a face or unreadable",
              file=sys.stderr)
    return 1 if failed else 0


def _run_frontalize(args: argparse.Namespace, enc: FaceEncoder, model_id: str,
                    inputs: list[InputFile]) -> int:
    out = Path(args.output)
    if out.suffix.lower() in _IMAGE_OUTPUTS and not out.is_dir():
        return _frontalize_one(args, enc, inputs)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; frontalize writes PNGs into a folder")
    options = {"detect": not args.no_detect, "faces": args.faces, "light": args.light, "maps": args.maps,
               "texture": args.texture, "size": args.size}
    key = runfiles.run_key("frontalize", options, model_id, [f.path for f in inputs], args.chunk_size)
    parts_dir = out / ".latentface-parts"
    runfiles.prepare_parts(parts_dir, key)
    parts: list[Path] = []
    with runfiles.progress_bar(len(inputs), "frontalize", args.progress) as bar:
        for index, start, stop in runfiles.chunks(len(inputs), args.chunk_size):
            part = parts_dir / f"part-{index:06d}.json"
            parts.append(part)
            if not runfiles.part_done(part):
                chunk = inputs[start:stop]
                r = enc.frontalize([f.path for f in chunk], detect=not args.no_detect, faces=args.faces,
                                   light=args.light, maps=args.maps, batch_size=args.batch_size,
                                   texture=args.texture, size=args.size, return_tensors=True)
                rows = []
                face_of: dict[int, int] = {}
                for i in range(len(r)):
                    src = int(r.source[i])
                    j = face_of.get(src, 0)
                    face_of[src] = j + 1
                    f = chunk[src]
                    stem = f.base if args.faces == "largest" else f"{f.base}_face{j}"
                    row: dict[str, Any] = {"input": f.path, "face": j, "ok": bool(r.ok[i]), "png": "",
                           "error": r.errors[i] or ""}
                    if row["ok"]:
                        row["png"] = stem + ".png"
                        runfiles.write_png(out / row["png"], _to_uint8(r.tensor[i]))
                        if args.maps:
                            assert r.albedo is not None and r.depth is not None
                            assert r.normal is not None and r.shading is not None
                            d = r.depth[i]
                            depth = 1.0 - (d - d.min()) / (d.max() - d.min()).clamp(min=1e-6)
                            runfiles.write_png(out / f"{stem}_albedo.png", _to_uint8(r.albedo[i]))
                            runfiles.write_png(out / f"{stem}_depth.png", _to_uint8(depth[None]))
                            runfiles.write_png(out / f"{stem}_normal.png",
                                               _to_uint8((r.normal[i] + 1.0) / 2.0))
                            runfiles.write_png(out / f"{stem}_shading.png", shading_png(r.shading[i]))
                    rows.append(row)
                data = json.dumps(rows).encode()
                atomic_write(part, lambda fh, data=data: fh.write(data))  # type: ignore[misc]
            bar.update(stop - start)
    all_rows: list[dict[str, Any]] = []
    for part in parts:
        all_rows.extend(json.loads(part.read_text()))

    def write_index(fh: BinaryIO) -> None:
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=["input", "face", "ok", "png", "error"], lineterminator="\n")
        w.writeheader()
        w.writerows(all_rows)
        fh.write(text.getvalue().encode("utf-8"))

    atomic_write(out / "index.csv", write_index)
    shutil.rmtree(parts_dir, ignore_errors=True)
    summary = runfiles.Summary(len(inputs), [r["input"] for r in all_rows], [bool(r["ok"]) for r in all_rows],
                      [str(r["error"]) for r in all_rows])
    return summary.report("frontalize", f"{out}/")


# ---------------------------------------------------------------------------------------------- main


def _run_ray(args: argparse.Namespace, inputs: list[InputFile], model_id: str) -> int:
    """``encode``/``disentangle`` on Ray Data: Parquet files in the folder ``args.output``; the workers load
    the model, whose id (``NAME@SHA256``) is ``model_id``."""
    out = Path(args.output)
    if out.is_file():
        raise UsageError(f"{out}: is a file; --engine ray writes Parquet files into a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out}: folder is not empty; --engine ray needs a new or empty folder")
    try:
        from .integrations.ray import encode_files, require_ray

        require_ray()
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    options: dict[str, Any] = {"detect": not args.no_detect, "faces": args.faces,
                               "revision": args.revision, "local_files_only": args.local_files_only or None}
    if args.command == "disentangle":
        options.update(steps=args.steps, seed=args.seed, num_samples=args.samples, init=args.init)
    operation: Literal["encode", "disentangle", "answers"] = (
        "answers" if args.command == "encode" and args.answers
        else "disentangle" if args.command == "disentangle" else "encode")
    encode_files([f.path for f in inputs], out, operation=operation, model=args.model,
                 workers=args.workers, address=args.address, batch_size=args.batch_size,
                 threads=args.threads or 1, device=args.device, progress=args.progress, model_id=model_id,
                 **options)
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["names", "ok", "errors"])
    summary = runfiles.Summary(len(inputs), [str(n) for n in table.column("names").to_pylist()],
                      [bool(v) for v in table.column("ok").to_pylist()],
                      [str(e) for e in table.column("errors").to_pylist()])
    return summary.report(args.command, str(out))


def _run_verify(args: argparse.Namespace, enc: FaceEncoder) -> int:
    """``latentface verify A B``: one sentence (or JSON) with the cosine and the decision."""
    from .images import video_kind

    for path in (args.a, args.b):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
        kind = video_kind(path)
        if kind is not None:
            raise UsageError(f"{path}: is a video file ({kind}); verify compares two photos (`latentface "
                             f"video {path} -o rows.npz` gives the identity embedding of every face in it)")
    try:
        v = enc.verify([args.a], [args.b], threshold=args.threshold, batch_size=args.batch_size)
    except LatentFaceError as exc:
        raise UsageError(str(exc)) from exc
    ok = bool(v.ok[0])
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "ok": ok, "error": v.errors[0],
                          "similarity": float(v.similarity[0]) if ok else None,
                          "same_person": bool(v.same_person[0]), "threshold": v.threshold}))
    elif ok:
        verdict = "the same person" if bool(v.same_person[0]) else "two different people"
        print(f"{args.a} vs {args.b}: cosine {float(v.similarity[0]):.3f} -> {verdict} "
              f"(threshold {v.threshold:.3f})")
    else:
        print(f"latentface verify: {v.errors[0]}", file=sys.stderr)
    return 0 if ok else 1


def _run_demo(args: argparse.Namespace) -> int:
    """``latentface demo``: build the Gradio page and serve it until interrupted."""
    try:
        from .integrations.demo import build_demo, require_gradio

        require_gradio()
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    try:
        app = build_demo(args.model)
    except (LatentFaceError, ValueError) as exc:
        raise UsageError(f"cannot load the model: {exc}") from exc
    app.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def _run_models(args: argparse.Namespace) -> int:
    """``latentface models``: the bundled models and those in the local Hub cache, with their cards'
    summaries."""
    from .catalog import list_pretrained

    models = list_pretrained()
    if args.json:
        print(json.dumps([{"name": m.name, "source": m.source, "path": str(m.path), "checksum": m.checksum,
                           "summary": m.summary} for m in models], indent=2))
        return 0
    if not models:
        print("no models: none bundled and none in the Hugging Face cache")
        return 0
    width = max(len(m.name) for m in models)
    for m in models:
        print(f"{m.name:<{width}}  {m.source:<9}  {m.summary}")
    return 0


def _run_export_onnx(args: argparse.Namespace) -> int:
    """``latentface export-onnx``: the model's encoders and disentangle path as ONNX graphs in one folder."""
    try:
        from .deploy.export import export_onnx, require

        require("onnx")
        require("onnxscript")
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    try:
        done = export_onnx(args.model, args.out, overwrite=args.overwrite)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from exc
    except (LatentFaceError, ValueError) as exc:
        raise UsageError(f"cannot export the model: {exc}") from exc
    card = done.config
    print(f"latentface export-onnx: {card['model']['name']} -> {done.folder} ({ENCODER_SUMMARY}; opset "
          f"{card['opset']})", file=sys.stderr)
    return 0


#: What ``export-onnx`` says it wrote.
ENCODER_SUMMARY = "encoder.onnx, disentangle.onnx, config.json, README.md"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _view_size(text: str) -> int:
    from .photo_views import MAX_SIZE

    value = _positive(text)
    if not 16 <= value <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"expected a size from 16 to {MAX_SIZE} pixels, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``latentface``."""
    parser = argparse.ArgumentParser(
        prog="latentface",
        description="Encode, disentangle or frontalize the faces in image files and folders (LatentFace).",
        epilog="examples:\n"
        "  latentface encode photos/ -o features.npz\n"
        "  latentface disentangle a.jpg b.jpg -o identity.npz --faces all\n"
        "  latentface frontalize photo.jpg -o front.png\n"
        "  latentface mesh photo.jpg -o face.obj\n"
        "  latentface video clip.mp4 -o rows.npz --fps 5\n"
        "  latentface export-onnx --out latentface-onnx/\n\n"
        "CPU threads: each batch uses the cores that other running processes leave free, and OpenMP\n"
        "threads sleep rather than spin while they wait (OMP_WAIT_POLICY=PASSIVE unless you set it). On a\n"
        "server with several workers, give each worker --threads 1 (or OMP_NUM_THREADS=1).\n\n"
        "Exit codes: 0 all inputs gave a face, 1 some failed (listed), 2 usage error, 130 interrupted.\n"
        "An interrupted run resumes when rerun with the same command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"latentface-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str,
                examples: Sequence[str]) -> argparse.ArgumentParser:
        """A sub-command whose ``--help`` ends with its example command lines."""
        return sub.add_parser(name, help=summary, description=description,
                              epilog="examples:\n" + "\n".join("  " + line for line in examples),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def model_options(p: argparse.ArgumentParser, model_help: str, hub: bool) -> None:
        """Which model, where: --model (with --revision and --local-files-only for Hub ids when ``hub``),
        --device and --batch-size."""
        p.add_argument("--model", default=None, help=model_help)
        if hub:
            p.add_argument("--revision", default=None,
                           help="Hub revision (branch, tag or commit) for a Hub id")
            p.add_argument("--local-files-only", action="store_true",
                           help="never use the network for Hub ids")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
        p.add_argument("--batch-size", type=_positive, default=64, help="faces per network call (default 64)")

    def run_options(p: argparse.ArgumentParser, threads_help: str) -> None:
        """How it runs on this machine: --threads and --no-progress (the progress bar)."""
        p.add_argument("--threads", type=_positive, default=None, help=threads_help)
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    def image_command(name: str, summary: str, description: str, examples: Sequence[str],
                      out_help: str) -> argparse.ArgumentParser:
        """A sub-command that reads image files and folders: INPUT..., -o, the model and run options and
        the face options."""
        p = command(name, summary, description, examples)
        p.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="image files and folders (searched recursively)")
        p.add_argument("-o", "--output", required=True, help=out_help)
        model_options(p, "bundled model name, model folder or Hugging Face Hub id (default: the bundled "
                      "default)", hub=True)
        p.add_argument("--chunk-size", type=_positive, default=256,
                       help="files per saved part: the unit of resuming (default 256)")
        p.add_argument("--no-detect", action="store_true",
                       help="inputs are already face crops: take the centred square, no MTCNN")
        p.add_argument("--faces", choices=("largest", "all"), default="largest",
                       help="the largest face of each image (default) or every face, one row each")
        run_options(p, "torch CPU threads (default: the cores other running processes leave free, checked "
                    "every batch; on a server with several workers, 1 per worker)")
        return p

    def engine_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process, resumable .npz (default); ray: Ray Data workers, Parquet "
                       f"files in a folder (extra [ray]: {install_hint('ray')})")
        p.add_argument("--workers", type=_positive, default=None,
                       help="--engine ray: model copies at once (default: the cluster's CPUs / threads)")
        p.add_argument("--address", default=None,
                       help="--engine ray: the Ray cluster to join (auto, ray://HEAD:10001; "
                       "default: a local Ray)")

    enc = image_command("encode", "texture, shape, pose and light latents to one .npz",
                        "Write texture (N,256), shape (N,256), pose (N,6), light (N,4), boxes, scores, ok, "
                        "errors, names and source (row -> input index) to one .npz.",
                        ["latentface encode photos/ -o features.npz",
                         "latentface encode group.jpg --faces all -o faces.npz",
                         "latentface encode crops/ --no-detect -o crops.npz   # already 64x64 face crops",
                         "latentface encode photos/ --answers -o faces.npz   # + identity, expression",
                         "latentface encode photos/ -o features/ --engine ray --workers 2   # Parquet files"],
                        "the .npz file to write (with --engine ray: a folder for Parquet files)")
    engine_options(enc)
    enc.add_argument("--answers", action="store_true",
                     help="also identity_embedding (unit vectors for cosine), expression_probabilities and "
                          "expression (the top label) per face, from the model's heads")
    dis = image_command("disentangle", "identity and expression latents to one .npz",
                        "Write the encode arrays plus identity_texture, identity_shape, expression_texture, "
                        "expression_shape (N,256) to one .npz. Verification features are [identity_texture, "
                        "identity_shape, texture, shape]; expression features [expression_texture, "
                        "expression_shape, texture, shape].",
                        ["latentface disentangle photos/ -o identity.npz",
                         "latentface disentangle a.jpg b.jpg -o identity.npz --init noise --samples 8",
                         "latentface disentangle photos/ -o identity/ --engine ray --address auto"],
                        "the .npz file to write (with --engine ray: a folder for Parquet files)")
    engine_options(dis)
    dis.add_argument("--seed", type=int, default=0, help="seed of the diffusion noise (default 0)")
    dis.add_argument("--steps", type=_positive, default=None,
                     help="DDIM steps (default: the model's rdm.sample_steps, 5)")
    dis.add_argument("--init", choices=("noise", "zero"), default=None,
                     help="DDIM start: Gaussian noise or z_T = 0 (default: the model's rdm.sample_init)")
    dis.add_argument("--samples", type=_positive, default=1, help="identity samples averaged (default 1)")
    front = image_command("frontalize", "frontal re-renders as PNGs",
                          "Write one PNG per face (canonical pose; 64x64 or --size) and index.csv into a "
                          "folder; or, when OUT ends in .png/.jpg/.webp/.bmp, the largest face of one input "
                          "as that one image.",
                          ["latentface frontalize photo.jpg -o front.png",
                           "latentface frontalize photo.jpg -o front.png --size 256",
                           "latentface frontalize photos/ -o frontal/ --light neutral --maps"],
                          "the folder to write PNGs into, or one image file (.png, .jpg, ...) for one input")
    front.add_argument("--light", choices=("same", "neutral"), default="same",
                       help="the input's estimated light (default) or a neutral frontal light")
    front.add_argument("--maps", action="store_true",
                       help="also write albedo, depth (near = bright, stretched to its range), normal and "
                            "shading PNGs (64x64); the shading is divided by its maximum (white: the "
                            "brightest point; ratios between pixels kept), as the demo shows it")
    front.add_argument("--texture", choices=("photo", "albedo"), default="photo",
                       help="the face's colours from the photo itself (default) or the decoded albedo, "
                            "shaded")
    front.add_argument("--size", type=_view_size, default=None,
                       help="side of the frontal view in pixels, 16 to 1024 (default 64; e.g. 256, read "
                            "from the photo at that resolution)")
    mesh = image_command("mesh", "each face as a textured 3D mesh (.obj + .mtl + .png, .ply or .glb)",
                         "Reconstruct each face's depth and texture and write it as a textured mesh of the "
                         "face region: y up, facing +z, in the renderer's depth units. A .obj comes with its "
                         ".mtl and the texture as a PNG (256x256 from the photo, or the 64x64 albedo); a "
                         ".ply carries vertex colours; a .glb embeds the texture.",
                         ["latentface mesh photo.jpg -o face.obj",
                          "latentface mesh photos/ -o meshes/ --format ply --view photo"],
                         "one .obj, .ply or .glb file (one input, its largest face), or a folder for one "
                         "mesh per face")
    mesh.add_argument("--view", choices=("frontal", "photo"), default="frontal",
                      help="frontal (default) or turned by the head rotation seen in the photo")
    mesh.add_argument("--format", choices=("obj", "ply", "glb"), default="obj",
                      help="file type in a folder (default obj)")
    mesh.add_argument("--texture", choices=("photo", "albedo"), default="photo",
                      help="texture from the photo itself, 256x256 (default), or the decoded albedo")
    vid = command("video", "every face of a video file, frame by frame, to one .npz (extra [video])",

                  "Decode a video file (PyAV), keep every N-th frame or F frames per second, and write one "
                  "row per face per sampled frame: frame, time (s from the first frame; the stream's offset "
                  "is start_time), shot (a new one after each cut), track (one person within one shot: "
                  "faces linked across frames by box overlap and identity, every track ended at a cut), "
                  "identity_embedding (the unit vector the faces were linked by, when the weights have an "
                  "identity head), boxes and the encode (or disentangle) arrays. A file that stops decoding "
                  "part way keeps the rows before it (exit code 1, the file and frame named on stderr). "
                  f"Needs the [video] extra: {install_hint('video')}.",
                  ["latentface video clip.mp4 -o rows.npz --fps 5",
                   "latentface video interview.mov -o rows.npz --every 10 --disentangle --track-means",
                   "latentface video concert.mp4 -o rows.npz --fps 5 --min-similarity 0.3 "
                   "--cut-threshold 0.8"])
    vid.add_argument("input", metavar="VIDEO", help="one video file (any format FFmpeg reads)")
    vid.add_argument("-o", "--output", required=True, help="the .npz file to write")
    sampling = vid.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=_positive, default=None, help="keep every N-th frame")
    sampling.add_argument("--fps", type=float, default=None, help="keep about F frames per second")
    vid.add_argument("--faces", choices=("largest", "all"), default="all",
                     help="every face of a frame (default) or the largest")
    vid.add_argument("--disentangle", action="store_true", help="also identity and expression latents")
    vid.add_argument("--seed", type=int, default=0, help="seed of the diffusion noise with --disentangle")
    vid.add_argument("--min-iou", type=float, default=0.3,
                     help="box overlap that continues a track (default 0.3)")
    vid.add_argument("--min-similarity", type=float, default=None,
                     help="identity cosine to a track's faces that continues it (default: the model's "
                          "identity threshold; weights without an identity head link by boxes alone)")
    cuts = vid.add_mutually_exclusive_group()
    cuts.add_argument("--cut-threshold", type=float, default=1.0,
                      help="frame change that is a cut, ending every track (default 1.0; lower finds more "
                           "cuts)")
    cuts.add_argument("--no-cuts", action="store_true", help="no shot-cut detection (one shot)")
    vid.add_argument("--track-means", action="store_true",
                     help="also OUT.tracks.npz: one row per track with its shot, mean features, start and "
                          "end")
    model_options(vid, "bundled model name, model folder or Hub id", hub=False)
    run_options(vid, "torch CPU threads (default: free cores)")
    ver = command("verify", "are two photos the same person? (cosine of identity embeddings)",
                  "Find the largest face of each photo, compare their identity embeddings and print the "
                  "cosine similarity and the decision at the model's threshold (chosen on training "
                  "identities; its error rates are in the model card). Exit code 0 when both faces were "
                  "found, 1 when one was not.",
                  ["latentface verify a.jpg b.jpg", "latentface verify a.jpg b.jpg --threshold 0.5 --json"])
    ver.add_argument("a", help="the first image file")
    ver.add_argument("b", help="the second image file")
    ver.add_argument("--threshold", type=float, default=None,
                     help="cosine at and above which the two are called the same person (default: the "
                          "model's)")
    ver.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")
    model_options(ver, "bundled model name, model folder or Hugging Face Hub id (default: the bundled "
                       "model)", hub=True)
    run_options(ver, "CPU threads (default: the cores other processes leave free)")
    ver.set_defaults(progress=False)

    demo = command("demo", "the Gradio demo page (extra [demo])",
                   "Start a web page where a photo is uploaded and its face found, albedo, depth, shading, "
                   f"frontal view, yaw sweep and latents are shown. Needs the [demo] extra: "
                   f"{install_hint('demo')}.",
                   ["latentface demo", "latentface demo --port 8080 --model my-model/"])
    demo.add_argument("--model", default=None, help="bundled model name, model folder or Hub id")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    demo.add_argument("--port", type=_positive, default=7860, help="port (default 7860)")
    demo.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    models = command("models", "list the bundled models and those in the local Hub cache",
                     "List the models FaceEncoder.from_pretrained can load without the network: the bundled "
                     "ones and the Hub models in the local cache, each with the first sentence of its model "
                     "card.",
                     ["latentface models", "latentface models --json"])
    models.add_argument("--json", action="store_true",
                        help="name, source, path, checksum and summary as JSON")
    onnx = command("export-onnx", "the encoders and the disentangle path as ONNX graphs (extra [onnx])",
                   "Write encoder.onnx (uint8 64x64 crops -> texture, shape, pose, light), disentangle.onnx "
                   "(latents and noise -> identity and expression, DDIM steps unrolled), config.json and "
                   f"README.md (inputs, outputs, preprocessing) into one folder. Needs the [onnx] extra: "
                   f"{install_hint('onnx')}.",
                   ["latentface export-onnx --out latentface-onnx/",
                    "latentface export-onnx --model my-model/ --out my-model-onnx/ --overwrite"])
    onnx.add_argument("--model", default=None,
                      help="bundled model name, model folder or Hub id (default: bundled)")
    onnx.add_argument("--out", required=True,
                      help="the folder to write (new, empty, or an export to replace)")
    onnx.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``latentface``; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before torch loads OpenMP: waiting threads sleep instead of spinning, which keeps the command fast
    # beside other busy processes (benchmarks/contention.py, docs/benchmarks.md). Your own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        if args.command == "demo":
            return _run_demo(args)
        if args.command == "models":
            return _run_models(args)
        if args.command == "export-onnx":
            return _run_export_onnx(args)
        inputs = collect_inputs(args.inputs) if args.command not in ("video", "verify") else []
        from . import hub
        from .encoder import FaceEncoder
        from .model_folder import model_id

        try:
            folder = hub.resolve(args.model, revision=getattr(args, "revision", None),
                                 local_files_only=True if getattr(args, "local_files_only", False) else None)
            on_ray = getattr(args, "engine", "local") == "ray"
            if on_ray:  # each Ray worker loads the model; here only its name and digest are needed
                from .config import ModelConfig

                ray_config = ModelConfig.load(folder)
            else:
                enc = FaceEncoder.from_pretrained(folder, device=args.device, threads=args.threads or "auto")
        except (LatentFaceError, ValueError) as exc:
            raise UsageError(f"cannot load the model: {exc}") from exc
        if on_ray:
            print(f"latentface {args.command}: {len(inputs)} input(s), model {ray_config.name} on Ray",
                  file=sys.stderr)
            return _run_ray(args, inputs, model_id(ray_config, folder))
        name = model_id(enc.config, folder)
        if args.command == "video":
            return _run_video(args, enc, name)
        if args.command == "verify":
            return _run_verify(args, enc)
        print(f"latentface {args.command}: {len(inputs)} input(s), model {enc.config.name} on {enc.device}",
              file=sys.stderr)
        if args.command == "frontalize":
            return _run_frontalize(args, enc, name, inputs)
        if args.command == "mesh":
            return _run_mesh(args, enc, inputs)
        return _run_features(args, enc, name, inputs)
    except UsageError as exc:
        print(f"latentface: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentface: interrupted; finished chunks are kept: rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
