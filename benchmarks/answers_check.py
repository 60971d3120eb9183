"""Do the shipped answers answer? The identity embedding, ``verify`` and ``expressions`` of a model, used
directly as an app would, on data the heads never saw.

    python benchmarks/answers_check.py --threads 2 --json benchmarks/results/answers.json \
        --pictures docs/images

1. **identity embedding, cosine**: the celeba10k ``verify`` pairs (identities never used to fit anything),
   10 folds, the cosine threshold chosen on the other 9 (the protocol of ``latentface_sdk.eval verify``);
   beside it cosine on LBP histograms of the same crops and the linear probe on the same model's
   ``verification_features`` (what a researcher would train). Then the model's own threshold
   (``enc.identity_threshold``, chosen on training identities) on all 2,200 pairs: accuracy, false-accept
   and false-reject rates.
2. **the shared photos**: every face of ``../shared/data/photos`` (``faces="all"``), labelled by who it is;
   the smallest cosine of two photos of one person against the largest of two people (goal: every
   same-person pair above every different-person pair), and a similarity-matrix picture.
3. **expressions**: ``enc.expressions`` on FER-2013 ``PublicTest`` (the validation split: the head trained
   on ``Training``; crops as the FER protocol cuts them, MTCNN with a centre fallback), accuracy, macro-F1
   and the confusion matrix; and on the Taiwan corpus's five held-out performers (tw26-tw30; colour studio
   photos, detected by MTCNN as any photo), a data set the head never saw.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import base_parser, check_setup, machine, write_json  # noqa: E402

from latentface_sdk import Encoding, FaceEncoder  # noqa: E402
from latentface_sdk.cropset import prepare_crops  # noqa: E402
from latentface_sdk.eval.baselines import lbp_histograms  # noqa: E402
from latentface_sdk.eval.datasets import read_split  # noqa: E402
from latentface_sdk.eval.fer import confusion_matrix, macro_f1  # noqa: E402
from latentface_sdk.eval.pairs import read_pairs  # noqa: E402
from latentface_sdk.eval.verification import choose_threshold, evaluate_verification  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: Who is in each shared photo: its largest faces, left to right (a photo's other, smaller faces, such as
#: a bystander in the background, are not labelled and left out).
PHOTO_PEOPLE: dict[str, list[str]] = {
    "32bit.png": ["Obama"], "alex-lacamoire.png": ["Lacamoire"], "biden.jpg": ["Biden"],
    "obama-1080p.jpg": ["Obama"], "obama2.jpg": ["Obama"], "obama_and_biden.jpg": ["Biden", "Obama"],
    "obama_partial_face.jpg": ["Obama"], "obama_small.jpg": ["Obama"], "two_people.jpg": ["Obama", "Biden"],
}
TAIWAN_HELD_OUT = ("tw26", "tw27", "tw28", "tw29", "tw30")


def labelled_faces(enc: Encoding, source: int, n: int) -> list[int]:
    """Rows of the ``n`` largest faces of input ``source``, ordered left to right (or fewer when fewer)."""
    rows = [i for i in range(len(enc)) if int(enc.source[i]) == source and bool(enc.ok[i])]
    boxes = enc.boxes
    rows.sort(key=lambda i: -float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])))
    return sorted(rows[:n], key=lambda i: float(boxes[i, 0] + boxes[i, 2]))


def folds_accuracy(cos: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    accs = []
    for f in np.unique(folds):
        t = choose_threshold(cos[folds != f], labels[folds != f])
        accs.append(float(np.mean((cos[folds == f] > t) == labels[folds == f])))
    return 100 * float(np.mean(accs)), 100 * float(np.std(accs, ddof=1) / np.sqrt(len(accs)))


def cosine(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    xa, xb = x[a], x[b]
    return np.sum(xa * xb, 1) / (np.linalg.norm(xa, axis=1) * np.linalg.norm(xb, axis=1) + 1e-12)


def identity_check(enc: FaceEncoder, data: Path, cache: Path, quick: bool) -> dict[str, object]:
    pairs = read_pairs(data / "celeba10k" / "pairs_verify.txt")
    if quick:
        pairs = pairs.select_folds([0, 1])
    images = sorted({p.path_a for p in pairs.pairs} | {p.path_b for p in pairs.pairs})
    row = {p: i for i, p in enumerate(images)}
    a = np.array([row[p.path_a] for p in pairs.pairs])
    b = np.array([row[p.path_b] for p in pairs.pairs])
    labels, folds = pairs.labels, pairs.folds
    cs = prepare_crops(images, enc.config.crop, fallback="center", cache_file=cache / "verify_crops.npz",
                       progress=False)
    crops = list(cs.crops)
    t0 = time.perf_counter()
    emb = enc.identity_embedding(crops, detect=False).embeddings.numpy()
    seconds = time.perf_counter() - t0
    cos = np.sum(emb[a] * emb[b], 1)
    acc, sem = folds_accuracy(cos, labels, folds)
    thr = enc.identity_threshold
    lbp = lbp_histograms(cs.crops)
    lbp_acc, lbp_sem = folds_accuracy(cosine(lbp, a, b), labels, folds)
    d = enc.disentangle(crops, detect=False)
    vf = d.verification_features.numpy()
    probe = evaluate_verification(vf, a, b, labels, folds, name="verification_features")
    raw_acc, raw_sem = folds_accuracy(cosine(vf, a, b), labels, folds)
    return {
        "pairs": int(len(labels)), "images": len(images), "crops": cs.counts(),
        "embedding_cosine": {"accuracy": acc, "sem": sem},
        "lbp_cosine": {"accuracy": lbp_acc, "sem": lbp_sem},
        "verification_features_cosine": {"accuracy": raw_acc, "sem": raw_sem},
        "verification_features_probe": {"accuracy": 100 * float(probe.probe_accuracy.mean()),
                                        "sem": 100 * float(probe.probe_accuracy.std(ddof=1)
                                                           / np.sqrt(len(probe.probe_accuracy)))},
        "at_model_threshold": {
            "threshold": thr,
            "accuracy": 100 * float(np.mean((cos >= thr) == labels)),
            "false_accept_rate": 100 * float(np.mean(cos[~labels] >= thr)),
            "false_reject_rate": 100 * float(np.mean(cos[labels] < thr)),
        },
        "embedding_ms_per_face": 1000 * seconds / len(crops),
        # the dial: other thresholds an app may prefer (fewer false accepts, more false rejects)
        "other_thresholds": [{"threshold": t, "accuracy": 100 * float(np.mean((cos >= t) == labels)),
                              "false_accept_rate": 100 * float(np.mean(cos[~labels] >= t)),
                              "false_reject_rate": 100 * float(np.mean(cos[labels] < t))}
                             for t in (0.2, 0.3, 0.4, 0.5)],
    }


def photos_check(enc: FaceEncoder, data: Path, pictures: Path | None) -> dict[str, object]:
    folder = data / "photos"
    paths = [folder / name for name in sorted(PHOTO_PEOPLE)]
    r = enc.identity_embedding([str(p) for p in paths], faces="all")
    labels: list[str] = []
    keep: list[int] = []
    for name in sorted(PHOTO_PEOPLE):
        src = sorted(PHOTO_PEOPLE).index(name)
        rows = labelled_faces(r.encoding, src, len(PHOTO_PEOPLE[name]))
        if len(rows) != len(PHOTO_PEOPLE[name]):
            raise SystemExit(f"{name}: found {len(rows)} face(s), expected {len(PHOTO_PEOPLE[name])}")
        for i, who in zip(rows, PHOTO_PEOPLE[name], strict=True):
            keep.append(i)
            labels.append(f"{who} ({name})")
    emb = r.embeddings[keep]
    sim = (emb @ emb.T).numpy()
    who = [lab.split(" (")[0] for lab in labels]
    same, diff = [], []
    for i in range(len(keep)):
        for j in range(i + 1, len(keep)):
            (same if who[i] == who[j] else diff).append(float(sim[i, j]))
    out = {"faces": labels, "similarity": sim.round(4).tolist(), "min_same_person": min(same),
           "max_two_people": max(diff), "separated": min(same) > max(diff),
           "threshold": enc.identity_threshold,
           "same_pairs_accepted": int(np.sum(np.array(same) >= enc.identity_threshold)),
           "same_pairs": len(same),
           "different_pairs_accepted": int(np.sum(np.array(diff) >= enc.identity_threshold)),
           "different_pairs": len(diff)}
    if pictures is not None:
        draw_similarity(sim, labels, enc.identity_threshold, pictures / "identity_similarity.png")
        out["picture"] = "docs/images/identity_similarity.png"
    return out


def draw_similarity(sim: np.ndarray, labels: list[str], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 8))
    im = ax.imshow(sim, cmap="RdYlGn", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            mark = "*" if sim[i, j] >= threshold and i != j else ""
            ax.text(j, i, f"{sim[i, j]:.2f}{mark}", ha="center", va="center", fontsize=7)
    ax.set_title("identity_embedding cosine of every face in ../shared/data/photos\n"
                 f"(* = same person by verify(): cosine >= threshold {threshold:.3f})", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scores(y: np.ndarray, pred: np.ndarray, n: int) -> dict[str, object]:
    cm = confusion_matrix(y, pred, n)
    return {"n": int(len(y)), "accuracy": 100 * float(np.mean(pred == y)),
            "macro_f1": 100 * float(macro_f1(cm)), "confusion": cm.tolist()}


def expression_check(enc: FaceEncoder, data: Path, cache: Path, quick: bool) -> dict[str, object]:
    classes = list(enc.config.heads.expression_classes)
    test = read_split(data / "fer2013", "PublicTest", classes)
    if quick:
        test = test.limit_per_class(20, seed=0)
    cs = prepare_crops(test.paths, enc.config.crop, fallback="center",
                       cache_file=cache / f"fer_publictest{'_quick' if quick else ''}.npz", progress=False)
    t0 = time.perf_counter()
    r = enc.expressions(list(cs.crops), detect=False)
    seconds = time.perf_counter() - t0
    pred = r.probabilities.argmax(1).numpy()
    fer = scores(test.labels, pred, len(classes))
    fer["crops"] = cs.counts()
    fer["ms_per_face"] = 1000 * seconds / len(cs.crops)
    # Taiwan: colour studio photos of performers the head never saw, detected by MTCNN as any photo.
    rows = list(csv.DictReader(open(data / "taiwan_tcce" / "labels.csv", newline="")))
    rows = [x for x in rows if x["identity"] in TAIWAN_HELD_OUT and x["expression"] in classes]
    if quick:
        rows = rows[:40]
    tw = enc.expressions([str(data / "taiwan_tcce" / "images" / x["image"]) for x in rows])
    ok = tw.ok.numpy()
    y = np.array([classes.index(x["expression"]) for x in rows])[ok]
    taiwan = scores(y, tw.probabilities.argmax(1).numpy()[ok], len(classes))
    taiwan["no_face"] = int((~ok).sum())
    return {"classes": classes, "fer2013_publictest": fer, "taiwan_held_out": taiwan}


def main() -> None:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--pictures", type=Path, default=None, help="write identity_similarity.png here")
    args = p.parse_args()
    enc, cache = check_setup(args, "answers_check")
    t0 = time.perf_counter()
    result = {
        "model": {"name": enc.config.name, "checksum": enc.config.checksum,
                  "heads": {k: v for k, v in enc.config.to_dict()["heads"].items() if k != "fitted"}},
        "quick": bool(args.quick),
        "identity": identity_check(enc, args.data, cache, args.quick),
        "photos": photos_check(enc, args.data, args.pictures),
        "expression": expression_check(enc, args.data, cache, args.quick),
        "seconds": time.perf_counter() - t0,
        "machine": machine(args.threads),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
