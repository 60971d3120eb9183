"""Feature extraction on Ray Data beside the one-machine command: images/s with 1 and 2 Ray workers.

Each configuration is one whole command run in a fresh process (``latentface encode FILES -o OUT``),
timed over ``--images`` photos (2000) and over ``--small`` photos (16); the difference gives the marginal rate
(images/s once started) and the fixed cost (Python, model loading, and for Ray starting the local
cluster and its workers):

* ``cli``: the one-machine command (``--threads`` per its default: the free cores);
* ``ray-1``, ``ray-2``: ``--engine ray --workers 1|2`` (one torch thread per worker).

Photos: the first ``--images`` CelebA images of ``../shared/data/celeba10k`` (sorted names), with
MTCNN detection as users run it. The cost per million images is the marginal rate turned into
CPU-core hours (``workers / rate``), and into money at ``--usd-per-core-hour`` (an assumption: say
yours). Run it on an otherwise idle machine::

    python benchmarks/ray_extract.py --json benchmarks/results/ray_extract.json
    python benchmarks/ray_extract.py --quick        # 24 and 8 images: check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS: dict[str, list[str]] = {
    "cli": [],
    "ray-1": ["--engine", "ray", "--workers", "1", "--threads", "1"],
    "ray-2": ["--engine", "ray", "--workers", "2", "--threads", "1"],
}


def photos(data: Path, count: int) -> list[str]:
    """The first ``count`` CelebA images (sorted by name)."""
    folder = data / "celeba10k" / "images"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".png"})[:count]
    if len(files) < count:
        raise SystemExit(f"{folder}: only {len(files)} images, {count} asked for")
    return [str(p) for p in files]


def run_once(config: str, files: list[str], work: Path) -> float:
    """Seconds of one whole ``latentface encode`` command over ``files``."""
    out = work / (f"{config}.npz" if config == "cli" else f"{config}-parquet")
    shutil.rmtree(out, ignore_errors=True)
    if out.is_file():
        out.unlink()
    cmd = [sys.executable, "-m", "latentface_sdk.cli", "encode", *files, "-o", str(out), "--no-progress",
           *CONFIGS[config]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: some photo had no face, which is a result, not a failure
        raise RuntimeError(f"{config} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--images", type=int, default=2000, help="photos of the long run (default 2000)")
    parser.add_argument("--small", type=int, default=16, help="photos of the short run (default 16)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {list(CONFIGS)}")
    parser.add_argument("--usd-per-core-hour", type=float, default=0.04,
                        help="price of one CPU core for an hour, for the cost column (default 0.04)")
    parser.add_argument("--quick", action="store_true", help="24 and 8 photos")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.small = 24, 8
    files = photos(args.data, args.images)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ray-extract-") as tmp:
        for config in args.configs.split(","):
            small = run_once(config, files[:args.small], Path(tmp))
            large = run_once(config, files, Path(tmp))
            rate = (len(files) - args.small) / max(large - small, 1e-9)
            cores = 2.0 if config in ("cli", "ray-2") else 1.0  # cli: the free cores (both, when idle)
            core_hours = 1e6 / rate * cores / 3600
            results[config] = {"seconds_small": round(small, 2), "seconds_large": round(large, 2),
                               "fixed_seconds": round(small - args.small / rate, 2),
                               "images_per_s": round(rate, 2), "core_hours_per_million": round(core_hours, 1),
                               "usd_per_million": round(core_hours * args.usd_per_core_hour, 2)}
            print(f"{config}: {results[config]}", flush=True)
    load = os.getloadavg()
    print(f"\n| command | photos/s once started | fixed cost (s) | core-hours per million | USD per million "
          f"(at {args.usd_per_core_hour}/core-hour) |")
    print("|---|---:|---:|---:|---:|")
    for config, r in results.items():
        print(f"| {config} | {r['images_per_s']:.1f} | {r['fixed_seconds']:.1f} | "
              f"{r['core_hours_per_million']:.0f} | {r['usd_per_million']:.2f} |")
    print(f"({args.images} and {args.small} CelebA photos; load average at the end {load[0]:.2f})")
    if args.json:
        payload: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                                   "images": args.images, "small": args.small, "cpus": os.cpu_count(),
                                   "loadavg_end": [round(v, 2) for v in load],
                                   "usd_per_core_hour": args.usd_per_core_hour, "results": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
