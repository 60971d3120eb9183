"""The benchmark suite's one command (run it from the repository root).

    python -m benchmarks list                         # the registry: every benchmark and where its numbers go
    python -m benchmarks run --all --threads 2        # the speed suite behind docs/benchmarks.md
    python -m benchmarks run encode_speed onnx_speed  # some benchmarks, by name
    python -m benchmarks run --all --quick            # tiny sizes into runs/benchmarks-quick/
    python -m benchmarks report [--check]             # docs/benchmarks.md, results.md, training.md

``run`` starts each script in its own process with the options it has (``--threads``, ``--repeats``,
``--quick``, ``--data``, ``--model``, ``--json`` into the results folder; ``--extra="..."`` passes more to
a single script), then stamps its results file with the suite's command, the git commit and the machine,
with paths inside the repository made relative, and writes the report again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _bench, registry, report

QUICK_OUT = registry.REPO_ROOT / "runs" / "benchmarks-quick"


def _rel(path: Path) -> str:
    """A path as a reader types it from the repository root: relative inside the repository or beside it
    (``../shared/data``), absolute elsewhere."""
    resolved = Path(path).resolve()
    for base in (registry.REPO_ROOT, registry.REPO_ROOT.parent):
        if resolved.is_relative_to(base) and base != Path(base.anchor):
            return Path(os.path.relpath(resolved, registry.REPO_ROOT)).as_posix()
    return str(path)


def _machine_paths() -> list[tuple[str, str]]:
    """(absolute prefix, what replaces it), longest first: the repository, the shared data, temp, home."""
    pairs: dict[str, str] = {}
    for root, repl in ((registry.REPO_ROOT, "."), (registry.REPO_ROOT.parent / "shared", "../shared"),
                       (Path(tempfile.gettempdir()), "$TMPDIR"), (Path.home(), "~")):
        for variant in {str(root), str(Path(root).resolve())}:
            if variant not in ("/", "") and variant not in pairs:
                pairs[variant] = repl
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def relative_paths(obj: Any, pairs: list[tuple[str, str]] | None = None) -> Any:
    """``obj`` with every absolute path inside the repository made relative (``/.../repo/x`` -> ``x``), the
    shared data folder as ``../shared``, the temp folder as ``$TMPDIR`` and the home folder as ``~``."""
    pairs = _machine_paths() if pairs is None else pairs
    if isinstance(obj, dict):
        return {k: relative_paths(v, pairs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relative_paths(v, pairs) for v in obj]
    if isinstance(obj, str):
        for prefix, repl in pairs:
            def sub(m: re.Match[str], repl: str = repl) -> str:
                if m.group(1):  # followed by a slash: a path inside
                    return "" if repl == "." else repl + "/"
                return repl
            obj = re.sub(re.escape(prefix) + r"(?:(/)|(?![\w.-]))", sub, obj)
        return obj
    return obj


def stamp(path: Path, suite_command: str, script_command: str, seconds: float) -> None:
    """Record how a results file was made: the suite's command, the git commit, the machine (when the
    script did not), and no machine-specific paths."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return
    data.setdefault("command", script_command)
    data.setdefault("machine", _bench.host())
    data["suite"] = {"command": suite_command, "script_command": script_command, "seconds": round(seconds, 1),
                     "when_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), **_bench.git_state()}
    path.write_text(json.dumps(relative_paths(data), indent=2, default=str) + "\n", encoding="utf-8")


def commands(b: registry.Benchmark, args: argparse.Namespace, out: Path) -> list[list[str]]:
    """The argument vectors (``python benchmarks/SCRIPT ...``) of one benchmark, one per stage."""
    opts: list[str] = []
    if args.threads is not None and "threads" in b.options:
        opts += ["--threads", str(args.threads)]
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else b.repeats)
    if repeats is not None and "repeats" in b.options:
        opts += ["--repeats", str(repeats)]
    if args.quick:
        opts.append("--quick")
    if args.data is not None and "data" in b.options:
        opts += ["--data", _rel(args.data)]
    if args.model is not None and "model" in b.options:
        opts += ["--model", args.model]
    if b.results and "json" in b.options:
        opts += ["--json", _rel(out / Path(b.results[0]).name)]
    fixed = list(b.args)
    if args.model is not None and "--model" in fixed:  # the model given replaces the entry's default
        i = fixed.index("--model")
        del fixed[i:i + 2]
    extra = shlex.split(args.extra) if args.extra else []
    return [["python", b.where, *stage, *fixed, *opts, *extra] for stage in b.stages]


def call(cmd: list[str], env: dict[str, str]) -> int:
    """Run one ``python benchmarks/...`` (or ``experiments/...``) command with this interpreter, from the
    repository root."""
    return subprocess.run([sys.executable, *cmd[1:]], env=env, cwd=registry.REPO_ROOT).returncode


