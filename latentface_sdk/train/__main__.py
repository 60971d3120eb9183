"""``python -m latentface_sdk.train stage1|stage2|export|bundle|split|join ...``
(also ``latentface-train``)."""

from __future__ import annotations

import sys

from ._cli import add_data_options, command_parser, error_exit, stage1_recipe


def export_main(argv: list[str]) -> int:
    """``latentface-train export``: copy a trained model folder for shipping (optionally half-precision)."""
    import torch

    from ..encoder import FaceEncoder
    from ..errors import LatentFaceError
    from ..model_folder import WEIGHTS_NAME

    parser = command_parser("export", export_main.__doc__, "example:\n"
                            "  latentface-train export --model runs/s2 --out weights/my-model --half")
    parser.add_argument("--model", required=True, help="trained model folder (stage-2 output) or name")
    parser.add_argument("--out", required=True, help="destination folder (e.g. weights/<name>)")
    parser.add_argument("--half", action="store_true", help="store float tensors as float16 (half the size)")
    args = parser.parse_args(argv)
    try:
        encoder = FaceEncoder.from_pretrained(args.model, device="cpu")
        folder = encoder.save_pretrained(args.out, storage_dtype=torch.float16 if args.half else None)
    except LatentFaceError as exc:
        return error_exit(exc)
    size = (folder / WEIGHTS_NAME).stat().st_size / 2**20
    print(f"wrote {folder} ({WEIGHTS_NAME} {size:.1f} MiB, sha256 {encoder.config.checksum})")
    return 0


def bundle_main(argv: list[str]) -> int:
    """``latentface-train bundle``: pack a stage-1 recipe's crops and landmarks into one training bundle."""
    import logging
    from pathlib import Path

    from ..errors import LatentFaceError
    from .bundle import DEFAULT_QUALITY, pack_bundle

    parser = command_parser(
        "bundle", bundle_main.__doc__,
        "example:\n"
        "  latentface-train bundle --config latentface_sdk/train/configs/stage1_default.json \\\n"
        "      --shared-root ../shared/data --cache-dir runs/cache --out stage1_default.bundle\n"
        "then, on a machine without the data:\n"
        "  latentface-train stage1 --config latentface_sdk/train/configs/stage1_gpu.json \\\n"
        "      --bundle stage1_default.bundle --out runs/stage1-gpu")
    parser.add_argument("--config", type=Path, help="stage-1 recipe (JSON); defaults to the built-in one")
    parser.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    add_data_options(parser, cache_default=Path("runs/cache"),
                     cache_note="the trainer's cache; default runs/cache", sample_note="a sample")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY,
                        help="JPEG quality of the stored crops")
    parser.add_argument("--subsampling", choices=("4:4:4", "4:2:0"), default="4:4:4",
                        help="JPEG chroma subsampling (4:2:0: smaller, colour less exact)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        report = pack_bundle(stage1_recipe(args), args.out, cache_dir=args.cache_dir, quality=args.quality,
                             subsampling=args.subsampling, progress=not args.no_progress)
    except LatentFaceError as exc:
        return error_exit(exc)
    print(report.summary())
    return 0


def split_main(argv: list[str]) -> int:
    """``latentface-train split``: write a checkpoint as safetensors parts under 16 MiB \
each (and an index)."""
    from ..errors import LatentFaceError
    from .parts import DEFAULT_PART_BYTES, split_checkpoint

    parser = command_parser(
        "split", split_main.__doc__,
        "example:\n  latentface-train split --checkpoint runs/stage1-gpu/checkpoint --out parts/\n"
        "back here: latentface-train join --parts parts/ --out runs/stage1-gpu/checkpoint (then --resume),\n"
        "or latentface-train stage1 --init-from parts/ ...")
    parser.add_argument("--checkpoint", required=True, help="checkpoint or model folder (config.json, "
                        "model.safetensors, optional trainer_state.pt)")
    parser.add_argument("--out", required=True, help="folder for the parts")
    parser.add_argument("--no-optimizer", action="store_true", help="the weights only (no trainer state)")
    parser.add_argument("--max-mib", type=float, default=DEFAULT_PART_BYTES / 2**20,
                        help="every file stays under this many MiB (default 16)")
    args = parser.parse_args(argv)
    try:
        index = split_checkpoint(args.checkpoint, args.out, optimizer=not args.no_optimizer,
                                 max_bytes=int(args.max_mib * 2**20))
    except (LatentFaceError, ValueError, OSError) as exc:
        return error_exit(exc)
    files = sorted(p for p in index.parent.iterdir() if p.name.endswith(".safetensors") or p == index)
    for f in files:
        print(f"{f} {f.stat().st_size / 2**20:.2f} MiB")
    return 0


def join_main(argv: list[str]) -> int:
    """``latentface-train join``: reassemble a checkpoint in parts into a checkpoint folder (for --resume)."""
    from ..errors import LatentFaceError
    from .parts import join_checkpoint

    parser = command_parser("join", join_main.__doc__, "example:\n"
                            "  latentface-train join --parts parts/ --out runs/stage1-gpu/checkpoint")
    parser.add_argument("--parts", required=True, help="folder of model-*/trainer-*.safetensors parts")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    args = parser.parse_args(argv)
    try:
        folder = join_checkpoint(args.parts, args.out)
    except (LatentFaceError, OSError) as exc:
        return error_exit(exc)
    print(f"wrote {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the stage-1 or stage-2 trainer."""
    args = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: latentface-train {stage1,stage2,export,bundle,split,join} [options]   "
             "(add --help after the command for its options)\n\nexamples:\n"
             "  latentface-train stage1 --out runs/stage1 --shared-root ../shared/data\n"
             "  latentface-train stage2 --stage1 runs/stage1/model --out runs/stage2\n"
             "  latentface-train export --model runs/stage2 --out weights/my-model --half\n"
             "  latentface-train bundle --config CONFIG.json --shared-root ../shared/data --out data.bundle\n"
             "  latentface-train split --checkpoint runs/stage1/checkpoint --out parts/\n"
             "  latentface-train join --parts parts/ --out runs/stage1/checkpoint")
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
    commands = {"export": export_main, "bundle": bundle_main, "split": split_main, "join": join_main}
    if stage in commands:
        return commands[stage](rest)
    print(f"unknown stage {stage!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
