"""Every benchmark script of ``benchmarks/``: what it measures, which page it feeds, where its results go.

One :class:`Benchmark` per script. ``python -m benchmarks list`` prints this registry as a table,
``python -m benchmarks run NAME`` runs an entry (passing it only the shared options it understands),
and ``docs/benchmarks.md`` ends with the same table, so every number in the docs can be traced to the
script and the results file it came from. ``tests/test_benchmarks_suite.py`` checks that every script
in ``benchmarks/`` is registered here and every registered script exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
RESULTS = "benchmarks/results"

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
    """``benchmark``, or ``tool`` (a helper that reads other runs' output; never run by the suite)."""

    @property
    def path(self) -> Path:
        return HERE / self.script


_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("encode_speed", "encode_speed.py",
              "encode images/s on pre-cropped 64x64 faces at batch 1/8/32/128, GFLOP/s against a matmul peak",
              "docs/benchmarks.md: Goals, 1", (f"{RESULTS}/encode.json",), 1.0, repeats=5, in_all=True),
    Benchmark("latent_ops", "latent_ops.py",
              "what disentangle adds to encode, and frontalize latency",
              "docs/benchmarks.md: Goals, 3", (f"{RESULTS}/latent_ops.json",), 0.5, repeats=5, in_all=True),
    Benchmark("pipeline_speed", "pipeline_speed.py",
              "photos -> features end to end, ours against facenet-pytorch (MTCNN + InceptionResnetV1)",
              "docs/benchmarks.md: Goals, 2", (f"{RESULTS}/pipeline.json",), 1.5, repeats=3, in_all=True),
    Benchmark("train_speed", "train_speed.py",
              "stage-1 steps (fast against pytorch3d renderer) and stage-2 steps per second",
              "docs/benchmarks.md: 5", (f"{RESULTS}/train.json",), 1.2, repeats=5, in_all=True),
    Benchmark("memory_scaling", "memory_scaling.py",
              "peak RSS and time of `latentface encode` for N = 1k..10k images",
              "docs/benchmarks.md: Goals, 4", (f"{RESULTS}/memory.json",), 2.1, repeats=2, in_all=True),
    Benchmark("contention", "contention.py",
              "encode, disentangle and the CLI under each thread setting beside 0-2 competing processes",
              "docs/benchmarks.md: 6; docs/install.md",
              (f"{RESULTS}/contention.json", f"{RESULTS}/contention_python.json",
               f"{RESULTS}/contention_torch_threads.json", f"{RESULTS}/contention_cli.json",
               f"{RESULTS}/contention_disentangle.json"),
              20.0, options=frozenset({"threads", "repeats", "quick", "data", "json"}), repeats=3,
              in_all=True),
    Benchmark("detection_levers", "detection_levers.py",
              ("the photo path against facenet-pytorch: where the time goes, each detection lever, "
               "faces found"),
              "docs/benchmarks.md: Goals, 2 (the levers for photos)", (f"{RESULTS}/detection_levers.json",),
              1.5, repeats=3, in_all=True),
    Benchmark("onnx_speed", "onnx_speed.py",
              "ms per face of encode and disentangle, ONNX Runtime against PyTorch, 1/2 threads, idle/busy",
              "docs/benchmarks.md: 7; docs/deploy.md", (f"{RESULTS}/onnx_speed.json",), 6.0,
              # its --threads is a list of thread counts to compare (default 1,2), not the suite's setting
              options=frozenset({"repeats", "quick", "data", "json"}), in_all=True),
    Benchmark("video_speed", "video_speed.py",
              "frames/s of encode_video on a clip against encoding the same frames as image files",
              "docs/benchmarks.md: 8; docs/video-and-3d.md", (f"{RESULTS}/video_speed.json",), 3.0,
              in_all=True),
    Benchmark("answers_check", "answers_check.py",
              "identity embedding (cosine, verify threshold), shared-photo separation and expressions() on "
              "held-out data, as an app uses them",
              "docs/results.md (Answers out of the box); weights/latentface-cpu-small/README.md",
              (f"{RESULTS}/answers.json",), 12.0,
              options=frozenset({"threads", "quick", "data", "model", "json"}),
              args=("--pictures", "docs/images")),
    Benchmark("light_real", "light_real.py",
              "does the light latent follow real light: mirrored photos and the face's shading asymmetry",
              "docs/results.md (Light on real photographs)", (f"{RESULTS}/light_real.json",), 3.0,
              options=frozenset({"threads", "quick", "data", "model", "json"})),
    Benchmark("frontal_photo", "frontal_photo.py",
              "ms per face of frontalize (64 px, 256 px, with detection) and mesh, texture='photo' against "
              "'albedo'",
              "docs/api.md (Frontal views textured from the photo); docs/video-and-3d.md (meshes)",
              (f"{RESULTS}/frontal_photo.json",), 2.0),
    Benchmark("pose_check", "pose_check.py",
              "pose, frontalization, light and reconstruction of stage 1 on held-out faces",
              "docs/results.md (3D); docs/training.md; weights/latentface-cpu-small/README.md",
              (f"{RESULTS}/pose_check.json",), 10.0, options=frozenset({"threads", "data", "model", "json"})),
    Benchmark("expression_readout", "expression_readout.py",
              "FER-2013 probe accuracy of each readout of the stage-1 encoders (which carries expression)",
              "docs/results.md (FER-2013 with the example's features)",
              (f"{RESULTS}/expression_readout.json", f"{RESULTS}/expression_readout_7ac44b3.json",
               f"{RESULTS}/expression_readout_previous_weights.json"),
              30.0, options=frozenset({"threads", "model", "json"}), args=("--flip",)),
    Benchmark("taiwan_expression", "taiwan_expression.py",
              "expression probe on the Taiwan corpus's five held-out performers",
              "docs/results.md (Taiwan corpus, five held-out performers), from runs/taiwan/fer.md",
              (), 15.0, options=frozenset({"data", "model"}), args=("--out", "runs/taiwan", "--no-progress")),
    Benchmark("rdm_identity_gap", "rdm_identity_gap.py",
              "how much closer the generated Z_id brings two photos of one person than Z_exp",
              "docs/results.md (identity/expression separation)", (f"{RESULTS}/rdm_identity_gap.json",), 10.0,
              options=frozenset({"threads", "data", "model", "json"}),
              args=("--model", "weights/latentface-cpu-small")),
    Benchmark("ray_extract", "ray_extract.py",
              "`latentface encode` images/s on Ray Data with 1 and 2 workers against one machine",
              "docs/scale.md (Measured)", (f"{RESULTS}/ray_extract.json",), 15.0,
              options=frozenset({"quick", "data", "json"})),
    Benchmark("stage1_ablation", "stage1_ablation.py",
              "300-step stage-1 arms: each departure from the paper, then each lever alone, by pose_check",
              "docs/training.md (what each change bought; the other levers)",
              (f"{RESULTS}/stage1_ablation.json", f"{RESULTS}/stage1_levers.json",
               f"{RESULTS}/stage1_levers_1000.json"), 90.0,
              options=frozenset({"data", "json"}), env=_ONE_THREAD),
    Benchmark("stage1_levers", "stage1_levers.py",
              "stage-1 expression levers (each alone, a pair, encoder width) as continuation runs, "
              "scored on FER, verify, recon",
              "docs/training.md", (f"{RESULTS}/stage1_expression_levers.json",
                                   f"{RESULTS}/stage1_levers_speed.json"), 90.0,
              options=frozenset({"data", "json"}), stages=(("prepare",), ("train",), ("score",)),
              env=_ONE_THREAD),
    Benchmark("stage2_levers", "stage2_levers.py",
              "stage-2 levers for the expression of Δexp: longer/shorter stage 2, grey low-res views, "
              "denoiser conditioning, expression groups drawn more often",
              "docs/training.md (expression levers, issue 24)",
              (f"{RESULTS}/stage2_levers.json", f"{RESULTS}/stage2_levers_expression_groups.json"), 240.0,
              options=frozenset({"data", "json"}), env=_ONE_THREAD),
    Benchmark("install_check", "install_check.py",
              "fresh venvs with the core beside a CPU, the oldest and the newest torch, and the GPU and full "
              "installs: size, install time, torch kept, quickstart, core tests, pinned outputs",
              "docs/install.md (Sizes and times)", (f"{RESULTS}/install_check.json",), 25.0,
              options=frozenset({"quick", "data", "json"})),
    Benchmark("train_log_summary", "train_log_summary.py",
              "medians of a stage-1 train.log over step windows (reads a log; measures nothing itself)",
              "docs/training.md (what the shipped run measured)", (), 0.0, options=frozenset(), kind="tool"),
)

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
    """Scripts in ``benchmarks/`` (not its helpers or ``archive/``) that no entry names."""
    known = {b.script for b in BENCHMARKS}
    return sorted(p.name for p in HERE.glob("*.py") if p.name not in HELPERS and p.name not in known)


def table() -> str:
    """The registry as a Markdown table."""
    out = ["| name | script | measures | numbers in | results | ~time | `run --all` |",
           "|---|---|---|---|---|---:|---|"]
    for b in BENCHMARKS:
        results = ", ".join(f"`{Path(r).name}`" for r in b.results) or "(none)"
        if b.kind == "tool":
            time, in_all = "", "tool"
        else:
            time = f"{b.minutes:.0f} min" if b.minutes >= 2 else f"{b.minutes * 60:.0f} s"
            in_all = "yes" if b.in_all else ""
        out.append(f"| {b.name} | `benchmarks/{b.script}` | {b.measures} | {b.feeds} | {results} | {time} | "
                   f"{in_all} |")
    return "\n".join(out)
