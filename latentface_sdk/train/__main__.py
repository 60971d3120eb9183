"""``python -m latentface_sdk.train stage1|stage2 ...`` (also the ``latentface-train`` console script)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the stage-1 or stage-2 trainer."""
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: latentface-train {stage1,stage2} [options]   (add --help after the stage for its options)"
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
    print(f"unknown stage {stage!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
