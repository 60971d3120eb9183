"""Every benchmark script of ``benchmarks/`` and every experiment of ``experiments/`` the suite can run:
what it measures, which page it feeds, where its results go.

One :class:`Benchmark` per script, read from ``registry.json``. ``python -m benchmarks list`` prints
this registry as a table, ``python -m benchmarks run NAME`` runs an entry (passing it only the shared
options it understands), and ``docs/benchmarks.md`` ends with the same table, so every number in the
docs can be traced to the script and the results file it came from. ``tests/test_benchmarks_suite.py``
checks that every script in ``benchmarks/`` is registered here and every registered script exists.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
RESULTS = "benchmarks/results"
#: Where the experiments' results files live.
EXPERIMENT_RESULTS = "experiments/results"

#: The options the suite runner can pass through (each script says which of them it has):
#: ``--threads N``, ``--repeats N``, ``--quick``, ``--data DIR`` (the shared data folder),
#: ``--model NAME`` and ``--json FILE`` (its results file).
OPTIONS = frozenset({"threads", "repeats", "quick", "data", "model", "json"})
#: What the scripts built on ``_bench.base_parser`` accept.
BASE = frozenset(OPTIONS)


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    """Path relative to ``benchmarks/``."""
    measures: str
    """One line."""
    feeds: str
    """The page (and section) that shows its numbers."""
    results: tuple[str, ...]
    """Results files relative to the repository root; the first is what a suite run writes (``--json``)."""
    minutes: float
    """Roughly how long a full run takes on the 2-core CPU the committed results come from."""
    options: frozenset[str] = BASE
    """Which of :data:`OPTIONS` the script accepts."""
    repeats: int | None = None
    """``--repeats`` of a suite run (None: the script's own default)."""
    args: tuple[str, ...] = ()
    """Fixed arguments, before the passed-through options (a later option of the same name wins)."""
    stages: tuple[tuple[str, ...], ...] = ((),)
    """Leading arguments of each process in turn (sub-commands), for a script run in several steps."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment of the run (``--threads`` sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` over it)."""
    in_all: bool = False
    """Run by ``python -m benchmarks run --all`` (the speed suite behind docs/benchmarks.md)."""
    kind: str = "benchmark"
    """``benchmark`` (a speed or quality measurement a user reruns, in ``benchmarks/``), ``experiment``
    (research that chose a recipe or a default, in ``experiments/``), or ``tool`` (a helper that reads
    other runs' output; never run by the suite)."""

    @property
    def where(self) -> str:
        """The script's path from the repository root (``benchmarks/...`` or ``experiments/...``)."""
        return f"{FOLDERS[self.kind]}/{self.script}"

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.where


#: The folder each kind of entry lives in (relative to the repository root).
FOLDERS = {"benchmark": "benchmarks", "experiment": "experiments", "tool": "benchmarks"}
#: The entries themselves: data, one JSON object per script, with the fields of :class:`Benchmark`.
ENTRIES = HERE / "registry.json"


def _entry(raw: dict[str, Any]) -> Benchmark:
    fields = dict(raw)
    if "options" in fields:
        fields["options"] = frozenset(fields["options"])
    fields["results"] = tuple(fields.get("results", ()))
    fields["args"] = tuple(fields.get("args", ()))
    if "stages" in fields:
        fields["stages"] = tuple(tuple(s) for s in fields["stages"])
    unknown = set(fields) - {f.name for f in dataclasses.fields(Benchmark)}
    if unknown:
        raise ValueError(f"{ENTRIES.name}: {raw.get('name')}: unknown fields {sorted(unknown)}")
    return Benchmark(**fields)


def load(path: Path = ENTRIES) -> tuple[Benchmark, ...]:
    """The entries of ``registry.json``."""
    return tuple(_entry(e) for e in json.loads(path.read_text(encoding="utf-8"))["entries"])


BENCHMARKS: tuple[Benchmark, ...] = load()

#: Files of ``benchmarks/`` that are the suite's own machinery, not benchmarks.
HELPERS = frozenset({"__init__.py", "__main__.py", "_bench.py", "registry.py", "report.py", "run_all.py"})
#: Results files written by the suite itself, not by a benchmark.
SUITE_RESULTS = (f"{RESULTS}/run_seconds.json",)


def by_name() -> dict[str, Benchmark]:
    return {b.name: b for b in BENCHMARKS}


def lookup(name: str) -> Benchmark:
    """An entry by its name, its script's file name, or the stem of its first results file
    (``encode`` -> ``encode_speed``, as ``run_all.py --only`` named them)."""
    names = by_name()
    if name in names:
        return names[name]
    for b in BENCHMARKS:
        if name in (b.script, Path(b.script).stem) or (b.results and Path(b.results[0]).stem == name):
            return b
    raise KeyError(f"no benchmark {name!r}; `python -m benchmarks list` names them: {', '.join(names)}")


def unregistered_scripts() -> list[str]:
    """Scripts in ``benchmarks/`` (not its helpers) that no entry names."""
    known = {b.script for b in BENCHMARKS if b.kind != "experiment"}
    return sorted(p.name for p in HERE.glob("*.py") if p.name not in HELPERS and p.name not in known)


def table() -> str:
    """The registry as a Markdown table."""
    out = ["| name | script | measures | numbers in | results | ~time | `run --all` |",
           "|---|---|---|---|---|---:|---|"]
    for b in BENCHMARKS:
        results = ", ".join(f"`{Path(r).name}`" for r in b.results) or "(none)"
        if b.kind == "tool":
            time, in_all = "", "tool"
        elif b.kind == "experiment":
            time, in_all = f"{b.minutes:.0f} min", "experiment"
        else:
            time = f"{b.minutes:.0f} min" if b.minutes >= 2 else f"{b.minutes * 60:.0f} s"
            in_all = "yes" if b.in_all else ""
        out.append(f"| {b.name} | `{b.where}` | {b.measures} | {b.feeds} | {results} | {time} | "
                   f"{in_all} |")
    return "\n".join(out)
