"""Facial expression recognition with the paper's linear probe, our features and baselines side by side.

    # FER-2013: train on Training, test on PublicTest (the validation split: never train on it)
    python examples/fer.py --data ../shared/data/fer2013 \
        --features raw,lbp,hog,random-encoder,latentface-fer --out runs/fer

    # a quick look: at most 30 images per class in each split
    python examples/fer.py --data ../shared/data/fer2013 --limit-per-class 30 \
        --features raw,lbp,hog --out runs/fer-quick

    # RAF-DB aligned, or any <split>/<class>/*.jpg tree; or CSVs of path,label
    python examples/fer.py --data RAF-DB/aligned --train-split train --test-split test --out runs/raf
    python examples/fer.py --train-csv train.csv --test-csv test.csv --out runs/mine

The probe (BatchNorm1d + Linear, Adam, lr 1e-3, 20 epochs) trains on frozen, cached features of the
train split; the test split gives accuracy, macro-F1 and one confusion-matrix PNG per feature set.
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
    read_label_csv,
    read_split,
    run_fer,
)
from latentface_sdk.eval.fer import FER_PROBE

DEFAULT_FEATURES = "raw,lbp,hog,random-encoder,latentface-fer"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="image-folder data set: <data>/<split>/<class>/*.jpg")
    p.add_argument("--train-split", default="Training", help="train split folder (default Training)")
    p.add_argument("--test-split", default="PublicTest", help="test split folder (default PublicTest)")
    p.add_argument("--train-csv", type=Path, help="instead of --data: a path,label CSV for training")
    p.add_argument("--test-csv", type=Path, help="instead of --data: a path,label CSV for testing")
    p.add_argument("--classes", help="comma-separated class order (default: the train split's folders)")
    p.add_argument(
        "--limit-per-class", type=int, help="at most N images per class in each split (quick runs)"
    )
    p.add_argument(
        "--features", default=DEFAULT_FEATURES, help=f"comma-separated (default {DEFAULT_FEATURES})"
    )
    p.add_argument("--model", help="model name or folder for FaceEncoder.from_pretrained (default: bundled)")
    p.add_argument("--out", type=Path, default=Path("runs/fer"), help="folder for table, JSON and PNGs")
    p.add_argument("--cache-dir", type=Path, help="feature cache folder (default: <out>/cache)")
    p.add_argument("--no-detect", action="store_true", help="centre-crop instead of running MTCNN")
    p.add_argument("--device", default="cpu", help="torch device for model features and the probe")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of model feature extraction")
    p.add_argument("--rdm-init", choices=("noise", "zero"), default=None,
                   help="DDIM start of the disentangled feature sets (default: the model's rdm.sample_init)")
    p.add_argument("--rdm-samples", type=int, default=1,
                   help="RDM samples averaged per face for the disentangled feature sets (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random encoder, RDM sampling and probe")
    p.add_argument("--epochs", type=int, default=FER_PROBE.epochs, help="probe epochs (paper: 20)")
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
    names = parse_feature_names(args.features)
    if args.threads:
        torch.set_num_threads(args.threads)
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
    if args.limit_per_class:
        train = train.limit_per_class(args.limit_per_class, seed=args.seed)
        test = test.limit_per_class(args.limit_per_class, seed=args.seed)
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
        epochs=args.epochs,
        lr=FER_PROBE.lr,
        batch_size=FER_PROBE.batch_size,
        seed=args.seed,
        device=args.device,
    )
    report = run_fer(train, test, names, settings, probe=probe, title=title)
    print(report.table)
    for what, path in report.files.items():
        print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
