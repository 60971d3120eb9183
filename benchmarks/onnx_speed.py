"""ONNX Runtime against PyTorch on this CPU: milliseconds per face for encode and disentangle.

For each backend (``torch``: the bundled model as ``FaceEncoder`` runs it, channels-last weights;
``onnx``: its ``latentface export-onnx`` graphs in onnxruntime), thread count (1, 2) and load (idle, or
beside one competing single-thread torch matmul loop, like another model server), a fresh process times
on pre-cropped celeba10k faces:

* ``network``: the networks alone, the figure to set beside 3DDFA_V2's 2.25 ms per face (its ONNX
  encoder on 2 threads): ``encode`` = the four encoders on uint8 crops; ``disentangle`` = encoders plus
  both RDMs (5 DDIM steps, ``z_T = 0``);
* ``api``: the SDK call on the same crops (``encode(crops, detect=False)`` / ``disentangle(...)`` of
  ``FaceEncoder`` and ``OnnxFaceEncoder``), which adds the conversion of inputs and the typed result.

At batch 1 (one face per call, 64 calls) and batch 32 (128 faces). Each figure is the median of
``--repeats`` runs after a warm-up, as ms per face.

Usage::

    python benchmarks/onnx_speed.py --json benchmarks/results/onnx_speed.json
    python benchmarks/onnx_speed.py --quick            # 1 repeat, idle only: check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

BACKENDS = ("torch", "onnx")
TASKS = ("encode", "disentangle")
LEVELS = ("network", "api")
BATCHES = (1, 32)
#: The published figure the issue compares with (3DDFA_V2 README: ONNX encoder, 2 CPU threads).
REFERENCE_MS = {"3DDFA_V2 (ONNX, 2 threads)": 2.25}


def _calls(fn: Any, crops: Any, batch: int) -> Any:
    def run() -> None:
        for s in range(0, len(crops), batch):
            fn(crops[s:s + batch])
    return run


def worker(backend: str, threads: int, faces: int, repeats: int, data: Path,
           onnx_dir: Path) -> dict[str, Any]:
    """Time every (task, level, batch) in this process; returns ms per face of each timed run."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    crops = _bench.face_crops(data, faces)
    zeros = np.zeros((32, 256), dtype=np.float32)
    fns: dict[tuple[str, str], Any] = {}
    if backend == "torch":
        from latentface_sdk import FaceEncoder
        from latentface_sdk.pipeline import crops_to_input

        enc = FaceEncoder.from_pretrained(device="cpu", threads=threads)

        def t_encode(c: Any) -> Any:
            with torch.inference_mode():
                return enc.autoencoder.encode(crops_to_input(c, torch.device("cpu"), torch.float32))

        def t_disentangle(c: Any) -> Any:
            lat = t_encode(c)
            with torch.inference_mode():
                z = torch.zeros(lat.texture.shape)
                return enc.rdm_texture.sample(lat.texture, noise=z), enc.rdm_shape.sample(lat.shape, noise=z)

        fns = {("encode", "network"): t_encode, ("disentangle", "network"): t_disentangle,
               ("encode", "api"): lambda c: enc.encode(list(c), detect=False, batch_size=32),
               ("disentangle", "api"): lambda c: enc.disentangle(list(c), detect=False, batch_size=32,
                                                                 init="zero")}
    else:
        from latentface_sdk import OnnxFaceEncoder

        oenc = OnnxFaceEncoder(onnx_dir, threads=threads)

        def o_encode(c: Any) -> Any:
            return oenc.encode_crops(c, 32)

        def o_disentangle(c: Any) -> Any:
            lat = oenc.encode_crops(c, 32)
            z = zeros[: len(c)]
            return oenc.identity(lat.texture.numpy(), lat.shape.numpy(), z, z)

        fns = {("encode", "network"): o_encode, ("disentangle", "network"): o_disentangle,
               ("encode", "api"): lambda c: oenc.encode(list(c), detect=False, batch_size=32),
               ("disentangle", "api"): lambda c: oenc.disentangle(list(c), detect=False, batch_size=32,
                                                                  init="zero")}
    rows = []
    for (task, level), fn in fns.items():
        for batch in BATCHES:
            n = min(faces, 64) if batch == 1 else faces
            seconds = _bench.time_runs(_calls(fn, crops[:n], batch), repeats)
            rows.append({"task": task, "level": level, "batch": batch, "faces": n,
                         "ms_per_face": [1000.0 * s / n for s in seconds]})
    return {"rows": rows, "torch_threads": torch.get_num_threads()}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def measure(args: argparse.Namespace, onnx_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for load in args.loads:
        with _bench.competing(load):
            for threads in args.threads_list:
                for backend in BACKENDS:
                    worker = ["--worker", backend, "--threads", str(threads), "--onnx-dir", str(onnx_dir)]
                    result = _bench.run_worker(__file__, worker, args, _env(), f"{backend}/{threads}")
                    for r in result["rows"]:
                        row = {"backend": backend, "threads": threads, "load": load, **r,
                               "median_ms": statistics.median(r["ms_per_face"])}
                        rows.append(row)
                        print(f"load {load} threads {threads} {backend:5s} {r['task']:12s} {r['level']:8s} "
                              f"batch {r['batch']:2d}: {row['median_ms']:.2f} ms/face", flush=True)
    return rows


def table(rows: list[dict[str, Any]], level: str) -> str:
    """Markdown: one row per (task, batch, threads, load), PyTorch and ONNX Runtime ms per face side by
    side."""
    out = ["| task | batch | threads | load | PyTorch ms/face | ONNX Runtime ms/face | ONNX / PyTorch |",
           "|---|---:|---:|---|---:|---:|---:|"]
    keys = dict.fromkeys((r["task"], r["batch"], r["threads"], r["load"]) for r in rows
                         if r["level"] == level)
    for task, batch, threads, load in keys:
        got = {r["backend"]: r["median_ms"] for r in rows if r["level"] == level and (r["task"], r["batch"],
               r["threads"], r["load"]) == (task, batch, threads, load)}
        t, o = got.get("torch"), got.get("onnx")
        ratio = f"{o / t:.2f}" if t and o else ""
        load_name = "idle" if load == 0 else f"{load} busy"
        out.append(f"| {task} | {batch} | {threads} | {load_name} | {t:.2f} | {o:.2f} | {ratio} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = _bench.busy_parser(__doc__.splitlines()[0], repeats=5, loads="0,1")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--quick", action="store_true", help="32 faces, 1 repeat, idle, 1 thread")
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--onnx-dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, int(args.threads), args.faces, args.repeats, args.data,
                                args.onnx_dir)))
        return 0
    if args.quick:
        args.faces, args.repeats, args.loads, args.threads = 32, 1, "0", "1"
    args.loads = [int(x) for x in str(args.loads).split(",")]
    args.threads_list = [int(x) for x in str(args.threads).split(",")]
    from latentface_sdk import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(None, Path(tmp) / "onnx")
        rows = measure(args, Path(tmp) / "onnx")
    result = {"rows": rows, "faces": args.faces, "repeats": args.repeats, "reference_ms": REFERENCE_MS,
              "machine": _bench.machine(0), "command": _bench.command()}
    for level in LEVELS:
        print(f"\n{level}:\n" + table(rows, level))
    _bench.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
