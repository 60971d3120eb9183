"""The benchmark suite of latentface-sdk: ``python -m benchmarks list | run | report``.

Each benchmark is a script of this folder that runs alone (``python benchmarks/encode_speed.py ...``);
:mod:`benchmarks.registry` says what each measures, which page shows its numbers and where its results
file is; :mod:`benchmarks.report` makes ``docs/benchmarks.md`` from ``templates/benchmarks.md`` and the
results. Not part of the installed package.
"""
