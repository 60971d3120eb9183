"""Peak memory and time of the ``latentface encode`` command for N = 1k, 2k, 5k, 10k images.

Each N runs the real command in a fresh process under ``/usr/bin/time -v`` (peak resident set size of
the process, wall time)::

    latentface encode $TMPDIR/latentface-bench/inputs-N -o $TMPDIR/latentface-bench/out-N.npz \\
        --no-detect --threads T --no-progress [--model FOLDER]

The inputs are folders of N symbolic links to celeba10k images (``../shared/data``; nothing is copied).
``--no-detect`` makes the run mostly decode + encode: with MTCNN, 10,000 images would take too long
on this machine; detection keeps no state between chunks, so it does not change how memory grows.
A tiny run (N = 16) gives the fixed part (interpreter, torch, model). Goal: peak memory independent
of N (the command streams ``--chunk-size`` files at a time); time linear in N (least-squares fit
``t = a + b N`` and each point's deviation from it).

Usage::

    python benchmarks/memory_scaling.py --threads 2 --repeats 1 --json benchmarks/results/memory.json
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "latentface-bench"
SIZES = (1000, 2000, 5000, 10000)
GOAL_GROWTH = 0.10  # peak RSS at the largest N at most 10% above the smallest N


def input_folder(data: Path, n: int) -> Path:
    """``WORK/inputs-n``: n symbolic links to the first n celeba10k images (made once)."""
    folder = WORK / f"inputs-{n}"
    if folder.is_dir() and len(os.listdir(folder)) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in _bench.celeba_paths(data, n):
        (folder / p.name).symlink_to(p)
    return folder


def model_args() -> tuple[list[str], str]:
    """``--model`` for the command: the bundled default when present, else a saved random model."""
    if (_bench.REPO_ROOT / "weights" / _bench.BUNDLED / "config.json").exists():
        return [], f"bundled weights `{_bench.BUNDLED}`"
    folder = WORK / "random-model"
    if not (folder / "config.json").exists():
        import torch

        from latentface_sdk import FaceEncoder

        torch.manual_seed(0)
        FaceEncoder.from_config().save_pretrained(folder)
    return (["--model", str(folder)],
            "random weights (FaceEncoder.from_config(ModelConfig()) saved to a folder)")


def run_cli(inputs: Path, threads: int, extra: list[str]) -> dict[str, Any]:
    """One ``latentface encode`` process under ``/usr/bin/time -v``: peak RSS (MiB), wall seconds, exit
    code."""
    out = WORK / f"out-{inputs.name}.npz"
    for p in (out, Path(str(out) + ".parts")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    exe = str(Path(sys.executable).parent / "latentface")
    cmd = ["/usr/bin/time", "-v", exe, "encode", str(inputs), "-o", str(out), "--no-detect",
           "--threads", str(threads), "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rows = 0
    import numpy as np

    with np.load(out, allow_pickle=False) as z:
        rows = int(z["ok"].sum())
    out.unlink()
    return {"peak_rss_mib": int(m.group(1)) / 1024.0, "seconds": wall, "faces_written": rows}


def import_rss(module: str) -> float:
    """Peak RSS (MiB) of a Python process that only imports ``module`` (where the fixed part comes from)."""
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", f"import {module}"],
                          capture_output=True, text=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return int(m.group(1)) / 1024.0 if m and proc.returncode == 0 else float("nan")


def run(args: Any) -> dict[str, Any]:
    import numpy as np

    _bench.set_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    extra, model_desc = model_args()
    sizes = (100, 200, 400) if args.quick else SIZES
    base = run_cli(input_folder(args.data, 16), args.threads, extra)
    print(f"N=16 (fixed part): {base['peak_rss_mib']:.0f} MiB, {base['seconds']:.1f} s", flush=True)
    imports = {m: import_rss(m) for m in ("numpy", "torch", "latentface_sdk.encoder", "facenet_pytorch")}
    print("peak RSS of importing: " + ", ".join(f"{m} {v:.0f} MiB" for m, v in imports.items()), flush=True)
    points: list[dict[str, Any]] = []
    for n in sizes:
        folder = input_folder(args.data, n)
        runs = [run_cli(folder, args.threads, extra) for _ in range(args.repeats)]
        assert all(r["faces_written"] == n for r in runs)
        point: dict[str, Any] = {"n": n, "peak_rss_mib": _bench.stats([r["peak_rss_mib"] for r in runs]),
                 "seconds": _bench.stats([r["seconds"] for r in runs]),
                 "images_per_s": _bench.rate(n, [r["seconds"] for r in runs])}
        points.append(point)
        print(f"N={n}: peak RSS {_bench.fmt(point['peak_rss_mib'], 0)} MiB, {_bench.fmt(point['seconds'])} "
              f"s, {point['images_per_s']['median']:.0f} img/s", flush=True)
    ns = np.array([p["n"] for p in points], dtype=float)
    ts = np.array([p["seconds"]["median"] for p in points])
    slope, intercept = np.polyfit(ns, ts, 1)
    fit = {"intercept_s": float(intercept), "seconds_per_image": float(slope),
           "max_relative_deviation": float(np.max(np.abs(ts - (intercept + slope * ns)) / ts))}
    rss = [p["peak_rss_mib"]["median"] for p in points]
    growth = rss[-1] / rss[0] - 1.0
    print(f"time = {intercept:.2f} s + {slope * 1000:.2f} ms x N (max deviation "
          f"{fit['max_relative_deviation']:.1%}); peak RSS growth {sizes[0]} -> {sizes[-1]}: {growth:+.1%}",
          flush=True)
    return {
        "benchmark": "memory",
        "command": _bench.command(),
        "cli_command": "latentface encode DIR -o OUT.npz --no-detect --threads T --no-progress" + (
            " --model FOLDER" if extra else ""),
        "machine": _bench.machine(args.threads),
        "model": model_desc,
        "fixed_part_n16": base,
        "import_peak_rss_mib": imports,
        "points": points,
        "linear_fit": fit,
        "goal": {"what": f"peak RSS independent of N (growth from N={sizes[0]} to N={sizes[-1]} <= "
                         f"{GOAL_GROWTH:.0%})",
                 "achieved": growth, "target": GOAL_GROWTH, "met": growth <= GOAL_GROWTH},
    }


def main(argv: list[str] | None = None) -> int:
    return _bench.goal_main(__doc__, run, "+.1%", argv, repeats=1)

if __name__ == "__main__":
    sys.exit(main())
