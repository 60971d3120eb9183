"""Run every benchmark, one process each, and write ``benchmarks/results/*.json`` and ``docs/benchmarks.md``.

The families, each its own script (run alone with the same options):

=====================  =====================================================================
``encode_speed.py``    encode images/s at batch 1/8/32/128, GFLOP/s vs a matmul peak
``pipeline_speed.py``  photos -> features, ours vs facenet-pytorch (MTCNN + InceptionResnetV1)
``latent_ops.py``      disentangle cost over encode, frontalize latency
``memory_scaling.py``  ``latentface encode`` peak RSS and time for N = 1k..10k images
``train_speed.py``     stage-1 (fast vs pytorch3d renderer) and stage-2 training steps
``contention.py``      thread settings beside competing CPU-bound processes
``detection_levers.py`` the photo path: where the time goes, each lever for it, faces found
=====================  =====================================================================

Usage::

    python benchmarks/run_all.py --threads 2          # the full run (~10 minutes on 2 cores)
    python benchmarks/run_all.py --quick --out /tmp/b # tiny sizes: check that everything runs
    python benchmarks/run_all.py --report-only        # rewrite docs/benchmarks.md from the JSON files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench  # noqa: E402

HERE = Path(__file__).resolve().parent
#: (name, script, repeats) in run order.
FAMILIES = [
    ("encode", "encode_speed.py", 5),
    ("latent_ops", "latent_ops.py", 5),
    ("pipeline", "pipeline_speed.py", 3),
    ("train", "train_speed.py", 5),
    ("memory", "memory_scaling.py", 2),
    ("contention", "contention.py", 3),
    ("detection_levers", "detection_levers.py", 3),
]
#: Families whose report section is written only when their JSON files exist (run them with --only).
OPTIONAL = {"contention", "detection_levers"}
DOC = _bench.REPO_ROOT / "docs" / "benchmarks.md"
RESULTS = _bench.RESULTS_DIR


def run_family(name: str, script: str, repeats: int, args: argparse.Namespace, out: Path) -> float:
    def rel(p: Path) -> str:  # paths as a reader would type them from the repository root
        try:
            return os.path.relpath(p.resolve(), _bench.REPO_ROOT) if p.resolve().is_relative_to(_bench.REPO_ROOT) \
                else str(p)
        except ValueError:
            return str(p)

    cmd = [sys.executable, f"benchmarks/{script}", "--threads", str(args.threads), "--repeats", str(repeats),
           "--json", rel(out / f"{name}.json")]
    if args.data.resolve() != _bench.DEFAULT_DATA.resolve():
        cmd += ["--data", str(args.data)]
    if args.quick:
        cmd.append("--quick")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=_bench.REPO_ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed with exit code {proc.returncode}")
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ the report


def _f(s: dict[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})")


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _ops_table(rows: list[dict[str, Any]], key: str = "op") -> list[str]:
    out = ["| operator | self time (ms) | share | calls |", "|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| `{r[key]}` | {r['self_ms']:.1f} | {_pct(r['share'])} | {r['calls']} |")
    return out


def _fn_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| function | own time (s) | share | calls |", "|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| `{r['function']}` | {r['own_s']:.3f} | {_pct(r['share'])} | {r['calls']} |")
    return out


def report(results: dict[str, dict[str, Any]], run_seconds: dict[str, float] | None, threads_cmd: str,
           notes: str = "") -> str:
    enc, lat, pipe = results["encode"], results["latent_ops"], results["pipeline"]
    mem, train = results["memory"], results["train"]
    m = enc["machine"]
    core = {k: r for k, r in results.items()  # contention and the detection levers: their own runs
            if not k.startswith("contention") and k != "detection_levers"}
    busy = not all(r["machine"]["bench_ok_marker"] for r in core.values())
    L: list[str] = []
    add = L.append
    add("# Benchmarks: speed, memory and scaling, with the peers side by side")
    add("")
    add(f"All numbers below come from one run of `{threads_cmd}` (each family in its own process, one after "
        f"the other), on {m['cores']} CPU cores ({m['cpu']}), torch {m['torch']} with **{m['torch_threads']} "
        f"torch thread(s)** everywhere (peers included), no GPU, on {m['when_utc'][:10]}. "
        f"Model: {enc['model']}. Each figure is the **median of several runs (min–max)**; the number of runs "
        f"and every single value are in `benchmarks/results/*.json`, with each script's own command.")
    add("")
    if busy:
        add("**Machine load:** a training job of the project was still running on this machine during the run "
            "(the marker that says the machine is free was absent), so absolute numbers are lower and noisier "
            "than on an idle machine; ratios are measured in the same run, side by side, and are less affected.")
    else:
        add("The machine was otherwise idle (training and evaluation had finished).")
    loads = ", ".join(f"{k} {r['machine']['when_utc'][11:16]} "
                      f"({r['machine'].get('loadavg', r['machine'].get('loadavg_at_start'))[0]:.1f})"
                      for k, r in core.items())
    add(f"Time (UTC) each family finished, and the 1-minute load average then (our own runs included): {loads}.")
    if run_seconds:
        total = sum(run_seconds.values())
        add(f"The whole run took {total / 60:.1f} minutes (" + ", ".join(
            f"{k} {v:.0f} s" for k, v in run_seconds.items()) + ").")
    add("")

    if notes:
        add("**Notes on this run:** " + notes.strip())
        add("")

    # Goals.
    add("## Goals")
    add("")
    add("| goal | target | measured (same run) | verdict |")
    add("|---|---|---|---|")
    g = enc["goal"]
    add(f"| encode at batch 32 reaches a share of this machine's fp32 matmul peak | ≥ 40% | {_pct(g['achieved'])} "
        f"| {'met' if g['met'] else 'missed'} |")
    g = pipe["goal"]
    sets = pipe["sets"]
    add(f"| end-to-end images/s over facenet-pytorch's (celeba + photos) | ≥ 2× | {g['achieved']:.2f}× "
        f"(celeba {sets['celeba']['ratio_ours_over_facenet']:.2f}×, photos "
        f"{sets['photos']['ratio_ours_over_facenet']:.2f}×, 1080p photo "
        f"{sets['photo_1080p']['ratio_ours_over_facenet']:.2f}×) | {'met' if g['met'] else 'missed'}"
        + ("" if sets["photos"]["ratio_ours_over_facenet"] >= 2 else
           f" overall; on the photos alone {1 - sets['photos']['ratio_ours_over_facenet'] / 2:.1%} short "
           "(MTCNN-bound, see §2)") + " |")
    if "detection_levers" in results:
        lv = results["detection_levers"]
        lg = lv["goal"]
        add("| photos end to end over facenet-pytorch, same faces (issue 15; its own run, §2) | ≥ 3× | "
            + ", ".join(f"{k} {p['ratio']:.2f}×" for k, p in lv["pipelines"].items())
            + f" | {'met' if lg['met'] else 'missed (MTCNN-bound; every lever measured in §2)'} |")
    g = lat["goal"]
    calls = lat.get("disentangle_vs_encode_crops_one_call_per_batch")
    add(f"| `disentangle` adds to `encode` (pre-cropped faces, batch 32) | ≤ 25% | +{_pct(g['achieved'])} "
        + (f"(one call per 32 faces +{_pct(calls['added']['median'])}; " if calls else "(")
        + f"+{_pct(lat['disentangle_vs_encode_photos']['added']['median'])} with detection) | "
        f"{'met' if g['met'] else 'missed (' + _pct(g['achieved'] - g['target']) + ' of encode time over the target)'} |")
    g = mem["goal"]
    pts = mem["points"]
    add(f"| peak memory independent of N | flat | {pts[0]['peak_rss_mib']['median']:.0f} MiB at N={pts[0]['n']:,} → "
        f"{pts[-1]['peak_rss_mib']['median']:.0f} MiB at N={pts[-1]['n']:,} ({g['achieved']:+.1%}) | "
        f"{'met' if g['met'] else 'missed'} |")
    add("")

    # Encode.
    peak = enc["matmul_peak"]
    add("## 1. `encode` throughput on pre-cropped 64×64 faces")
    add("")
    ba = enc.get("matmul_peak_before_after", [peak, peak])
    add(f"Command: `{enc['command']}`. Peak: a {peak['n']}×{peak['n']} fp32 matmul runs at "
        f"**{_f(peak['gflops'])} GFLOP/s** here (timed before and after the encode runs: medians "
        f"{ba[0]['gflops']['median']:.1f} and {ba[1]['gflops']['median']:.1f}; the higher is used). The stage-1 encoders (texture, shape, pose, light) cost "
        f"**{enc['flops_per_image'] / 1e6:.0f} MFLOP per image** (`torch.utils.flop_counter.FlopCounterMode`, "
        f"2 FLOPs per multiply-add). `sdk` = `FaceEncoder.encode(crops, detect=False, batch_size=B)` on a "
        f"uint8 array of celeba10k faces (conversion, centred crop, network, results); `network` = "
        f"`autoencoder.encode` on a ready tensor. `fast` = channels-last weights (the default, "
        f"`FaceEncoder.use_channels_last`), `plain` = the contiguous layout.")
    add("")
    add("| batch | images | sdk fast (img/s) | sdk plain (img/s) | network fast (img/s) | sdk fast GFLOP/s | share of peak |")
    add("|---:|---:|---:|---:|---:|---:|---:|")
    rows = enc["rows"]
    for bs in sorted({r["batch_size"] for r in rows}):
        def pick(layout: str, call: str, bs: int = bs) -> dict[str, Any]:
            return next(r for r in rows if r["batch_size"] == bs and r["layout"] == layout and r["call"] == call)
        sf, sp, nf = pick("fast", "sdk"), pick("plain", "sdk"), pick("fast", "network")
        add(f"| {bs} | {sf['images']} | {_f(sf['images_per_s'])} | {_f(sp['images_per_s'])} | "
            f"{_f(nf['images_per_s'])} | {sf['gflops']['median']:.1f} | {_pct(sf['fraction_of_peak'])} |")
    add("")
    add(f"The fast path is {enc['fast_over_plain_batch32']:.2f}× the plain layout at batch 32 (medians; "
        "see the notes above for other runs). "
        "Top operators of the SDK call at batch 32 (torch.profiler, one call of "
        f"{enc.get('profile_images', '?')} images):")
    add("")
    for layout in ("fast", "plain"):
        add(f"*{layout}:*")
        add("")
        L.extend(_ops_table(enc["profile_batch32"][layout]))
        add("")
    conv = next((r for r in enc["profile_batch32"]["fast"] if "convolution" in r["op"]), None)
    if conv:
        add(f"With the fast path, oneDNN convolutions take {_pct(conv['share'])} of the time; in the plain layout a "
            "`copy_` (the per-call layout conversion of input or weights) shows up instead. Batch 1 is limited "
            "by fixed per-call costs (small convolutions, Python), batch ≥ 8 by convolution arithmetic.")
        add("")

    # Pipeline.
    add("## 2. End to end from photos: ours vs facenet-pytorch")
    add("")
    add(f"Command: `{pipe['command']}`. Ours: `FaceEncoder.encode(paths)` (decode, batched MTCNN, crop, encode). "
        f"Peer: {pipe['peer']} (random weights: the published ones cannot be downloaded here; the speed is the "
        "same). Same images, same threads, runs alternating. `ours, plain` is our pipeline with the fast path "
        "off.")
    add("")
    add("| images | n | sizes | ours (img/s) | ours, plain (img/s) | facenet-pytorch (img/s) | ours / facenet | faces found (ours, theirs) |")
    add("|---|---:|---|---:|---:|---:|---:|---|")
    for name, s in sets.items():
        ips = s["images_per_s"]
        add(f"| {name} | {s['images']} | {', '.join(s['image_sizes'])} | {_f(ips['ours'])} | {_f(ips['ours_plain'])} | "
            f"{_f(ips['facenet'])} | **{s['ratio_ours_over_facenet']:.2f}×** | "
            f"{s['faces_found']['ours']}, {s['faces_found']['facenet']} |")
    c = pipe["combined_celeba_plus_photos"]
    add(f"| celeba + photos | {c['images']} | | {c['ours_images_per_s']:.1f} | | {c['facenet_images_per_s']:.1f} | "
        f"**{c['ratio']:.2f}×** | |")
    add("")
    so, sp_ = pipe["ours_stage_seconds_celeba"], pipe["facenet_stage_seconds_celeba"]
    n_c = sets["celeba"]["images"]
    add(f"Where the time goes on the celeba set ({n_c} images, seconds, median):")
    add("")
    add("| stage | ours | facenet-pytorch |")
    add("|---|---:|---:|")
    add(f"| decode | {_f(so['decode'], 2)} | {_f(sp_['decode'], 2)} |")
    add(f"| MTCNN | {_f(so['mtcnn'], 2)} | {_f(sp_['mtcnn'], 2)} (with its 160 px crops) |")
    add(f"| crop | {_f(so['crop'], 2)} | (in MTCNN) |")
    add(f"| features | {_f(so['encode'], 2)} (64×64 encoders) | {_f(sp_['embed'], 2)} (InceptionResnetV1 at 160×160) |")
    add("")
    ph = pipe.get("stage_seconds_photos")
    if ph:
        po, pf = ph["ours"], ph["facenet"]
        add(f"And on the {sets['photos']['images']} photos (seconds, median):")
        add("")
        add("| stage | ours | facenet-pytorch |")
        add("|---|---:|---:|")
        add(f"| decode | {_f(po['decode'], 2)} | {_f(pf['decode'], 2)} |")
        add(f"| MTCNN | {_f(po['mtcnn'], 2)} | {_f(pf['mtcnn'], 2)} (with its 160 px crops) |")
        add(f"| crop | {_f(po['crop'], 2)} | (in MTCNN) |")
        add(f"| features | {_f(po['encode'], 2)} | {_f(pf['embed'], 2)} |")
        add("")
    mt_share = so["mtcnn"]["median"] / sum(v["median"] for v in so.values())
    fl_p = pipe.get("flops_per_face", {})
    flops_note = (f" ({fl_p['ours'] / 1e9:.2f} vs {fl_p['facenet'] / 1e9:.2f} GFLOP per face)" if fl_p else "")
    add(f"Most of the difference is the feature network: our 64×64 encoders against InceptionResnetV1 at "
        f"160×160{flops_note}. Both pipelines run the same MTCNN network, which is {_pct(mt_share)} of our "
        "time on these small photos; ours runs it with channels-last convolution weights (the fast path), so "
        "that the max-pooling of its R-net and O-net works on channels-last tensors, several times faster on "
        "this CPU than on NCHW ones (compare `ours, plain`; the peer's MTCNN time also includes cutting its "
        "160 px crops). On large photos MTCNN's image pyramid "
        "(area resampling of the full image at every scale, `adaptive_avg_pool2d`) dominates both pipelines "
        "and the embedding network matters less, so the ratio falls towards the MTCNN ratio: that is what "
        "limits the `photos` and 1080p figures. We already detect on a copy at most 1280 px on its long side.")
    add("")
    add("cProfile of our pipeline on the celeba set (top functions by own time):")
    add("")
    L.extend(_fn_table(pipe["ours_cprofile_celeba"]))
    add("")
    if "detection_levers" in results:
        _levers_section(L, results["detection_levers"])

    # Disentangle / frontalize.
    add("## 3. `disentangle` and `frontalize`")
    add("")
    dc, dp, fl = lat["disentangle_vs_encode_crops"], lat["disentangle_vs_encode_photos"], lat["flops_per_image"]
    dn = lat.get("disentangle_vs_encode_crops_one_call_per_batch")
    add(f"Command: `{lat['command']}`. `disentangle` = `encode` + 2 RDMs × 5 DDIM steps (seed 0, per-face noise "
        f"generators), `batch_size={dc.get('batch_size', 64)}`; the two calls alternate on the same faces. "
        "`disentangle` samples the identities of up to 256 faces at a time, gathered over its batches; the "
        "second row calls it once per 32 faces, so its RDMs run on 32 rows.")
    add("")
    add("| input | n | encode (img/s) | disentangle (img/s) | added cost |")
    add("|---|---:|---:|---:|---:|")
    rows = [("pre-cropped faces (`detect=False`), one call", dc)]
    if dn:
        rows.append(("pre-cropped faces, one call per 32 faces", dn))
    rows.append(("celeba10k photos (`detect=True`)", dp))
    for label, r in rows:
        add(f"| {label} | {r['images']} | {_f(r['encode_images_per_s'])} | "
            f"{_f(r['disentangle_images_per_s'])} | +{_pct(r['added']['median'])} "
            f"({_pct(r['added']['min'])}–{_pct(r['added']['max'])}) |")
    add("")
    if "rdm_weight_bytes_per_image" in fl:
        add(f"**What limits it.** FLOPs per image: encode {fl['encode'] / 1e6:.0f} M, the two RDMs' sampling "
            f"{fl['rdm_sampling'] / 1e6:.0f} M = {_pct(fl['rdm_over_encode'])} of encode (the paper-sized "
            "denoiser, widths 512/128/256, run 10 times; each DDIM step's timestep modulations are computed "
            "once per step count and weights, `RepresentationDiffusion.sampling_plan`). The RDMs' time is "
            "higher than that share because every DDIM step reads both denoisers' weights "
            f"({fl['rdm_weight_bytes_per_step'] / 1e6:.1f} MB) whatever the number of rows: "
            f"{fl['rdm_weight_bytes_per_image'] / 1e6:.2f} MB per image at 32 rows against "
            f"{fl['rdm_weight_bytes_per_image_at_256_rows'] / 1e6:.2f} MB at 256, which is why `disentangle` "
            "gathers faces over batches for the RDMs, and why calls of 32 faces cost more. With detection, "
            "the same RDM work is a smaller share.")
    else:  # results written before the sampling plan
        add(f"**What limits it.** FLOPs per image: encode {fl['encode'] / 1e6:.0f} M, the two RDMs' sampling "
            f"{fl['rdm_sampling'] / 1e6:.0f} M = {_pct(fl['rdm_over_encode'])} of encode.")
    add("")
    add("cProfile of `disentangle` on the pre-cropped faces:")
    add("")
    L.extend(_fn_table(lat["disentangle_cprofile"][:8]))
    add("")
    fr = lat["frontalize"]
    add("`frontalize` (`detect=False`, `return_tensors=True`: decode the canonical maps, shade, render with the "
        "vectorised CPU rasteriser):")
    add("")
    add("| call | latency (ms) |")
    add("|---|---:|")
    add(f"| one face | {_f(fr['one_face_ms'])} |")
    add(f"| a batch of 16 faces | {_f(fr['batch16_ms'])} ({fr['batch16_ms_per_face']['median']:.1f} ms per face) |")
    add(f"| a batch of 16, with PIL images | {_f(fr['batch16_with_pil_images_ms'])} |")
    add("")

    # Memory.
    add("## 4. Memory and scaling of the `latentface` command")
    add("")
    add(f"Command: `{mem['command']}`, which runs `{mem['cli_command']}` in a fresh process per point under "
        "`/usr/bin/time -v` (peak resident set size of the whole process). Inputs: folders of symbolic links to "
        "celeba10k images. **`--no-detect`**: with MTCNN, 10,000 images would take too long on this machine; "
        "detection is done chunk by chunk and keeps nothing between chunks, so it does not change how memory "
        f"grows with N. Model: {mem['model']}.")
    add("")
    add("| N images | peak RSS (MiB) | time (s) | images/s |")
    add("|---:|---:|---:|---:|")
    base = mem["fixed_part_n16"]
    add(f"| 16 (fixed part) | {base['peak_rss_mib']:.0f} | {base['seconds']:.1f} | |")
    for p in pts:
        add(f"| {p['n']:,} | {_f(p['peak_rss_mib'], 0)} | {_f(p['seconds'])} | {p['images_per_s']['median']:.0f} |")
    add("")
    fit = mem["linear_fit"]
    imp = mem["import_peak_rss_mib"]
    add(f"Peak memory is flat ({mem['goal']['achieved']:+.1%} from N={pts[0]['n']:,} to N={pts[-1]['n']:,}): the "
        "command streams 256 files per chunk and assembles the output one array at a time. Time is linear: "
        f"t = {fit['intercept_s']:.1f} s + {fit['seconds_per_image'] * 1000:.2f} ms × N (largest deviation of a "
        f"point from the fit {_pct(fit['max_relative_deviation'])}). The fixed part is start-up: importing torch "
        f"alone peaks at {imp['torch']:.0f} MiB (this torch build loads its CUDA libraries even without a GPU), "
        f"the SDK's imports at {imp['latentface_sdk.encoder']:.0f} MiB; the model and a chunk add the rest.")
    add("")

    # Training.
    t1, t2 = train["stage1"], train["stage2"]
    add("## 5. Training step throughput")
    add("")
    add(f"Command: `{train['command']}`. Stage 1: `Stage1Trainer.step` (shipped recipe, batch {train['batch']} "
        "real face crops: forward, losses, backward, Adam) with each renderer. Stage 2: `train_rdms` (shipped "
        "recipe) on cached latents; its log's elapsed time every 10 steps, warm-up dropped.")
    add("")
    add("| trainer | images/s | s per step |")
    add("|---|---:|---:|")
    add(f"| stage 1, `fast` renderer (vectorised rasteriser, the CPU default) | {_f(t1['fast']['images_per_s'])} | "
        f"{_f(t1['fast']['step_seconds'], 2)} |")
    add(f"| stage 1, `pytorch3d` renderer | {_f(t1['pytorch3d']['images_per_s'], 2)} | "
        f"{_f(t1['pytorch3d']['step_seconds'], 1)} |")
    add(f"| stage 2, both RDMs ({t2['rows_per_step']} latent rows per step) | {_f(t2['images_per_s'], 0)} | "
        f"{_f(t2['step_seconds'], 3)} |")
    add("")
    p3 = t1["pytorch3d"]["cprofile_one_step"]
    rast = sum(r["own_s"] for r in p3 if "rasterize_meshes" in r["function"])
    step = t1["pytorch3d"]["step_seconds"]["median"]
    add(f"The vectorised rasteriser makes a stage-1 step {t1['fast_over_pytorch3d']:.0f}× faster on this CPU: with "
        f"pytorch3d, its CPU rasteriser (forward and backward, `rasterize_meshes*`) takes {rast:.1f} s of a "
        f"{step:.1f} s step. That is why CPU training uses `fast`; pytorch3d stays the renderer of record on CUDA. "
        "Top operators of one `fast` step (torch.profiler):")
    add("")
    L.extend(_ops_table(t1["fast"]["profile_one_step"]))
    add("")

    for key, kind in (("contention", "a single-thread torch matmul loop"),
                      ("contention_python", "a pure-Python busy loop"),
                      ("contention_torch_threads", "a torch matmul loop with torch's default threads"),
                      ("contention_cli", "a single-thread torch matmul loop; the command line waiting passively"),
                      ("contention_disentangle", "a single-thread torch matmul loop; `disentangle` after its "
                       "sampling plan and the gathering of faces over batches")):
        if key in results:
            _contention_section(L, results[key], kind, first=key == "contention")
    reading = RESULTS / "contention_notes.md"  # a person's reading of the contention runs, kept verbatim
    if "contention" in results and reading.exists():
        add(reading.read_text(encoding="utf-8").strip())
        add("")
    add("## Rerun")
    add("")
    add("```bash")
    add(f"{threads_cmd}        # everything, ~10-15 minutes; writes benchmarks/results/*.json and this file")
    add("python benchmarks/run_all.py --report-only   # this file again from the JSON files")
    add("python benchmarks/encode_speed.py --threads 2 --repeats 5   # or any one family alone")
    add("```")
    add("")
    add("`benchmarks/rdm_identity_gap.py` (identity separation of the generated `Z_id`) is an accuracy "
        "benchmark, documented with the evaluation.")
    return "\n".join(L) + "\n"


def _levers_section(L: list[str], r: dict[str, Any]) -> None:
    """Markdown for ``benchmarks/detection_levers.py`` (run on its own: its own provenance)."""
    add = L.append
    m = r["machine"]
    add("### The levers for photos (3x facenet-pytorch)")
    add("")
    add(f"Command: `{r['command']}` ({m['when_utc']} UTC, {m['torch_threads']} threads, load average at the end "
        f"{m['loadavg'][0]:.1f}); every ratio from runs that alternate on the same images.")
    add("")
    add("| images | ours (s) | facenet-pytorch (s) | ours / facenet |")
    add("|---|---:|---:|---:|")
    for name, p in r["pipelines"].items():
        add(f"| {name} ({p['images']}) | {_f(p['ours_s'], 3)} | {_f(p['facenet_s'], 3)} | **{p['ratio']:.2f}×** |")
    add("")
    w = r["where_our_time_goes_photos_s"]
    parts = [("decode", w["decode"]["median"]), ("detection copy (PIL downscale)", w["downscale"]["median"]),
             ("MTCNN pyramid (area resampling)", w["pyramid"]["median"]), ("P-net", w["pnet"]["median"]),
             ("cutting R-net/O-net candidates", w["candidate_cuts"]["median"]), ("R-net", w["rnet"]["median"]),
             ("O-net", w["onet"]["median"]), ("rest of the cascade (NMS, boxes, Python)", w["cascade_rest_s"]),
             ("crop, encode and the rest", w["crop_encode_rest_s"])]
    total = sum(v for _, v in parts)
    add("Where our time goes on the photos (seconds, medians):")
    add("")
    add("| stage | seconds | share |")
    add("|---|---:|---:|")
    for label, v in parts:
        add(f"| {label} | {v:.3f} | {_pct(v / total)} |")
    add("")
    peer = r["facenet_faces_full_images"]
    add(f"Faces found per photo (score ≥ 0.9) by facenet-pytorch on the full images: {peer}.")
    add("")
    add("| lever | detection (s) | faces per photo | same faces as facenet-pytorch |")
    add("|---|---:|---|---|")
    for s_ in r["max_side"]:
        add(f"| detection copy ≤ {s_['max_side']} px{' (the SDK)' if s_['max_side'] == 1280 else ''} | "
            f"{_f(s_['detect_s'], 3)} | {s_['faces']} | {'yes' if s_['faces_equal_to_facenet'] else '**no**'} |")
    c = r["prototype_cascade"]
    ours, theirs = r["pipelines"]["photos"]["ours_s"]["median"], r["pipelines"]["photos"]["facenet_s"]["median"]
    base = next(s_["detect_s"]["median"] for s_ in r["max_side"] if s_["max_side"] == 1280)
    bounds = [f"≤ {s_['max_side']} px: {theirs / (ours - base + s_['detect_s']['median']):.2f}×"
              for s_ in r["max_side"] if s_["max_side"] != 1280]
    add(f"| the SDK's MTCNN calls on the same detection copies | {_f(c['sdk_mtcnn_s'], 3)} | | |")
    for key, label in (("full", "R-net/O-net batched across sizes (prototype)"),
                       ("chained", "… and a chained pyramid (prototype)")):
        add(f"| {label} | {_f(c[key]['detect_s'], 3)} | {c[key]['faces']} | "
            f"{'yes' if c[key]['faces'] == peer else '**no**'} (boxes move ≤ {c[key]['max_box_difference_px']:.2g} px) |")
    add("")
    add("What each lever would make of the photos' ratio (our pipeline's time with the lever's detection time in "
        "place of the SDK's): detection copy " + ", ".join(bounds) + f"; R-net/O-net batched across sizes "
        f"{theirs / (ours - c['sdk_mtcnn_s']['median'] + c['full']['detect_s']['median']):.2f}×, with the chained "
        f"pyramid {theirs / (ours - c['sdk_mtcnn_s']['median'] + c['chained']['detect_s']['median']):.2f}×.")
    add("")
    im = r["imfdb_faces"]
    add(f"IMFDB stills ({im['images']}): facenet-pytorch finds {im['facenet_faces']} faces; " + "; ".join(
        f"{k.replace('_', ' ')} {v['faces']} (counts differ on {v['images_where_counts_differ']} images)"
        for k, v in im.items() if isinstance(v, dict)) + ".")
    add("")
    drafts = r["jpeg_draft"]
    usable = [d for d in drafts if d["draft_size"] != d["size"]]
    add(f"JPEG draft decoding: of the {len(drafts)} JPEG photos, {len(usable)} are at least twice the detection "
        "copy's size, the only case where a draft can stand in for the full decode in detection (the crop needs "
        "the full-resolution face); decoding all JPEGs takes "
        f"{sum(d['full_ms']['median'] for d in drafts):.0f} ms.")
    add("")


def _contention_section(L: list[str], result: dict[str, Any], kind: str, first: bool) -> None:
    """Markdown for one ``benchmarks/contention.py`` run (its own provenance: it is run on its own)."""
    sys.path.insert(0, str(HERE))
    import contention

    m = result["machine"]
    if first:
        L.append("## 6. On a busy machine: thread settings beside competing processes")
        L.append("")
        L.append("`benchmarks/contention.py` starts N competing CPU-bound processes itself, then measures each "
                 "task in a fresh process per thread setting: `1`/`2` threads, `passive-2` (2 threads with "
                 "`OMP_WAIT_POLICY=PASSIVE`), `torch` (nothing set) and `sdk` (nothing set: the SDK's default "
                 "`threads=\"auto\"`, which uses the cores other running processes leave free). Cell: "
                 "images/s (photos/s for `cli`, the whole `latentface encode` command over the 9 photos), median "
                 "of 3 runs, and its share of the best setting at the same load, measured side by side. These runs "
                 "are separate from the families above (their own date and load below).")
        L.append("")
    L.append(f"Competitors: {kind}; `{result['command']}`, {m['when_utc']} UTC, load average at the end "
             f"{m['loadavg'][0]:.1f} (the competitors included).")
    L.append("")
    L.extend(contention.table(result).splitlines())
    L.append("")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads for every family (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check that everything runs")
    p.add_argument("--data", type=Path, default=_bench.DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=_bench.RESULTS_DIR, help="folder of the JSON results")
    p.add_argument("--doc", type=Path, default=None, help="markdown report (default docs/benchmarks.md; "
                   "with --quick, OUT/benchmarks.md)")
    p.add_argument("--only", nargs="*", default=None, help="run only these families")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the JSON files")
    args = p.parse_args(argv)
    doc = args.doc or (args.out / "benchmarks.md" if args.quick else DOC)
    seconds: dict[str, float] = {}
    if not args.report_only:
        if args.only is not None and (args.out / "run_seconds.json").exists():  # keep the other families' times
            seconds = json.loads((args.out / "run_seconds.json").read_text())
        for name, script, repeats in FAMILIES:
            if args.only is None or name in args.only:
                seconds[name] = run_family(name, script, 1 if args.quick else repeats, args, args.out)
        (args.out / "run_seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")
    elif (args.out / "run_seconds.json").exists():
        seconds = json.loads((args.out / "run_seconds.json").read_text())
    missing = [n for n, _, _ in FAMILIES if n not in OPTIONAL and not (args.out / f"{n}.json").exists()]
    if missing:
        print(f"no report: results missing for {missing}", file=sys.stderr)
        return 1
    names = [n for n, _, _ in FAMILIES] + ["contention_python", "contention_torch_threads", "contention_cli",
                                           "contention_disentangle"]
    names = list(dict.fromkeys(names))
    results = {n: json.loads((args.out / f"{n}.json").read_text()) for n in names if (args.out / f"{n}.json").exists()}
    threads = results["encode"]["machine"]["torch_threads"]
    doc.parent.mkdir(parents=True, exist_ok=True)
    notes_file = args.out / "notes.md"  # a person's remarks on the run (e.g. a family rerun), kept verbatim
    notes = notes_file.read_text(encoding="utf-8") if notes_file.exists() else ""
    doc.write_text(report(results, seconds, f"python benchmarks/run_all.py --threads {threads}", notes),
                   encoding="utf-8")
    print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
