"""``python -m latentface_sdk.eval verify|fer|features`` (see :mod:`latentface_sdk.eval.cli`)."""

from .cli import main

raise SystemExit(main())
