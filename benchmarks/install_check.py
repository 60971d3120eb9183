"""Install checks (issue 39): the SDK's core installed into fresh virtual environments beside a given torch,
with each venv's size and install time, whether pip kept that torch, the README quickstart, the core tests,
and the outputs against the pinned ones.

    python benchmarks/install_check.py --json benchmarks/results/install_check.json
    python benchmarks/install_check.py --venvs cpu --keep          # one venv, kept under --workdir

The venvs, each made with ``python -m venv`` and installed with its pip (``--no-cache-dir``: every wheel is
fetched or read again, as on a new machine):

* ``cpu``: a CPU build of torch first (``--cpu-torch``, default ``torch==2.13.0``, the CPU wheel this
  machine's pip finds on disk; elsewhere pass ``--cpu-index https://download.pytorch.org/whl/cpu``), then
  the SDK: the small CPU install.
* ``oldest``: the oldest torch the SDK supports (the lower bound in ``pyproject.toml``) first, then the SDK.
* ``newest``: the newest torch this machine's pip would install (``pip install --dry-run torch``: PyPI's,
  under any cap in the pip configuration) first, then the SDK.
* ``gpu``: ``pip install <sdk>`` alone into the empty venv: on Linux pip takes PyPI's torch, a CUDA build
  (the GPU install).
* ``full``: ``pip install "<sdk>[dev]"`` alone: every extra, PyTorch3D and the test tools (the full install).

For each: the seconds of every pip step, the venv's size after installing (``du``, before anything ran) and
what of it is NVIDIA/CUDA libraries, the torch version before and after the SDK's install (kept or not),
``pip check``, the README's Python quickstart run as pasted (from the repository root, photos from
``../shared/data``), the core tests (:data:`CORE_TESTS`: what needs no extra; pytest is installed for them
after the measurements), and the pinned outputs (``tests/_pinned.py``: encode, disentangle, frontalize and
render of the bundled model on three photos) compared with ``tests/data/pinned_outputs.npz`` as the relative
norm of the difference per array (the test's own tolerance is that of the reference build; a different
torch build sums in another order). The source installed is ``git archive HEAD`` (``--source worktree``:
the working tree as it is), with the shared data linked beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

REPO = _bench.REPO_ROOT
VENVS = ("cpu", "oldest", "newest", "gpu", "full")
#: The test files that need nothing beyond the core and pytest (the extras' tests, PyTorch3D's comparisons
#: and the property-based tests, which need hypothesis, are left to the full install and CI).
CORE_TESTS = (
    "tests/test_core_install.py", "tests/test_mtcnn.py", "tests/test_encoder.py", "tests/test_operations.py",
    "tests/test_mesh.py", "tests/test_pipeline.py", "tests/test_results.py", "tests/test_expression.py",
    "tests/test_cli.py", "tests/test_hub.py", "tests/test_config.py", "tests/test_landmarks.py",
    "tests/test_cropset.py", "tests/test_bundle.py", "tests/test_packaging.py",
)
#: A pinned array agrees when ||got - pinned|| / ||pinned|| is at most this (float16 storage alone: ~2e-4).
OUTPUT_TOLERANCE = 5e-3
#: The summary table's header (one row per venv: :func:`row`).
HEADER = ("| venv | torch (kept?) | venv size | CUDA libraries | install | quickstart | core tests "
          "| outputs |\n|---|---|---:|---:|---:|---|---|---:|")
#: Distributions that are CUDA libraries (their size is reported apart).
CUDA_DIST = re.compile(r"^(nvidia[-_]|cuda[-_]|triton$)", re.IGNORECASE)
#: Writes what the pinned outputs of the bundled model are against the committed ones, as JSON.
PINNED_CHECK = """
import json, sys
import numpy as np
sys.path.insert(0, "tests")
from _pinned import PINNED, outputs
want = dict(np.load(PINNED))
got = outputs(__import__("pathlib").Path(sys.argv[1]))
out = {}
for key, ref in want.items():
    if ref.dtype.kind != "f":
        out[key] = {"equal": bool(np.array_equal(got[key], ref))}
        continue
    a = np.nan_to_num(np.asarray(got[key], dtype=np.float64))
    b = np.nan_to_num(np.asarray(ref, dtype=np.float64))
    out[key] = {"relative": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)),
                "max_abs": float(np.abs(a - b).max())}
