"""The old entry point of the benchmark runs, kept so that recorded commands still work: it calls the suite.

``python -m benchmarks`` replaced it (``list``, ``run``, ``report``; see ``benchmarks/__main__.py`` and
``docs/benchmarks.md``). The old options map onto it:

=========================================  ==========================================================
``python benchmarks/run_all.py``           ``python -m benchmarks run --all --threads 1``
``... --threads 2 --quick --out DIR``      ``python -m benchmarks run --all --threads 2 --quick --out DIR``
``... --only encode pipeline``             ``python -m benchmarks run encode pipeline`` (results names
                                           or benchmark names)
``... --report-only``                      ``python -m benchmarks report``
=========================================  ==========================================================
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import main as suite_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads for every family (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check that everything runs")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="folder of the JSON results")
    p.add_argument("--doc", type=Path, default=None, help="markdown report (default docs/benchmarks.md)")
    p.add_argument("--only", nargs="*", default=None, help="run only these families")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the JSON files")
    args = p.parse_args(argv)
    if args.report_only:
        report = ["report"] + (["--results", str(args.out)] if args.out else [])
        return suite_main(report + (["--out", str(args.doc)] if args.doc else []))
    run = ["run", *(args.only if args.only else ["--all"]), "--threads", str(args.threads)]
    run += ["--quick"] if args.quick else []
    run += ["--data", str(args.data)] if args.data else []
    run += ["--out", str(args.out)] if args.out else []
    if args.doc is None:
        return suite_main(run)
    code = suite_main(run + ["--no-report"])
    if code:
        return code
    report = ["report", "--out", str(args.doc)] + (["--results", str(args.out)] if args.out else [])
    return suite_main(report)


if __name__ == "__main__":
    sys.exit(main())
