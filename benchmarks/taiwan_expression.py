"""Expression on people the model never saw: the Taiwan corpus's held-out performers (issue 24).

    python benchmarks/taiwan_expression.py --model weights/latentface-cpu-small --out runs/taiwan \
        --features lbp,hog,latentface,latentface-fer,latentface-expression

The Taiwan Corpora of Chinese Emotions (29 performers, 7 posed expressions, ../shared/data/taiwan_tcce)
is split by performer: the linear probe of the FER protocol (BatchNorm + Linear, Adam, 20 epochs) is
trained on the 24 performers that the expression recipes may train on (without labels) and tested on the
5 held out of every training run (``latentface_sdk.train.data.TAIWAN_HOLDOUT``): a second expression
benchmark beside FER-2013, on different people, faces and camera. The labels are used by the probe only.
Writes the split as ``train.csv``/``test.csv`` and the eval's ``fer.md``/``fer.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from latentface_sdk.eval import EvalSettings, parse_feature_names, run_fer
from latentface_sdk.eval.datasets import read_label_csv
from latentface_sdk.eval.features import FeatureContext
from latentface_sdk.train.data import TAIWAN_HOLDOUT

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def write_split(data: Path, out: Path) -> tuple[Path, Path]:
    """``train.csv`` (performers trained on) and ``test.csv`` (held out) with ``path,label`` rows."""
    folder = data / "taiwan_tcce"
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out.mkdir(parents=True, exist_ok=True)
    files = {True: out / "test.csv", False: out / "train.csv"}
    for held, path in files.items():
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            for r in rows:
                if (r["identity"] in TAIWAN_HOLDOUT) == held:
                    writer.writerow([str((folder / "images" / r["image"]).resolve()), r["expression"]])
    return files[False], files[True]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", help="model name or folder (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("runs/taiwan"))
    parser.add_argument("--features", default="lbp,hog,latentface,latentface-fer,latentface-expression")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    train_csv, test_csv = write_split(args.data, args.out)
    train = read_label_csv(train_csv, classes=CLASSES)
    test = read_label_csv(test_csv, classes=CLASSES)
    settings = EvalSettings(out_dir=args.out, context=FeatureContext(model=args.model),
                            progress=not args.no_progress)
    report = run_fer(train, test, parse_feature_names(args.features), settings,
                     title=f"Taiwan corpus: {len(train)} images of 24 performers -> {len(test)} "
                     "of 5 held out")
    print(report.table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
