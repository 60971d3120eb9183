"""Linear probes and baselines on frozen features of a model, the paper's protocols (section 3.2), on
data no training run saw: celeba10k ``verify`` pairs, FER-2013 ``PublicTest`` and the Taiwan corpus's
five held-out performers. What docs/results.md's probe tables show.

    python benchmarks/probes.py --threads 2 --json benchmarks/results/probes.json
    python benchmarks/probes.py --collect --runs runs/probes --json benchmarks/results/probes.json

Runs ``python -m latentface_sdk.eval verify`` and ``fer`` and ``benchmarks/taiwan_expression.py`` into
``--runs`` (one folder each, with their tables, ROC and confusion pictures and feature caches), then
collects their ``verification.json`` / ``fer.json`` into one results file (accuracies in percent), with
the answer heads' random-init controls when ``python experiments/answer_heads.py control`` has written
``runs/identity/controls.json``.
``--collect`` only collects runs already made. About 40 minutes on 2 CPU cores (the FER-2013 features of
28,709 training faces dominate); a second run reuses the caches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: What each protocol measures: the baselines, the untrained encoder, then the model's readouts.
VERIFY = "raw,lbp,hog,random-encoder,latentface,latentface-id,latentface-verify,lbp-frontal,lbp-frontal-photo"
FER = "lbp,hog,random-encoder,latentface,latentface-fer,latentface-expression,hog-frontal"
TAIWAN = "lbp,hog,latentface,latentface-fer,latentface-expression"


def commands(data: Path, runs: Path, model: str | None, threads: int | None) -> dict[str, list[str]]:
    """The three runs, as argument lists for this interpreter."""
    common = [*(["--model", model] if model else []), *(["--threads", str(threads)] if threads else []),
              "--no-progress"]
    return {
        "verify": ["-m", "latentface_sdk.eval", "verify", "--pairs",
                   str(data / "celeba10k" / "pairs_verify.txt"), "--out", str(runs / "verify"),
                   "--features", VERIFY, *common],
        "fer": ["-m", "latentface_sdk.eval", "fer", "--data", str(data / "fer2013"),
                "--out", str(runs / "fer"), "--features", FER, *common],
        "taiwan": [str(REPO / "benchmarks" / "taiwan_expression.py"), "--data", str(data), "--out",
                   str(runs / "taiwan"), "--features", TAIWAN,
                   *(["--model", model] if model else []), "--no-progress"],
    }


def _portable(command: str) -> str:
    """A command as anyone reruns it from the repository root: this checkout's paths made relative
    (``../shared/data``, ``benchmarks/...``), so no machine's folders are written into the results."""
    return command.replace(str(REPO) + "/", "").replace(str(REPO.parent) + "/", "../")


def _pct(x: float) -> float:
    return round(100 * float(x), 2)


#: Where ``python experiments/answer_heads.py control`` writes the untrained-model controls.
CONTROLS = REPO / "runs" / "identity" / "controls.json"


def collect(runs: Path, controls: Path | None = CONTROLS) -> dict[str, Any]:
    """One results dict from the runs' JSON files (a protocol not run yet is left out), with the
    untrained-model ``controls`` when that file is there (``None``: without them)."""
    out: dict[str, Any] = {}
    verify = runs / "verify" / "verification.json"
    if verify.is_file():
        rows = json.loads(verify.read_text(encoding="utf-8"))["results"]
        folds = rows[0]["folds"] if rows else 0  # the eval writes the folds' list; the count is the number
        out["verify"] = {"pairs": rows[0]["n_pairs"] if rows else 0,
                         "folds": len(folds) if isinstance(folds, list) else folds,
                         "rows": [
            {"feature": r["feature"], "dim": r["dim"],
             "probe": _pct(r["probe_accuracy"]["mean"]), "probe_sem": _pct(r["probe_accuracy"]["sem"]),
             "cosine": _pct(r["cosine_accuracy"]["mean"]), "cosine_sem": _pct(r["cosine_accuracy"]["sem"]),
             "probe_auc": round(r["probe_auc"], 3), "cosine_auc": round(r["cosine_auc"], 3)}
            for r in rows]}
    if controls is not None and controls.is_file():
        raw = json.loads(controls.read_text(encoding="utf-8"))
        out["controls"] = {k: round(v, 2) for k, v in raw.items()}
    for name in ("fer", "taiwan"):
        path = runs / name / "fer.json"
        if path.is_file():
            rows = json.loads(path.read_text(encoding="utf-8"))["results"]
            out[name] = {"train": rows[0]["n_train"] if rows else 0, "test": rows[0]["n_test"] if rows else 0,
                         "rows": [{"feature": r["feature"], "dim": r["dim"], "accuracy": _pct(r["accuracy"]),
                                   "macro_f1": _pct(r["macro_f1"])} for r in rows]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--model", help="model name or folder (default: the bundled model)")
    p.add_argument("--threads", type=int)
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "probes", help="the eval runs' folders")
    p.add_argument("--only", help="comma-separated: verify, fer, taiwan (default: all three)")
    p.add_argument("--collect", action="store_true", help="run nothing; collect the runs already made")
    p.add_argument("--json", type=Path, help="the results file to write")
    args = p.parse_args(argv)
    todo = commands(args.data, args.runs, args.model, args.threads)
    chosen = args.only.split(",") if args.only else list(todo)
    unknown = set(chosen) - set(todo)
    if unknown:
        p.error(f"--only: no protocol {', '.join(sorted(unknown))} (there are: {', '.join(todo)})")
    t0 = time.perf_counter()
    if not args.collect:
        for name in chosen:
            print(f"== {name}: python {' '.join(todo[name])}", flush=True)
            subprocess.run([sys.executable, *todo[name]], check=True, cwd=REPO)
    results = collect(args.runs)
    results.update(model=args.model or "bundled", seconds=round(time.perf_counter() - t0, 1),
                   commands={**{k: _portable("python " + " ".join(v)) for k, v in todo.items()},
                             "controls": "python experiments/answer_heads.py control"})
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
