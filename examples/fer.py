"""Facial expression recognition with LatentFace: one face by hand, then the paper's linear probe on FER-2013.

    .venv/bin/python examples/fer.py --quick    # 40 images per class, LBP vs LatentFace (about 10 seconds)
    .venv/bin/python examples/fer.py            # all of Training -> PublicTest (several minutes)

``--quick`` only shows the API at work: 280 training images are far too few for a linear probe on
12,800-d features (they score below LBP and HOG there). On the full protocol ``latentface-expression``
scores well above HOG, LBP and the same readout of an untrained model (the numbers: docs/results.md).

Times measured on a 2-core CPU with nothing cached (2026-11-26): ``--quick`` 9.0 s; the full
protocol with every feature set of docs/results.md 6.2 min (this script computes a subset).

Run from the repository root with ``../shared/data`` beside it (or pass ``--data``). It shows the
API an expression user needs: ``FaceEncoder.expression_features(...)`` gives one vector per face for
an expression classifier (the texture and shape latents beside the encoders' pooled intermediate
maps, which keep more of the mouth, eyes and brows than the latents: docs/results.md), and
``FaceEncoder.disentangle(...)`` splits the latents into identity and expression (``Δexp``, the latent
minus the identity the representation diffusion model generates); the eval package's ``read_split`` and
``run_fer`` run the protocol (MTCNN crops, cached features, a BatchNorm + Linear probe trained on the Training
split and tested on PublicTest, the validation split; nothing trains on it) with baselines side by side.

Every option (other data sets, CSV inputs, RDM settings): ``python -m latentface_sdk.eval fer --help``.
"""

from __future__ import annotations

from _options import example_parser

from latentface_sdk import FaceEncoder
from latentface_sdk.eval import EvalSettings, parse_feature_names, read_split, run_fer


def main(argv: list[str] | None = None) -> int:
    parser = example_parser(__doc__, quick="40 images per class, LBP vs LatentFace", out="runs/fer-example")
    args = parser.parse_args(argv)

    train = read_split(args.data / "fer2013", "Training")
    test = read_split(args.data / "fer2013", "PublicTest", train.classes)

    # 1. One face by hand: its expression feature vector, and the identity/expression split of its latents.
    face = test.paths[0]
    encoder = FaceEncoder.from_pretrained()
    x = encoder.expression_features(face, detect=False)  # FER-2013 faces are pre-cropped
    print(f"{face.name} ({test.classes[int(test.labels[0])]}): expression features "
          f"{tuple(x.features.shape)}, parts {list(x.layout)}")
    d = encoder.disentangle(face, detect=False, seed=0)
    print(f"  expression texture norm {float(d.expression_texture.norm()):.2f}, "
          f"identity texture norm {float(d.identity_texture.norm()):.2f}")

    # 2. The protocol: a linear probe on frozen features, LatentFace beside baselines.
    if args.quick:
        train, test = train.limit_per_class(40), test.limit_per_class(40)
        features = "lbp,hog,latentface-expression"
    else:
        features = "raw,lbp,hog,random-encoder,latentface,latentface-fer,latentface-expression"
    report = run_fer(train, test, parse_feature_names(features), EvalSettings(out_dir=args.out),
                     title="FER-2013 Training -> PublicTest")
    print(report.table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