print(json.dumps(out))
"""


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 3600,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; its seconds, exit code and the tail of its output."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        rc, stdout, out = proc.returncode, proc.stdout, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, out = 124, "", f"timed out after {timeout} s: {exc}"
    lines = [ln for ln in out.splitlines() if "is ignored: it is neither a file nor a directory" not in ln]
    return {"cmd": " ".join(cmd), "seconds": round(time.perf_counter() - t0, 1), "rc": rc,
            "tail": "\n".join(lines[-12:]), "stdout": stdout}


def export_source(dest: Path, source: str) -> dict[str, Any]:
    """The repository in ``dest``: ``git archive HEAD``, or the working tree's tracked and unignored files."""
    dest.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    if source == "HEAD":
        archive = dest.parent / "source.tar"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), "HEAD"], cwd=REPO, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        archive.unlink()
    else:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.split("\0")
        for name in filter(None, files):
            src = REPO / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    return {"source": source, "commit": commit}


def torch_lower_bound() -> str:
    """The X of ``torch>=X`` in pyproject.toml's core dependencies."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    deps = text.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    m = re.search(r'^\s*"torch\s*>=\s*([0-9.]+)"', deps, flags=re.M)
    if m:
        return m.group(1)
    raise SystemExit("pyproject.toml: no 'torch>=X' among the core dependencies")


def newest_torch(workdir: Path) -> str:
    """The torch version pip would install into an empty venv here (its configuration and caps applied)."""
    probe = workdir / "probe"
    subprocess.run([sys.executable, "-m", "venv", str(probe)], check=True)
    out = run([str(probe / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
               "torch"], timeout=900)
    shutil.rmtree(probe, ignore_errors=True)
    try:
        report = json.loads(out["stdout"])
    except json.JSONDecodeError as exc:
        raise SystemExit(f"pip install --dry-run torch gave no report: {out['tail']}") from exc
    for item in report["install"]:
        if item["metadata"]["name"].lower() == "torch":
            return str(item["metadata"]["version"])
    raise SystemExit("pip install --dry-run torch would not install torch")


def venv_facts(venv: Path) -> dict[str, Any]:
    """Size of the venv and of its CUDA libraries (MB, allocated blocks as ``du``), and what is installed."""
    py = str(venv / "bin" / "python")
    listed = run([py, "-m", "pip", "list", "--format", "json"])
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed["stdout"] or "[]")}
    site = next((venv / "lib").glob("python3*/site-packages"))

    def mb(path: Path) -> float:
        out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True)
        return round(int(out.stdout.split()[0]) / 1024, 1) if out.returncode == 0 else 0.0

    cuda_dirs = [p for p in site.iterdir() if re.match(r"^(nvidia|cuda|triton)", p.name, re.IGNORECASE)
                 and p.is_dir() and not p.name.endswith(".dist-info")]
    cuda = sorted(name for name in packages if CUDA_DIST.match(name))
    return {
        "size_mb": mb(venv),
        "torch_mb": mb(site / "torch") if (site / "torch").is_dir() else 0.0,
        "cuda_libraries_mb": round(sum(mb(p) for p in cuda_dirs), 1),
        "cuda_distributions": cuda,
        "packages": {k: packages[k] for k in sorted(packages)
                     if k in ("torch", "torchvision", "numpy", "diffusers", "huggingface-hub", "safetensors",
                              "pillow", "facenet-pytorch", "easypytorch3d", "latentface-sdk", "pip")},
        "distributions": len(packages),
    }


def torch_version(venv: Path) -> str | None:
    out = run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"])
    return (out["stdout"].strip() or None) if out["rc"] == 0 else None


def quickstart_code(src: Path) -> str:
    """The README's Python quickstart block, as pasted."""
    text = (src / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quickstart \(Python\)\n.*?```python\n(.*?)```", text, flags=re.S)
    if block is None:
        raise SystemExit("README.md: no Python block under '## Quickstart (Python)'")
    return block.group(1)


def check_venv(name: str, workdir: Path, src: Path, args: argparse.Namespace,
               torch_specs: dict[str, list[str]], data: Path) -> dict[str, Any]:
    """Make the venv ``name``, install into it, measure it, run the quickstart, the outputs and the tests."""
    venv = workdir / f"venv-{name}"
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    result: dict[str, Any] = {"venv": name, "steps": []}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    steps: list[tuple[str, list[str]]] = []
    if name in torch_specs:
        steps.append(("torch", pip + torch_specs[name]))
    if name == "full":
        steps.append(("sdk[dev]", pip + [f"{src}[dev]"]))
    else:
        steps.append(("sdk", pip + [str(src)]))
    for label, cmd in steps:
        step = run(cmd, timeout=3600)
        step.pop("stdout")
        step["label"] = label
        result["steps"].append(step)
        if label == "torch":
            result["torch_before"] = torch_version(venv)
        if step["rc"] != 0:
            result["install_ok"] = False
            result["install_seconds"] = round(time.perf_counter() - t0, 1)
            return result
    result["install_ok"] = True
    result["install_seconds"] = round(time.perf_counter() - t0, 1)
    result["torch_after"] = torch_version(venv)
    if "torch_before" in result:
        result["torch_kept"] = result["torch_before"] == result["torch_after"]
    result.update(venv_facts(venv))
    check = run([py, "-m", "pip", "check"])
    result["pip_check"] = {"rc": check["rc"], "tail": check["tail"]}

    (src / "install_check_quickstart.py").write_text(quickstart_code(src), encoding="utf-8")
    qs = run([py, "install_check_quickstart.py"], cwd=src, timeout=1200)
    frontal = src / "frontal.png"
    result["quickstart"] = {"rc": qs["rc"], "seconds": qs["seconds"], "frontal_png": frontal.is_file(),
                            "ok": qs["rc"] == 0 and frontal.is_file(), "tail": qs["tail"]}
    frontal.unlink(missing_ok=True)

    pinned = run([py, "-c", PINNED_CHECK, str(data)], cwd=src, timeout=1200)
    try:
        arrays = json.loads(pinned["stdout"].strip().splitlines()[-1])
        worst = max((v.get("relative", 0.0) for v in arrays.values()), default=0.0)
        result["pinned_outputs"] = {
            "ok": all(v.get("equal", True) for v in arrays.values()) and worst <= OUTPUT_TOLERANCE,
            "worst_relative": worst, "tolerance": OUTPUT_TOLERANCE, "arrays": arrays}
    except (IndexError, json.JSONDecodeError):
        result["pinned_outputs"] = {"ok": False, "tail": pinned["tail"]}

    if not args.no_tests:
        extra = run(pip + ["pytest>=8"], timeout=900)
        tests = run([str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", *CORE_TESTS], cwd=src,
                    timeout=3600, env={"OMP_NUM_THREADS": str(args.threads)})
        lines = tests["tail"].splitlines() or [""]
        summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)), lines[-1])
        result["core_tests"] = {"rc": tests["rc"], "seconds": tests["seconds"], "ok": tests["rc"] == 0,
                                "summary": summary.strip("= "), "pytest_install_rc": extra["rc"],
                                "failed": re.findall(r"^FAILED (\S+)", tests["tail"], flags=re.M)}
    if not args.keep:
        shutil.rmtree(venv, ignore_errors=True)
    return result


