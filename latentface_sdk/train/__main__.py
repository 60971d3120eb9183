"""``python -m latentface_sdk.train stage1|stage2 ...`` (also the ``latentface-train`` console script)."""

from __future__ import annotations

import sys


def export_main(argv: list[str]) -> int:
    """``latentface-train export``: copy a trained model folder for shipping (optionally half-precision)."""
    import argparse

    import torch

    from ..encoder import FaceEncoder
    from ..errors import LatentFaceError

    parser = argparse.ArgumentParser(
        prog="latentface-train export", description=export_main.__doc__,
        epilog="example:\n  latentface-train export --model runs/s2 --out weights/my-model --half",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model folder (stage-2 output) or name")
    parser.add_argument("--out", required=True, help="destination folder (e.g. weights/<name>)")
    parser.add_argument("--half", action="store_true", help="store float tensors as float16 (half the size)")
    args = parser.parse_args(argv)
    try:
        encoder = FaceEncoder.from_pretrained(args.model, device="cpu")
        folder = encoder.save_pretrained(args.out, storage_dtype=torch.float16 if args.half else None)
    except LatentFaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = (folder / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {folder} (model.safetensors {size:.1f} MiB, sha256 {encoder.config.checksum})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the stage-1 or stage-2 trainer."""
    args = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: latentface-train {stage1,stage2,export} [options]   (add --help after the command for its "
             "options)\n\nexamples:\n"
             "  latentface-train stage1 --out runs/stage1 --shared-root ../shared/data\n"
             "  latentface-train stage2 --stage1 runs/stage1/model --out runs/stage2\n"
             "  latentface-train export --model runs/stage2 --out weights/my-model --half")
    if not args or args[0] in ("-h", "--help"):
        print(usage)
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    if stage == "stage1":
        from .stage1 import main as stage1_main

        return stage1_main(rest)
    if stage == "stage2":
        from .stage2 import main as stage2_main

        return stage2_main(rest)
    if stage == "export":
        return export_main(rest)
    print(f"unknown stage {stage!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
