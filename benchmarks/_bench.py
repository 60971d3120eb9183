"""Shared helpers of the benchmark scripts: threads, timing statistics, the model, images, machine facts.

Every benchmark script imports this module (``benchmarks/`` is on ``sys.path`` when a script runs) and
reports each figure as the median of several timed runs with their min and max, together with the
machine, the torch thread count and the command that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
BUNDLED = "latentface-cpu-small"
#: A marker file that says the machine was kept free of other work during a run (git-ignored ``runs/``).
BENCH_OK = REPO_ROOT / "runs" / "BENCH_OK"


def set_threads(threads: int) -> None:
    """Use ``threads`` torch (intra-op) threads here and in child processes (OMP/MKL variables)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def time_runs(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def stats(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of ``values`` (and the values themselves)."""
    v = [float(x) for x in values]
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v), "values": v}


def rate(count: float, seconds: Sequence[float]) -> dict[str, Any]:
    """``count / t`` for each timing ``t`` (items per second): median, min, max."""
    return stats([count / s for s in seconds])


def fmt(s: dict[str, Any], digits: int = 1) -> str:
    """``median (min-max)`` of a :func:`stats` dict."""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def load_model(device: str = "cpu", model: str | None = None) -> tuple[Any, str]:
    """``model`` (a name or folder) when given, else the bundled ``latentface-cpu-small`` when its
    ``config.json`` exists, else random weights.

    Returns the :class:`~latentface_sdk.FaceEncoder` and a description of which one was used
    (random weights give the same speed: the architecture is the default ``ModelConfig``).
    """
    import torch

    from latentface_sdk import FaceEncoder

    if model is not None:
        return FaceEncoder.from_pretrained(model, device=device), f"`{model}`"
    if (REPO_ROOT / "weights" / BUNDLED / "config.json").exists():
        return FaceEncoder.from_pretrained(BUNDLED, device=device), f"bundled weights `{BUNDLED}`"
    torch.manual_seed(0)
    return (FaceEncoder.from_config(device=device),
            "random weights, `FaceEncoder.from_config(ModelConfig())` "
            "(the bundled weights were not there yet)")


def check_setup(args: Any, name: str) -> tuple[Any, Path]:
    """For the quality checks: threads set, the model of ``--model`` (default: the bundled weights) on the
    CPU, and the scratch folder ``runs/<name>`` (created)."""
    from latentface_sdk import FaceEncoder

    set_threads(args.threads)
    enc = (FaceEncoder.from_pretrained(args.model, device="cpu") if args.model
           else FaceEncoder.from_pretrained(device="cpu"))
    cache = REPO_ROOT / "runs" / name
    cache.mkdir(parents=True, exist_ok=True)
    return enc, cache


def celeba_paths(data: Path, n: int) -> list[Path]:
    """The first ``n`` celeba10k images (sorted by name)."""
    folder = data / "celeba10k" / "images"
    paths = sorted(folder.glob("*.jpg"))[:n]
    if len(paths) < n:
        raise SystemExit(f"{folder}: found {len(paths)} images, need {n}")
    return paths


def face_crops(data: Path, n: int, size: int = 64) -> np.ndarray:
    """``n`` pre-cropped faces ``(n, size, size, 3)`` uint8: celeba10k images, centred square, resized."""
    from latentface_sdk.detection import crop_aligned
    from latentface_sdk.images import to_rgb

    return np.stack([crop_aligned(to_rgb(p), size) for p in celeba_paths(data, n)])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict[str, Any]:
    """The commit the code was run from, and whether tracked files differed from it (``None`` outside git)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def host() -> dict[str, Any]:
    """Facts about this machine and the code, without importing torch (cores, versions, load, git commit)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in load],
        "bench_ok_marker": BENCH_OK.exists(),
        "when_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        **git_state(),
    }


def machine(threads: int) -> dict[str, Any]:
    """Facts about this machine and this run (cores, torch threads, versions, load, background jobs,
    the git commit).

    The scripts call it when they assemble their results, so ``when_utc`` and ``loadavg`` are taken at
    the end of the measurements."""
    import torch

    facts = host()
    return {
        "cpu": facts.pop("cpu"),
        "cores": facts.pop("cores"),
        "torch_threads": torch.get_num_threads(),
        "threads_requested": threads,
        "torch": torch.__version__,
        **facts,
    }


def command() -> str:
    """The command line of this process, relative to the repository root where possible."""
    argv = [sys.argv[0]]
    try:
        argv = [os.path.relpath(sys.argv[0], REPO_ROOT)]
    except ValueError:
        pass
    return "python " + shlex.join(argv + sys.argv[1:])


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def top_ops(prof: Any, rows: int = 8) -> list[dict[str, Any]]:
    """The ``rows`` operators with the most self CPU time in a finished ``torch.profiler`` run."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000.0, 2),
         "share": round(e.self_cpu_time_total / total, 4), "calls": int(e.count)}
        for e in events[:rows]
    ]


