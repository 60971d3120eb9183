"""Face verification with the paper's 10-fold protocol, our features and baselines side by side.

    python examples/verify.py --pairs ../shared/data/celeba10k/pairs_verify.txt \
        --features raw,lbp,hog,random-encoder,latentface-verify --out runs/verify

    # LFW: pairs.txt with the images under lfw/<name>/<name>_%04d.jpg
    python examples/verify.py --pairs lfw/pairs.txt --images lfw --out runs/lfw

    # a quick look: three folds (leave-one-out among them), baselines only
    python examples/verify.py --pairs ../shared/data/celeba10k/pairs_verify.txt \
        --folds 0,1,2 --features raw,lbp,hog --out runs/verify-quick

Prints the markdown table and writes it with a JSON of per-fold numbers and two ROC PNGs into
``--out``. Features are cached under ``<out>/cache`` (or ``--cache-dir``), keyed by feature set,
model and image files, so reruns are fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from latentface_sdk.eval import (
    EvalSettings,
    FeatureContext,
    ProbeConfig,
    available_features,
    parse_feature_names,
    read_pairs,
    run_verification,
)
from latentface_sdk.eval.verification import VERIFY_PROBE

DEFAULT_FEATURES = "raw,lbp,hog,random-encoder,latentface-verify"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=Path, help="an LFW-style pairs.txt (numeric or file-name lines)")
    p.add_argument(
        "--images",
        type=Path,
        help="LFW: the folder holding <name>/<name>_%%04d.jpg; file-name lines: the image folder "
        "(default: the pairs file's folder, or its images/ sub-folder)",
    )
    p.add_argument(
        "--features", default=DEFAULT_FEATURES, help=f"comma-separated (default {DEFAULT_FEATURES})"
    )
    p.add_argument("--model", help="model name or folder for FaceEncoder.from_pretrained (default: bundled)")
    p.add_argument("--folds", help="comma-separated 0-based folds to use, e.g. 0,1,2 (default: all)")
    p.add_argument("--out", type=Path, default=Path("runs/verify"), help="folder for table, JSON and PNGs")
    p.add_argument("--cache-dir", type=Path, help="feature cache folder (default: <out>/cache)")
    p.add_argument("--no-detect", action="store_true", help="centre-crop instead of running MTCNN")
    p.add_argument("--device", default="cpu", help="torch device for model features and the probe")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rdm-init", choices=("noise", "zero"), default=None,
                   help="DDIM start of the disentangled feature sets (default: the model's rdm.sample_init)")
    p.add_argument("--rdm-samples", type=int, default=1,
                   help="RDM samples averaged per face for the disentangled feature sets (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random encoder, RDM sampling and probe")
    p.add_argument("--probe-epochs", type=int, default=VERIFY_PROBE.epochs)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list-features", action="store_true", help="list the feature sets and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_features:
        for name, text in available_features().items():
            print(f"{name:20s} {text}")
        return 0
    if args.pairs is None:
        print("error: --pairs is required", file=sys.stderr)
        return 2
    names = parse_feature_names(args.features)
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = read_pairs(args.pairs, args.images)
    if pairs.missing:
        print(f"{len({m.line for m in pairs.missing})} pair(s) skipped for missing images", file=sys.stderr)
    if args.folds:
        pairs = pairs.select_folds(int(f) for f in args.folds.split(","))
    settings = EvalSettings(
        out_dir=args.out,
        cache_dir=args.cache_dir,
        context=FeatureContext(
            model=args.model, device=args.device, batch_size=args.batch_size, seed=args.seed,
            rdm_samples=args.rdm_samples,
            rdm_init=args.rdm_init,
        ),
        detect=not args.no_detect,
        progress=not args.no_progress,
    )
    probe = ProbeConfig(
        epochs=args.probe_epochs,
        lr=VERIFY_PROBE.lr,
        batch_size=VERIFY_PROBE.batch_size,
        seed=args.seed,
        device=args.device,
    )
    report = run_verification(pairs, names, settings, probe=probe)
    print(report.table)
    for what, path in report.files.items():
        print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
