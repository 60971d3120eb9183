"""Speed on a busy machine: encode, disentangle and the CLI beside 0, 1 and 2 competing CPU-bound processes.

For each load (the benchmark starts and stops the competitors itself: single-thread torch matmul loops,
like another model or a training process with ``OMP_NUM_THREADS=1``, or with ``--competitor python``
pure-Python busy loops, like a web worker) and each thread setting, a fresh process loads
the bundled model and measures:

* ``encode``: images/s of ``encode`` on 128 pre-cropped faces (``detect=False``, batch 32);
* ``disentangle``: images/s of ``disentangle`` on the same faces;
* ``cli``: photos/s of ``latentface encode`` over the photos in ``../shared/data/photos`` (the whole
  command: start-up, MTCNN, encoding, writing the ``.npz``).

Thread settings: ``1`` and ``2`` (``torch.set_num_threads``; the CLI's ``--threads``), ``passive-2``
(2 threads with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP workers sleep instead of spinning while they wait),
``torch`` (nothing set: torch's own default) and ``sdk`` (nothing set: what the SDK does by default).
Each figure is the median of ``--repeats`` timed runs after a warm-up; the table gives it and its
ratio to the best setting at the same load, measured in the same run with the load average.

Usage::

    python benchmarks/contention.py --repeats 3 --json benchmarks/results/contention.json
    python benchmarks/contention.py --quick            # small sizes: check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

SETTINGS = ("1", "2", "passive-2", "torch", "sdk")
TASKS = ("encode", "disentangle", "cli")
LOADS = (0, 1, 2)
#: What a competing process runs: a pure-Python loop (a web worker, a data loader) or a single-thread
#: torch matmul loop (another model, a training process started with OMP_NUM_THREADS=1).
COMPETITORS = {
    "python": "while True:\n    pass\n",
    "torch": _bench.TORCH_LOOP,
    # the same loop with torch's default threads (one per core): a second model server or training job
    # started without OMP_NUM_THREADS
    "torch-threads": "import torch\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n",
}


def _env(setting: str) -> dict[str, str]:
    """The environment of a worker for one thread setting (no inherited thread variables)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if setting == "passive-2":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def _threads(setting: str) -> int | None:
    return {"1": 1, "2": 2, "passive-2": 2}.get(setting)


# ----------------------------------------------------------------------------------------------- worker


def worker(task: str, setting: str, faces: int, repeats: int, data: Path) -> dict[str, Any]:
    """Measure one task in this (fresh) process; returns items/s of each timed run."""
    threads = _threads(setting)
    if task == "cli":
        photos = data / "photos"
        count = len([p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".png")])
        cmd = [str(Path(sys.executable).parent / "latentface"), "encode", str(photos), "--faces", "all",
               "--no-progress"]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        rates = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats + 1):
                out = Path(tmp) / f"run{i}.npz"
                t0 = time.perf_counter()
                proc = subprocess.run([*cmd, "-o", str(out)], env=_env(setting), capture_output=True,
                                      text=True)
                seconds = time.perf_counter() - t0
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"latentface encode failed: {proc.stderr[-500:]}")
                if i:  # the first run warms the file cache
                    rates.append(count / seconds)
        return {"rates": rates, "items": count}
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from latentface_sdk import FaceEncoder

    enc = FaceEncoder.from_pretrained(device="cpu")
    crops = _bench.face_crops(data, faces)
    call = enc.encode if task == "encode" else enc.disentangle
    seconds = _bench.time_runs(lambda: call(crops, detect=False, batch_size=32), repeats)
    return {"rates": [faces / s for s in seconds], "items": faces, "torch_threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------------------------- parent


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    competitor_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for load in args.loads:
        with _bench.competing(load, COMPETITORS[args.competitor], competitor_env):
            for task in args.tasks:
                for setting in args.settings:
                    before = os.getloadavg()[0]
                    result = _bench.run_worker(__file__, ["--worker", task, "--setting", setting], args,
                                               _env(setting), f"{task}/{setting}")
                    row = {"load": load, "competitor": args.competitor, "task": task, "setting": setting,
                           "loadavg_before": round(before, 2), "loadavg_after": round(os.getloadavg()[0], 2),
                           **result, "median": statistics.median(result["rates"])}
                    rows.append(row)
                    print(f"load {load} {task:12s} {setting:10s} {row['median']:8.1f}/s "
                          f"(load avg {row['loadavg_after']})", flush=True)
    for row in rows:
        best = max(r["median"] for r in rows if r["load"] == row["load"] and r["task"] == row["task"])
        row["of_best"] = row["median"] / best
    return {"rows": rows, "faces": args.faces, "repeats": args.repeats, "machine": _bench.machine(0),
            "command": _bench.command()}


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per (task, setting), one column per load, ``items/s (share of the best)``."""
    rows = result["rows"]
    loads = sorted({r["load"] for r in rows})
    out = ["| task | threads | " + " | ".join(f"{n} competing" for n in loads) + " |",
           "|---|---|" + "---:|" * len(loads)]
    for task in dict.fromkeys(r["task"] for r in rows):
        for setting in dict.fromkeys(r["setting"] for r in rows):
            cells = []
            for n in loads:
                r = next((x for x in rows if x["task"] == task and x["setting"] == setting
                          and x["load"] == n), None)
                cells.append("" if r is None else f"{r['median']:.1f} ({r['of_best'] * 100:.0f}%)")
            out.append(f"| {task} | {setting} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = _bench.busy_parser(__doc__.splitlines()[0], repeats=3, loads="0,1,2")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--competitor", choices=sorted(COMPETITORS), default="torch",
                   help="what each competing process runs (default: a single-thread torch matmul loop)")
    p.add_argument("--quick", action="store_true", help="16 faces, 1 repeat, loads 0,1")
    p.add_argument("--json", type=Path)
    p.add_argument("--threads", type=int, help="ignored (run_all passes it; each setting sets its own)")
    p.add_argument("--worker", choices=TASKS, help=argparse.SUPPRESS)
    p.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.setting, args.faces, args.repeats, args.data)))
        return 0
    if args.quick:
        args.faces, args.repeats, args.loads = 16, 1, "0,1"
    args.loads = [int(x) for x in str(args.loads).split(",")]
    args.settings = args.settings.split(",")
    args.tasks = args.tasks.split(",")
    result = measure(args)
    print(table(result))
    _bench.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
