"""``python -m latentface_sdk.eval verify|fer|features``: the paper's protocols from the command line.

    python -m latentface_sdk.eval verify --pairs ../shared/data/celeba10k/pairs_verify.txt --out runs/verify
    python -m latentface_sdk.eval fer --data ../shared/data/fer2013 --out runs/fer
    python -m latentface_sdk.eval features            # the feature sets by name

``--quick`` on either protocol runs a small, representative slice (two verification folds; 40 images
per expression class) with the LBP baseline beside the model's features, in under a minute. Each run
prints the markdown table and writes it with a JSON of the numbers and PNGs (ROC, confusion matrices)
into ``--out``; features are cached under ``<out>/cache`` (or ``--cache-dir``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import LatentFaceError
from .datasets import read_label_csv, read_split
from .features import FeatureContext, available_features, parse_feature_names
from .fer import FER_PROBE
from .pairs import read_pairs
from .probes import ProbeConfig
from .runner import EvalSettings, run_fer, run_verification
from .verification import VERIFY_PROBE

VERIFY_FEATURES = "raw,lbp,hog,random-encoder,latentface-verify"
FER_FEATURES = "raw,lbp,hog,random-encoder,latentface-fer"
#: What ``--quick`` runs: the LBP baseline and the model's protocol feature set.
VERIFY_QUICK = ("0,1", "lbp,latentface-verify")
FER_QUICK = (40, "lbp,latentface-fer")

_VERIFY_EXAMPLES = """examples:
  python -m latentface_sdk.eval verify --pairs ../shared/data/celeba10k/pairs_verify.txt --quick \
--out runs/verify-quick
  python -m latentface_sdk.eval verify --pairs ../shared/data/celeba10k/pairs_verify.txt --out runs/verify
  python -m latentface_sdk.eval verify --pairs lfw/pairs.txt --images lfw --out runs/lfw   # LFW layout
"""
_FER_EXAMPLES = """examples:
  python -m latentface_sdk.eval fer --data ../shared/data/fer2013 --quick --out runs/fer-quick
  python -m latentface_sdk.eval fer --data ../shared/data/fer2013 --out runs/fer   # Training -> PublicTest
  python -m latentface_sdk.eval fer --data RAF-DB/aligned --train-split train --test-split test --out runs/raf
  python -m latentface_sdk.eval fer --train-csv train.csv --test-csv test.csv --out runs/mine
"""


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--features", help="comma-separated feature sets (see the 'features' command)")
    p.add_argument("--quick", action="store_true",
                   help="a small slice with LBP and the model (under a minute)")
    p.add_argument("--model", help="model name or folder for FaceEncoder.from_pretrained (default: bundled)")
    p.add_argument("--out", type=Path, default=Path(default_out), help="folder for table, JSON and PNGs")
    p.add_argument("--cache-dir", type=Path, help="feature cache folder (default: <out>/cache)")
    p.add_argument("--no-detect", action="store_true", help="centre-crop instead of running MTCNN")
    p.add_argument("--device", default="cpu", help="torch device for model features and the probe")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of model feature extraction")
    p.add_argument("--rdm-init", choices=("noise", "zero"), default=None,
                   help="DDIM start of the disentangled feature sets (default: the model's rdm.sample_init)")
    p.add_argument("--rdm-samples", type=int, default=1,
                   help="RDM samples averaged per face for the disentangled feature sets (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random encoder, RDM sampling and probe")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m latentface_sdk.eval`` with its ``verify``, ``fer`` and ``features``
    commands."""
    parser = argparse.ArgumentParser(prog="python -m latentface_sdk.eval",
                                     description=__doc__.splitlines()[0],
                                     epilog="run '<command> --help' for a command's options and examples")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    v = sub.add_parser("verify", help="face verification, 10-fold linear probe and cosine threshold",
                       epilog=_VERIFY_EXAMPLES, formatter_class=fmt)
    v.add_argument("--pairs", type=Path, required=True,
                   help="an LFW-style pairs.txt (numeric or file-name lines)")
    v.add_argument("--images", type=Path,
                   help="LFW: the folder holding <name>/<name>_%%04d.jpg; file-name lines: the image folder "
                   "(default: the pairs file's folder, or its images/ sub-folder)")
    v.add_argument("--folds", help="comma-separated 0-based folds to use, e.g. 0,1,2 (default: all)")
    v.add_argument("--probe-epochs", type=int, default=VERIFY_PROBE.epochs)
    _common(v, "runs/verify")
    f = sub.add_parser("fer", help="facial expression recognition, linear probe", epilog=_FER_EXAMPLES,
                       formatter_class=fmt)
    f.add_argument("--data", type=Path, help="image-folder data set: <data>/<split>/<class>/*.jpg")
    f.add_argument("--train-split", default="Training", help="train split folder (default Training)")
    f.add_argument("--test-split", default="PublicTest", help="test split folder (default PublicTest)")
    f.add_argument("--train-csv", type=Path, help="instead of --data: a path,label CSV for training")
    f.add_argument("--test-csv", type=Path, help="instead of --data: a path,label CSV for testing")
    f.add_argument("--classes", help="comma-separated class order (default: the train split's folders)")
    f.add_argument("--limit-per-class", type=int, help="at most N images per class in each split")
    f.add_argument("--epochs", type=int, default=FER_PROBE.epochs, help="probe epochs (paper: 20)")
    _common(f, "runs/fer")
    sub.add_parser("features", help="list the feature sets and exit",
                   epilog="example:\n  python -m latentface_sdk.eval features", formatter_class=fmt)
    return parser