def row(r: dict[str, Any]) -> str:
    """One line of the summary table."""
    if not r.get("install_ok"):
        return f"| {r['venv']} | install failed | | | | | | |"
    gb = r["size_mb"] / 1024
    kept = "" if "torch_kept" not in r else ("kept" if r["torch_kept"] else "REPLACED")
    qs = "ok" if r["quickstart"]["ok"] else "FAILED"
    tests = r.get("core_tests", {}).get("summary", "not run")
    pinned = f"{r['pinned_outputs'].get('worst_relative', float('nan')):.1e}"
    cuda, seconds = r["cuda_libraries_mb"] / 1024, r["install_seconds"]
    return (f"| {r['venv']} | {r['torch_after']} {kept} | {gb:.2f} GB | {cuda:.2f} GB | {seconds:.0f} s | "
            f"{qs} ({r['quickstart']['seconds']:.0f} s) | {tests} | {pinned} |")


def _portable(payload: Any) -> Any:
    """The results without this machine's paths (temporary venvs, pip caches, local package indexes), so
    the committed file reads the same anywhere (tests/test_repo_paths.py)."""
    import re

    text = json.dumps(payload)
    text = re.sub(r"/tmp/install_check-[\w]+", "$TMPDIR/install_check", text)
    text = re.sub(r"/tmp/pip-[\w-]+", "$TMPDIR/pip-cache", text)
    text = text.replace("/opt/pypi-more", "<local package index 2>")
    text = text.replace("/opt/pypi", "<local package index>")
    text = re.sub(r"/root/\.pyenv[\w./-]*", "<python>", text)
    return json.loads(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venvs", default=",".join(VENVS), help=f"which venvs, comma-separated (default {VENVS})")
    p.add_argument("--cpu-torch", default="torch==2.13.0", help="the CPU build's requirement")
    p.add_argument("--cpu-index", default=None, help="an index URL for the CPU build (PyTorch's CPU index)")
    p.add_argument("--oldest", default=None, help="torch version of 'oldest' (default: pyproject's bound)")
    p.add_argument("--newest", default=None, help="torch version of 'newest' (default: what pip would take)")
    p.add_argument("--source", choices=("HEAD", "worktree"), default="HEAD")
    p.add_argument("--workdir", type=Path, default=None, help="where the venvs go (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the venvs (and the workdir)")
    p.add_argument("--no-tests", action="store_true", help="skip the core tests")
    p.add_argument("--quick", action="store_true", help="the cpu venv only, without the tests")
    p.add_argument("--threads", type=int, default=2, help="OMP threads of the test runs (default 2)")
    p.add_argument("--data", type=Path, default=_bench.DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    names = ["cpu"] if args.quick else [v.strip() for v in args.venvs.split(",") if v.strip()]
    args.no_tests = args.no_tests or args.quick
    if unknown := set(names) - set(VENVS):
        p.error(f"unknown venvs {sorted(unknown)}; choose from {VENVS}")
    if not (args.data / "photos").is_dir():
        p.error(f"{args.data}/photos is missing: the quickstart reads its photos")

    workdir = Path(tempfile.mkdtemp(prefix="install_check-", dir=args.workdir))
    src = workdir / "src" / "latentface-sdk"
    source = export_source(src, args.source)
    (workdir / "src" / "shared").symlink_to(args.data.resolve().parent)  # ../shared/data beside the checkout
    oldest = args.oldest or torch_lower_bound()
    newest = args.newest or (newest_torch(workdir) if "newest" in names else None)
    cpu = [args.cpu_torch] + (["--index-url", args.cpu_index] if args.cpu_index else [])
    torch_specs = {"cpu": cpu, "oldest": [f"torch=={oldest}"], "newest": [f"torch=={newest}"]}
    results = []
    for name in names:
        print(f"=== {name}", file=sys.stderr, flush=True)
        results.append(check_venv(name, workdir, src, args, torch_specs, args.data))
        print(row(results[-1]), file=sys.stderr, flush=True)
    pip_version = run([sys.executable, "-m", "pip", "--version"])["stdout"].split(" from ")[0]
    payload = {"command": _bench.command(), "host": _bench.host(), **source, "pip_of_the_venvs": pip_version,
               "oldest": oldest, "newest": newest, "cpu_torch": " ".join(cpu), "venvs": results}
    _bench.write_json(args.json, _portable(payload))
    print(HEADER)
    for r in results:
        print(row(r))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = all(r.get("install_ok") and r["quickstart"]["ok"] and r["pinned_outputs"]["ok"]
             and r.get("core_tests", {"ok": True})["ok"] and r.get("torch_kept", True) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
