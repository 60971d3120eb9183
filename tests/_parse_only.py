"""Run a command up to its argument parsing, then stop (used by tests/test_docs_snippets.py).

    python tests/_parse_only.py script PATH ARGS...       # a Python script
    python tests/_parse_only.py module NAME ARGS...       # python -m NAME
    python tests/_parse_only.py console NAME ARGS...      # an installed console script

``argparse.ArgumentParser.parse_args`` is wrapped: when a parser accepts the arguments, this prints
``PARSED-OK <prog>`` and exits 0 before any work starts; a parser that refuses them exits 2 as usual.
A target that parses no arguments runs to its end and prints ``RAN-TO-END``. So a documented long job (a
training run, a full benchmark) is checked for a script or module that exists, imports that work and flags
that its parser accepts, in a second.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from importlib.metadata import entry_points
from typing import Any

_original = argparse.ArgumentParser.parse_args


def _parse_then_stop(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
    _original(self, args, namespace)
    print(f"PARSED-OK {self.prog}", flush=True)
    raise SystemExit(0)


argparse.ArgumentParser.parse_args = _parse_then_stop  # type: ignore[assignment,method-assign]

kind, target, *rest = sys.argv[1:]
sys.argv = [target, *rest]
if kind == "script":
    sys.path[0] = os.path.dirname(os.path.abspath(target))  # as `python PATH` sets it
    runpy.run_path(target, run_name="__main__")
elif kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
elif kind == "console":
    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == target]
    raise SystemExit(entry.load()())
else:
    raise SystemExit(f"unknown kind {kind!r}")
# the target takes no arguments and ran to its end (a quick script): it ran as pasted
print("RAN-TO-END", flush=True)
