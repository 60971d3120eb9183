"""Face verification with LatentFace: one pair by hand, then the paper's 10-fold linear-probe protocol.

    .venv/bin/python examples/verify.py --quick    # 2 of the 10 folds, LBP vs LatentFace (about 10 seconds)
    .venv/bin/python examples/verify.py            # all 10 folds (about 2 minutes)

Times measured on a 2-core CPU with nothing cached (2026-11-26): ``--quick`` 10.6 s; the full
protocol with every feature set of docs/results.md 2.0 min (this script computes a subset).

Run from the repository root with ``../shared/data`` beside it (or pass ``--data``). It shows the
API a verification user needs: ``FaceEncoder.verify(a, b)`` answers "same person?" directly (the cosine
of the two faces' ``identity_embedding`` against the model's threshold, chosen on training identities);
``identity_embedding`` gives the unit vectors themselves (``latentface-embedding`` in the table), and
``disentangle(...).verification_features`` the paper's raw features, which need a trained probe. The
eval package's ``read_pairs`` and ``run_verification`` run the protocol (MTCNN crops, cached features,
a BatchNorm + Linear probe on the pair features of nine folds, tested on the tenth, and the cosine
threshold chosen on the same nine folds) with baselines side by side. The table is printed and written,
with ROC curves, to ``--out``.

Every option of the protocol (LFW layout, other models, RDM settings):
``python -m latentface_sdk.eval verify --help``.
"""

from __future__ import annotations

from _options import example_parser

from latentface_sdk import FaceEncoder
from latentface_sdk.eval import EvalSettings, parse_feature_names, read_pairs, run_verification


def main(argv: list[str] | None = None) -> int:
    parser = example_parser(__doc__, quick="2 folds, LBP vs LatentFace (under a minute)",
                            out="runs/verify-example")
    args = parser.parse_args(argv)

    # 1. One pair by hand: verify() gives the cosine of the identity embeddings and the decision.
    pairs = read_pairs(args.data / "celeba10k" / "pairs_verify.txt")
    encoder = FaceEncoder.from_pretrained()
    same = next(p for p in pairs.pairs if p.same)
    other = next(p for p in pairs.pairs if not p.same)
    for label, pair in (("same person", same), ("two people", other)):
        v = encoder.verify(pair.path_a, pair.path_b)
        answer = "same" if bool(v.same_person[0]) else "different"
        print(f"{label:12s} {pair.path_a.name} vs {pair.path_b.name}: cosine {float(v.similarity[0]):+.3f} "
              f"-> {answer} (threshold {v.threshold:.3f})")

    # 2. The protocol: k-fold linear probe on pair features, LatentFace beside baselines.
    if args.quick:
        pairs = pairs.select_folds([0, 1])
        features = "lbp,latentface-verify,latentface-embedding"
    else:
        features = "raw,lbp,hog,random-encoder,latentface,latentface-verify,latentface-embedding"
    report = run_verification(pairs, parse_feature_names(features), EvalSettings(out_dir=args.out))
    print(report.table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
