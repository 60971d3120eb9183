"""How much closer two photos of one person are with the generated ``Z_id`` than with their raw ``Z_exp``.

Runs on the held-out celeba10k ``verify`` identities (never used for training): every image is cropped
and encoded with the stage-1 encoders, the two RDMs generate ``Z_id`` (texture and shape), and for each
feature (texture, shape, both concatenated) we report over *all* image pairs:

- ``same``: mean cosine distance of same-identity pairs;
- ``different``: mean cosine distance of different-identity pairs;
- ``ratio`` = same / different (lower = identities better separated);
- ``auc``: ROC AUC of cosine similarity for telling same from different pairs;

for ``Z_exp`` and for ``Z_id``, and ``gain`` = ratio(Z_exp) / ratio(Z_id) (> 1: Z_id brings the two
photos of a person closer, relative to other people).

Before the cosine distances, both latents are standardised with the RDM's stored training statistics
(``latent_mean``/``latent_std``, computed on the training ``Z_exp``; nothing is fitted on the verify
images), because raw latents share a large common component that makes every cosine distance tiny.
``--features centered`` only subtracts the mean, ``--features raw`` uses the latents as they are.

Usage::

    python experiments/rdm_identity_gap.py --model runs/stage2 [--data ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


def _cosine_distance_matrix(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return 1.0 - x @ x.T


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with average ranks for ties) of ``scores`` for ``positive`` labels."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = (ends - counts + 1 + ends) / 2.0
    ranks = avg_rank[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pair_distances(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean cosine distance of same- and different-label pairs, their ratio and the same/different AUC."""
    labels = np.asarray(labels)
    dist = _cosine_distance_matrix(features)
    iu = np.triu_indices(len(labels), k=1)
    d = dist[iu]
    same = labels[iu[0]] == labels[iu[1]]
    if not same.any() or same.all():
        raise ValueError("need both same-identity and different-identity pairs")
    mean_same, mean_diff = float(d[same].mean()), float(d[~same].mean())
    return {
        "same": mean_same,
        "different": mean_diff,
        "ratio": mean_same / mean_diff if mean_diff > 0 else float("inf"),
        "auc": _auc(-d, same),
        "pairs_same": int(same.sum()),
        "pairs_different": int((~same).sum()),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--model", type=Path, required=True, help="model folder with stage-1 and stage-2 weights")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="shared data folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the DDIM noise")
    p.add_argument("--num-samples", type=int, default=1, help="RDM samples averaged per image")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's sample_steps)")
    p.add_argument("--init", choices=("noise", "zero"), default=None,
                   help="DDIM start: Gaussian noise or z_T = 0 (default: the model's rdm.sample_init)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--no-detect", action="store_true", help="centre crops instead of MTCNN")
    p.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "benchmarks")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--features", choices=("standardized", "centered", "raw"), default="standardized",
                   help="how latents are prepared before cosine distances (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Encode the verify identities, generate ``Z_id`` and measure both; returns the results."""
    from latentface_sdk.cropset import prepare_crops
    from latentface_sdk.devices import resolve_device
    from latentface_sdk.model_folder import RDM_SHAPE, RDM_TEXTURE, load_model_folder, load_part
    from latentface_sdk.train.groups import celeba_identity_groups
    from latentface_sdk.train.stage2 import RDMPair, build_autoencoder, encode_latents

    device = resolve_device(args.device)
    mcfg, state = load_model_folder(args.model)
    ae = build_autoencoder(mcfg, state, source=str(args.model))
    pair = RDMPair(mcfg.rdm)
    load_part(pair.rdm_texture, state, RDM_TEXTURE, str(args.model))
    load_part(pair.rdm_shape, state, RDM_SHAPE, str(args.model))
    pair.to(device).eval()

    # Evaluation only: the verify split is read on purpose here, and never trained on.
    groups = celeba_identity_groups(args.data, "verify", allow_verify=True, min_size=2)
    t0 = time.perf_counter()
    crops = prepare_crops(groups.paths, mcfg.crop, detect=not args.no_detect, fallback="center",
                          cache_file=args.cache_dir / "celeba_verify_crops.npz", progress=True)
    keep = np.flatnonzero(crops.ok)
    labels = np.asarray(groups.groups)[keep]
    latents = encode_latents(ae, crops.crops[keep], batch_size=args.batch_size, device=device, progress=True)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    z_exp: dict[str, np.ndarray] = {}
    z_id: dict[str, np.ndarray] = {}
    for name, rdm in (("texture", pair.rdm_texture), ("shape", pair.rdm_shape)):
        cond = latents[name].to(device)
        init = args.init or mcfg.rdm.sample_init
        parts = []
        for i in range(0, cond.shape[0], args.batch_size):
            c = cond[i : i + args.batch_size]
            noise = torch.zeros(args.num_samples * c.shape[0], c.shape[1]) if init == "zero" else None
            parts.append(rdm.sample(c, steps=args.steps, generator=gen, num_samples=args.num_samples,
                                    noise=noise).cpu())
        mean = rdm.latent_mean.cpu() if args.features != "raw" else torch.zeros(())
        std = rdm.latent_std.cpu() if args.features == "standardized" else torch.ones(())
        z_exp[name] = ((latents[name] - mean) / std).numpy()
        z_id[name] = ((torch.cat(parts) - mean) / std).numpy()
    z_exp["texture+shape"] = np.concatenate([z_exp["texture"], z_exp["shape"]], axis=1)
    z_id["texture+shape"] = np.concatenate([z_id["texture"], z_id["shape"]], axis=1)
    results: dict[str, Any] = {
        "model": str(args.model),
        "images": int(len(keep)),
        "identities": int(len(set(labels.tolist()))),
        "face_crops": crops.counts(),
        "seed": args.seed,
        "num_samples": args.num_samples,
        "init": args.init or mcfg.rdm.sample_init,
        "steps": args.steps or mcfg.rdm.sample_steps,
        "features": args.features,
        "seconds": 0.0,
        "results": {},
    }
    for name in ("texture", "shape", "texture+shape"):
        exp_stats = pair_distances(z_exp[name], labels)
        id_stats = pair_distances(z_id[name], labels)
        results["results"][name] = {
            "z_exp": exp_stats,
            "z_id": id_stats,
            "gain": exp_stats["ratio"] / id_stats["ratio"] if id_stats["ratio"] > 0 else float("inf"),
        }
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    lines = [
        f"celeba10k verify: {results['images']} images of {results['identities']} identities "
        f"(DDIM {results['steps']} steps from {results['init']}, {results['num_samples']} sample(s), seed "
        f"{results['seed']}, {results['features']} latents)",
        f"{'feature':<14} {'latent':<6} {'same':>8} {'different':>10} {'ratio':>7} {'auc':>7}",
    ]
    for name, f in results["results"].items():
        for key in ("z_exp", "z_id"):
            s = f[key]
            lines.append(f"{name:<14} {key:<6} {s['same']:8.4f} {s['different']:10.4f} {s['ratio']:7.4f} "
                         f"{s['auc']:7.4f}")
        lines.append(f"{name:<14} gain (ratio Z_exp / ratio Z_id) = {f['gain']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    results = run(args)
    print(format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