def _selected(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[registry.Benchmark]:
    if args.all == bool(args.names):
        parser.error("name the benchmarks to run, or --all (not both)")
    try:
        chosen = ([b for b in registry.BENCHMARKS if b.in_all] if args.all
                  else [registry.lookup(n) for n in args.names])
    except KeyError as e:
        parser.error(str(e.args[0]))
    chosen = list({b.name: b for b in chosen}.values())
    for b in chosen:
        if b.kind == "tool":
            parser.error(f"{b.name} is a tool, not a benchmark: run `python {b.where}` yourself")
        if args.quick and "quick" not in b.options:
            parser.error(f"{b.name} has no --quick (a full run takes about {b.minutes:.0f} min): run it "
                         "without --quick")
    if args.extra and len(chosen) != 1:
        parser.error("--extra passes arguments to one script: name exactly one benchmark")
    return chosen


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    chosen = _selected(args, parser)
    out = args.out or (QUICK_OUT if args.quick else report.RESULTS_DIR)
    suite_command = str(relative_paths("python -m benchmarks " + shlex.join(argv)))
    seconds_file = out / "run_seconds.json"
    seconds: dict[str, float] = {}
    if not args.all and seconds_file.is_file():  # a partial run keeps the other families' times
        seconds = json.loads(seconds_file.read_text(encoding="utf-8"))
    env = dict(os.environ)
    where = _rel(out) + ("" if args.out or args.quick or all(b.kind != "experiment" for b in chosen)
                         else f" (experiments: {registry.EXPERIMENT_RESULTS})")
    minutes = sum(b.minutes for b in chosen)
    print(f"== {len(chosen)} benchmark(s), about {minutes:.0f} min; results in {where}", flush=True)
    for b in chosen:
        # by default each entry writes where its results live (an experiment's in experiments/results)
        b_out = (registry.REPO_ROOT / Path(b.results[0]).parent
                 if b.results and not (args.out or args.quick) else out)
        cmds = commands(b, args, b_out)
        script_command = " && ".join(shlex.join(c) for c in cmds)
        print(f"== {b.name}: {script_command}", flush=True)
        if args.dry_run:
            continue
        run_env = {**env, **b.env}
        if args.threads is not None:
            run_env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        b_out.mkdir(parents=True, exist_ok=True)
        t0_wall, t0 = time.time(), time.perf_counter()
        for cmd in cmds:
            code = call(cmd, run_env)
            if code != 0:
                print(f"{b.script} failed with exit code {code}", file=sys.stderr)
                return code
        took = time.perf_counter() - t0
        if b.results and "json" in b.options:
            written = b_out / Path(b.results[0]).name
            if written.is_file() and written.stat().st_mtime >= t0_wall - 1:
                stamp(written, suite_command, script_command, took)
        if b.in_all:
            seconds[Path(b.results[0]).stem] = took
            seconds_file.write_text(json.dumps(seconds, indent=2) + "\n", encoding="utf-8")
    if args.dry_run or args.no_report:
        return 0
    default = out.resolve() == report.RESULTS_DIR.resolve()
    pages = report.PAGES if default else ("benchmarks",)
    for page in pages:
        doc = report.doc_of(page) if default else out / f"{page}.md"
        try:
            report.write(doc, out, page)
        except report.TemplateError as e:
            print(f"no {page} page: {e}", file=sys.stderr)
            if default:
                return 1
            continue
        print(f"wrote {_rel(doc)}")
    return 0


def do_report(args: argparse.Namespace) -> int:
    results = args.results
    default = results.resolve() == report.RESULTS_DIR.resolve()
    pages = [args.page] if args.page else (list(report.PAGES) if default else ["benchmarks"])
    if args.out and len(pages) != 1:
        print("--out names one page: add --page", file=sys.stderr)
        return 2
    status = 0
    for page in pages:
        doc = args.out or (report.doc_of(page) if default else results / f"{page}.md")
        try:
            text = report.render(results=results, page=page)
        except report.TemplateError as e:
            print(f"no {page} page: {e}", file=sys.stderr)
            return 1
        if args.check:
            old = doc.read_text(encoding="utf-8") if doc.is_file() else ""
            if old != text:
                import difflib

                diff = difflib.unified_diff(old.splitlines(), text.splitlines(), _rel(doc), "rendered",
                                            lineterm="", n=1)
                print("\n".join(list(diff)[:60]))
                print(f"{_rel(doc)} differs from what the template and the results make: "
                      "run `python -m benchmarks report`", file=sys.stderr)
                status = 1
            else:
                print(f"{_rel(doc)} is up to date")
            continue
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text, encoding="utf-8")
        print(f"wrote {_rel(doc)}")
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="The benchmark suite: list, run, report.")
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="every benchmark: what it measures, where its numbers go, its results file")
    r = sub.add_parser("run",
                       help="run benchmarks (each in its own process), stamp their results, write the report")
    r.add_argument("names", nargs="*", help="benchmark names (see `list`), or their results file names")
    r.add_argument("--all", action="store_true", help="every benchmark marked `run --all` in the list")
    r.add_argument("--threads", type=int, help="torch threads (passed to the scripts that have --threads)")
    r.add_argument("--repeats", type=int, help="timed runs per figure (default: each benchmark's own)")
    r.add_argument("--quick", action="store_true", help="tiny sizes, to check that the scripts run "
                   f"(results into {_rel(QUICK_OUT)}/ unless --out)")
    r.add_argument("--data", type=Path,
                   help="the shared data folder (default: each script's, ../shared/data)")
    r.add_argument("--model", help="model name or folder, for the scripts that take one")
    r.add_argument("--out", type=Path, help="results folder (default benchmarks/results; its report is "
                   "docs/benchmarks.md, any other folder's OUT/benchmarks.md)")
    r.add_argument("--extra", default="",
                   help="more arguments for the one script named, e.g. --extra='--faces 64'")
    r.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
    r.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    g = sub.add_parser("report",
                       help="docs/benchmarks.md, results.md and training.md from benchmarks/templates/ "
                       "and the results")
    g.add_argument("--page", choices=report.PAGES, help="one page only (default: all)")
    g.add_argument("--results", type=Path, default=report.RESULTS_DIR,
                   help="results folder (default benchmarks/results)")
    g.add_argument("--out", type=Path,
                   help="the page to write, with --page (default docs/PAGE.md; for another results "
                   "folder, RESULTS/PAGE.md)")
    g.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page differs")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    if args.what == "list":
        print(registry.table())
        return 0
    if args.what == "run":
        return run(args, p, argv)
    return do_report(args)


if __name__ == "__main__":
    sys.exit(main())