def _settings(args: argparse.Namespace) -> EvalSettings:
    context = FeatureContext(model=args.model, device=args.device, batch_size=args.batch_size, seed=args.seed,
                             rdm_samples=args.rdm_samples, rdm_init=args.rdm_init)
    return EvalSettings(out_dir=args.out, cache_dir=args.cache_dir, context=context,
                        detect=not args.no_detect, progress=not args.no_progress)


def _verify(args: argparse.Namespace) -> int:
    folds, features = (args.folds, args.features or VERIFY_FEATURES)
    if args.quick:
        folds = folds or VERIFY_QUICK[0]
        features = args.features or VERIFY_QUICK[1]
    pairs = read_pairs(args.pairs, args.images)
    if pairs.missing:
        print(f"{len({m.line for m in pairs.missing})} pair(s) skipped for missing images", file=sys.stderr)
    if folds:
        pairs = pairs.select_folds(int(x) for x in folds.split(","))
    probe = ProbeConfig(epochs=args.probe_epochs, lr=VERIFY_PROBE.lr, batch_size=VERIFY_PROBE.batch_size,
                        seed=args.seed, device=args.device)
    report = run_verification(pairs, parse_feature_names(features), _settings(args), probe=probe)
    print(report.table)
    for what, path in report.files.items():
        print(f"{what}: {path}")
    return 0


def _fer(args: argparse.Namespace) -> int:
    limit, features = args.limit_per_class, args.features or FER_FEATURES
    if args.quick:
        limit = limit or FER_QUICK[0]
        features = args.features or FER_QUICK[1]
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.train_csv or args.test_csv:
        if not (args.train_csv and args.test_csv):
            print("error: give both --train-csv and --test-csv", file=sys.stderr)
            return 2
        train = read_label_csv(args.train_csv, classes=classes)
        test = read_label_csv(args.test_csv, classes=train.classes)
        title = f"{args.train_csv.name} -> {args.test_csv.name}"
    elif args.data:
        if "test" in args.train_split.lower():
            print(f"error: refusing to train on the test split {args.train_split!r}", file=sys.stderr)
            return 2
        train = read_split(args.data, args.train_split, classes)
        test = read_split(args.data, args.test_split, train.classes)
        title = f"{args.data.name} {args.train_split} -> {args.test_split}"
    else:
        print("error: give --data, or --train-csv and --test-csv", file=sys.stderr)
        return 2
    if limit:
        train = train.limit_per_class(limit, seed=args.seed)
        test = test.limit_per_class(limit, seed=args.seed)
    probe = ProbeConfig(epochs=args.epochs, lr=FER_PROBE.lr, batch_size=FER_PROBE.batch_size, seed=args.seed,
                        device=args.device)
    report = run_fer(train, test, parse_feature_names(features), _settings(args), probe=probe, title=title)
    print(report.table)
    for what, path in report.files.items():
        print(f"{what}: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 2 usage or data error)."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    if args.command == "features":
        for name, text in available_features().items():
            print(f"{name:20s} {text}")
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return _verify(args) if args.command == "verify" else _fer(args)
    except LatentFaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