def top_functions(stats_obj: Any, rows: int = 8) -> list[dict[str, Any]]:
    """The ``rows`` functions with the most own time in a ``pstats.Stats`` (cProfile)."""
    entries = []
    total = stats_obj.total_tt or 1.0
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats_obj.stats.items():
        where = f"{Path(filename).name}:{line}({name})" if line else name
        entries.append({"function": where, "own_s": round(tt, 4), "cum_s": round(ct, 4),
                        "share": round(tt / total, 4), "calls": nc})
    entries.sort(key=lambda e: e["own_s"], reverse=True)
    return entries[:rows]


def base_parser(description: str) -> Any:
    """The options every benchmark script shares (``--threads``, ``--repeats``, ``--quick``, ``--data``,
    ``--json``)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure (default 5)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script works")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--model", default=None, help="model name or folder (default: the bundled model)")
    return p


#: A single-thread torch matmul loop: the competing process of the speed-under-load benchmarks, like another
#: model or a training process started with ``OMP_NUM_THREADS=1``.
TORCH_LOOP = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


def busy_parser(description: str, repeats: int, loads: str) -> Any:
    """The options of a benchmark that measures in worker processes beside competing ones (:func:`competing`,
    :func:`run_worker`): ``--data``, ``--faces``, ``--repeats`` and ``--loads``."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--faces", type=int, default=128)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--loads", default=loads, help=f"numbers of competing processes (default {loads})")
    return p


@contextmanager
def competing(n: int, code: str = TORCH_LOOP, env: dict[str, str] | None = None) -> Iterator[None]:
    """``n`` processes running the CPU-bound Python ``code`` for the length of the block (given a second
    to start); killed when it ends."""
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(n)]
    try:
        time.sleep(1.0)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def run_worker(script: str, worker: list[str], args: Any, env: dict[str, str] | None, name: str) -> Any:
    """Run ``script`` as a worker process (the ``worker`` arguments, then ``--faces``, ``--repeats`` and
    ``--data`` as in ``args``: :func:`busy_parser`); returns the JSON value of its last line of output. A
    worker that fails is a ``SystemExit`` that names it (``name``) with the end of its stderr."""
    cmd = [sys.executable, script, *worker, "--faces", str(args.faces), "--repeats", str(args.repeats),
           "--data", str(args.data)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def goal_main(doc: str | None, run: Callable[[Any], dict[str, Any]], achieved_format: str,
              argv: list[str] | None = None, repeats: int | None = None, unit: str = "") -> int:
    """The command line of a goal benchmark: parse, run, print the goal line, write the JSON."""
    parser = base_parser((doc or "").splitlines()[0])
    if repeats is not None:
        parser.set_defaults(repeats=repeats)
    args = parser.parse_args(argv)
    result = run(args)
    g = result["goal"]
    print(f"goal: {g['what']}: {format(g['achieved'], achieved_format)}{unit} "
          f"({'met' if g['met'] else 'missed'})")
    write_json(args.json, result)
    return 0
