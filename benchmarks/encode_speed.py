"""Encode throughput on pre-cropped 64x64 faces, and the achieved GFLOP/s against this machine's matmul peak.

Measured in one process, with the same torch thread count throughout:

- ``peak``: GFLOP/s of a large fp32 matrix product (``2048 x 2048 @ 2048 x 2048``), the machine's
  practical peak for this torch build and thread count, timed before and after the encode runs (the
  higher median is used, which is the conservative choice on a busy machine);
- ``flops_per_image``: FLOPs of the stage-1 encoders for one image, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add);
- for batch sizes 1, 8, 32, 128: images/s of ``FaceEncoder.encode(crops, detect=False, batch_size=B)``
  (the SDK call: conversion, centred crop, network) and of the bare network
  (``autoencoder.encode`` on a ready tensor), each with the fast path (channels-last weights, the
  default) and the plain layout; GFLOP/s = images/s x FLOPs per image, and its fraction of the peak;
- a ``torch.profiler`` table of the top operators of the SDK call at batch 32, both layouts.

Usage::

    python benchmarks/encode_speed.py --threads 2 --repeats 5 --json benchmarks/results/encode.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

BATCH_SIZES = (1, 8, 32, 128)
GOAL_BATCH = 32
GOAL_FRACTION = 0.40


def matmul_peak(repeats: int, n: int = 2048) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` fp32 matrix product (median, min, max of ``repeats`` timings)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    seconds = _bench.time_runs(lambda: torch.mm(a, b, out=out), repeats, warmup=2)
    flops = 2.0 * n**3
    return {"n": n, "gflops": _bench.rate(flops / 1e9, seconds), "seconds": _bench.stats(seconds)}


def count_flops(enc: Any, batch: int = 8) -> float:
    """FLOPs of the stage-1 encoders per image (FlopCounterMode, 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch, 3, 64, 64)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        enc.autoencoder.encode(x)
    return counter.get_total_flops() / batch


def run(args: Any) -> dict[str, Any]:
    import torch

    _bench.set_threads(args.threads)
    enc, model_desc = _bench.load_model()
    n_base = 32 if args.quick else 128
    sizes = (1, 8, 32) if args.quick else BATCH_SIZES
    crops = _bench.face_crops(args.data, max(n_base, 2 * max(sizes)))
    peak = first_peak = matmul_peak(args.repeats, 512 if args.quick else 2048)
    flops = count_flops(enc)
    peak_gf = peak["gflops"]["median"]  # updated after the encode runs (the higher of the two medians)
    print(f"matmul peak: {_bench.fmt(peak['gflops'])} GFLOP/s; encoders: {flops / 1e9:.4f} GFLOP/image",
          flush=True)

    rows: list[dict[str, Any]] = []
    for bs in sizes:  # both layouts at each batch size, one after the other (same machine state)
        n = max(n_base, 2 * bs)
        batch = crops[:n]
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0  # channels-last, like the SDK's
        for layout in ("fast", "plain"):
            enc.use_channels_last(layout == "fast")

            def sdk(batch: Any = batch, bs: int = bs) -> None:
                enc.encode(batch, detect=False, batch_size=bs)

            def net(x: Any = x, bs: int = bs) -> None:
                with torch.inference_mode():
                    for s in range(0, x.shape[0], bs):
                        enc.autoencoder.encode(x[s : s + bs])

            for what, fn in (("sdk", sdk), ("network", net)):
                seconds = _bench.time_runs(fn, args.repeats, warmup=1)
                ips = _bench.rate(n, seconds)
                gf = _bench.stats([v * flops / 1e9 for v in ips["values"]])
                row = {"layout": layout, "call": what, "batch_size": bs, "images": n, "images_per_s": ips,
                       "gflops": gf, "fraction_of_peak": gf["median"] / peak_gf}
                rows.append(row)
                print(f"{layout:5s} {what:7s} batch {bs:3d}: {_bench.fmt(ips)} img/s, "
                      f"{gf['median']:.1f} GFLOP/s = {row['fraction_of_peak']:.0%} of peak", flush=True)

    # The peak again after the encode runs: the higher median is used (conservative on a busy machine).
    peak_after = matmul_peak(args.repeats, 512 if args.quick else 2048)
    if peak_after["gflops"]["median"] > peak_gf:
        peak, peak_gf = peak_after, peak_after["gflops"]["median"]
        for row in rows:
            row["fraction_of_peak"] = row["gflops"]["median"] / peak_gf
    print(f"matmul peak after: {_bench.fmt(peak_after['gflops'])} GFLOP/s; used {peak_gf:.1f}", flush=True)

    profiles: dict[str, list[dict[str, Any]]] = {}
    from torch.profiler import ProfilerActivity, profile

    batch32 = crops[: max(n_base, 64)]
    for layout in ("fast", "plain"):
        enc.use_channels_last(layout == "fast")
        enc.encode(batch32, detect=False, batch_size=GOAL_BATCH)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            enc.encode(batch32, detect=False, batch_size=GOAL_BATCH)
        profiles[layout] = _bench.top_ops(prof)
    enc.use_channels_last(True)

    def pick(layout: str, call: str, bs: int) -> dict[str, Any]:
        return next(r for r in rows if r["layout"] == layout and r["call"] == call and r["batch_size"] == bs)

    goal_bs = GOAL_BATCH if GOAL_BATCH in sizes else sizes[-1]
    achieved = pick("fast", "sdk", goal_bs)["fraction_of_peak"]
    speedup = (pick("fast", "sdk", goal_bs)["images_per_s"]["median"]
               / pick("plain", "sdk", goal_bs)["images_per_s"]["median"])
    return {
        "benchmark": "encode",
        "command": _bench.command(),
        "machine": _bench.machine(args.threads),
        "model": model_desc,
        "matmul_peak": peak,
        "matmul_peak_before_after": [first_peak, peak_after],
        "flops_per_image": flops,
        "rows": rows,
        "profile_batch32": profiles,
        "profile_images": int(batch32.shape[0]),
        "goal": {"what": f"SDK encode at batch {goal_bs} reaches >= {GOAL_FRACTION:.0%} of the matmul peak",
                 "achieved": achieved, "target": GOAL_FRACTION, "met": achieved >= GOAL_FRACTION},
        "fast_over_plain_batch32": speedup,
    }


def main(argv: list[str] | None = None) -> int:
    return _bench.goal_main(__doc__, run, ".0%", argv)

if __name__ == "__main__":
    sys.exit(main())
