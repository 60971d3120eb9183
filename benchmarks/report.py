"""Render ``docs/benchmarks.md`` from its Markdown template and the results JSON files.

The prose lives in ``benchmarks/templates/benchmarks.md``; every number comes from
``benchmarks/results/<name>.json`` through a placeholder. Placeholders (``{{ ... }}``, inline or alone on
a line):

``{{ value:PATH | FILTER | ... }}``
    one value of a results file. ``PATH`` starts with the file's name without ``.json`` and goes on with
    keys separated by dots; ``[2]``/``[-1]`` picks a list element, ``[task=encode,batch=1]`` the one
    element whose fields have those values: ``{{ value:onnx_speed.rows[backend=onnx,task=encode,
    level=network,batch=1,threads=2,load=0].median_ms | .2f }}``. A key that holds dots itself
    (``latentface_sdk.encoder``) is found as it is.
``{{ calc:NAME | FILTER }}``
    a value computed from several numbers (a share, a ratio, a joined list): :data:`CALCS`.
``{{ table:NAME [ARG ...] }}``
    a Markdown table (or a block of lines) made from the results: :data:`TABLES`. ``table:rows PATH``
    renders any list of flat dicts as a table of their keys.
``{{ if:PATH [PATH ...] }}`` ... ``{{ else }}`` ... ``{{ end }}``, each alone on its line
    the lines in between only when every ``PATH`` names something that is there (a results file, or a
    key of one): optional sections. They nest.

Filters: a Python format spec (``.1f``, ``,``, ``+.1%``), ``range`` / ``range:N`` (a timing dict as
``median (min–max)`` with N decimals, default 1), ``pct`` (a fraction as a whole percentage),
``scale:F`` (times F), ``len``, ``date`` / ``hm`` (a ``when_utc`` stamp's date / hours:minutes).

A placeholder that names a results file which is not there fails with :class:`MissingResult`, which
says the file, the template line and the command that writes it. A line that holds only a placeholder
rendering to nothing is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from . import registry

TEMPLATE = registry.HERE / "templates" / "benchmarks.md"
RESULTS_DIR = registry.REPO_ROOT / "benchmarks" / "results"
DOC = registry.REPO_ROOT / "docs" / "benchmarks.md"
#: The families of the suite run that sections 1-5 report (their machine facts head the page).
CORE = ("encode", "latent_ops", "pipeline", "train", "memory")

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
CONTROL = re.compile(r"^\s*\{\{\s*(if:(?P<cond>[^}]*?)|else|end)\s*\}\}\s*$")


class TemplateError(Exception):
    """A placeholder that cannot be rendered."""


class MissingResult(TemplateError):
    """A placeholder names a results file that is not there."""

    def __init__(self, stem: str, path: Path, where: str = "") -> None:
        self.stem, self.path = stem, path
        try:
            how = f"python -m benchmarks run {registry.lookup(stem).name}"
        except KeyError:
            how = "no registered benchmark writes it"
        message = f"results file {_show(path)} is not there (it is written by: {how})"
        super().__init__(f"{where}: {message}" if where else message)


def _show(path: Path) -> str:
    try:
        return path.resolve().relative_to(registry.REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


class Results:
    """The results files of one folder, read when first named."""

    def __init__(self, folder: Path = RESULTS_DIR) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, Any] = {}

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.json"

    def has(self, stem: str) -> bool:
        return stem in self._cache or self.path(stem).is_file()

    def get(self, stem: str) -> Any:
        if stem not in self._cache:
            if not self.path(stem).is_file():
                raise MissingResult(stem, self.path(stem))
            self._cache[stem] = json.loads(self.path(stem).read_text(encoding="utf-8"))
        return self._cache[stem]

    def value(self, path: str) -> Any:
        """The value at ``path`` (``stem.key.key[sel]...``)."""
        segments = _split_path(path)
        head = segments[0]
        if "[" in head:
            raise TemplateError(f"{path!r}: the first part must be a results file name")
        return _walk(self.get(head), segments[1:], path)


def _split_path(path: str) -> list[str]:
    """``a.b[x=1.5].c`` -> ``['a', 'b[x=1.5]', 'c']`` (dots inside brackets stay)."""
    parts, depth, cur = [], 0, ""
    for ch in path.strip():
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"[": 1, "]": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    if any(not p.strip() for p in parts):
        raise TemplateError(f"{path!r}: empty part in the path")
    return [p.strip() for p in parts]


SEGMENT = re.compile(r"^(?P<key>[^\[]*)(?P<sel>(?:\[[^\]]*\])*)$")


def _walk(node: Any, segments: list[str], path: str) -> Any:
    i = 0
    while i < len(segments):
        m = SEGMENT.match(segments[i])
        if not m:
            raise TemplateError(f"{path!r}: cannot read {segments[i]!r}")
        key, sels = m.group("key"), re.findall(r"\[([^\]]*)\]", m.group("sel"))
        if key:
            if not isinstance(node, dict):
                raise TemplateError(f"{path!r}: {key!r} is not a key of a mapping")
            # a key may hold dots itself ("latentface_sdk.encoder"): the longest run of parts that is a key
            for j in range(len(segments), i, -1):
                joined = ".".join(segments[i:j])
                if joined in node and "[" not in joined:
                    node, i = node[joined], j - 1
                    break
            else:
                if key not in node:
                    raise TemplateError(f"{path!r}: no key {key!r} (there are: {', '.join(map(str, node))})")
                node = node[key]
        for sel in sels:
            node = _select(node, sel.strip(), path)
        i += 1
    return node


def _select(node: Any, sel: str, path: str) -> Any:
    if not isinstance(node, list):
        raise TemplateError(f"{path!r}: [{sel}] applied to something that is not a list")
    if re.fullmatch(r"-?\d+", sel):
        try:
            return node[int(sel)]
        except IndexError:
            raise TemplateError(f"{path!r}: no element [{sel}] in a list of {len(node)}") from None
    wanted = {}
    for cond in sel.split(","):
        k, sep, v = cond.partition("=")
        if not sep:
            raise TemplateError(f"{path!r}: [{sel}]: write [index] or [field=value,...]")
        wanted[k.strip()] = v.strip()
    found = [x for x in node if isinstance(x, dict) and all(str(x.get(k)) == v for k, v in wanted.items())]
    if len(found) != 1:
        raise TemplateError(f"{path!r}: [{sel}] matches {len(found)} elements, not one")
    return found[0]


# ----------------------------------------------------------------------------------------- filters


def fmt_range(s: dict[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    """``median (min–max)`` of a timing dict."""
    return f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})"


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _apply(value: Any, flt: str) -> Any:
    name, _, arg = flt.partition(":")
    name = name.strip()
    if name == "range":
        return fmt_range(value, int(arg) if arg else 1)
    if name == "pct":
        return pct(value)
    if name == "scale":
        return value * float(arg)
    if name == "len":
        return len(value)
    if name == "date":
        return str(value)[:10]
    if name == "hm":
        return str(value)[11:16]
    try:
        return format(value, flt)
    except (ValueError, TypeError) as e:
        raise TemplateError(f"filter {flt!r} on {value!r}: {e}") from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


# ------------------------------------------------------------------------------- tables and values


def md_table(header: Sequence[str], align: str, rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: the ``header`` cells, then one line per row of cells. ``align`` has a letter per
    column, ``l`` (``---``) or ``r`` (``---:``); an empty cell is written ``| |``."""
    def line(cells: Sequence[Any]) -> str:
        return "|" + "".join(" |" if c == "" else f" {c} |" for c in cells)

    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _ops_table(rows: list[dict[str, Any]], key: str = "op") -> str:
    return md_table(["operator", "self time (ms)", "share", "calls"], "lrrr",
                    ([f"`{r[key]}`", f"{r['self_ms']:.1f}", pct(r["share"]), r["calls"]] for r in rows))


def _fn_table(rows: list[dict[str, Any]]) -> str:
    return md_table(["function", "own time (s)", "share", "calls"], "lrrr",
                    ([f"`{r['function']}`", f"{r['own_s']:.3f}", pct(r["share"]), r["calls"]] for r in rows))


def t_ops(R: Results, path: str) -> str:
    """torch.profiler's top operators at ``path``."""
    return _ops_table(R.value(path))


def t_functions(R: Results, path: str, rows: str = "0") -> str:
    """cProfile's top functions at ``path`` (the first ``rows`` of them; 0: all)."""
    entries = R.value(path)
    return _fn_table(entries[: int(rows)] if int(rows) else entries)


def t_rows(R: Results, path: str) -> str:
    """Any list of flat dicts: one column per key (in order of first appearance), one row per dict."""
    rows = R.value(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TemplateError(f"table:rows {path}: not a list of mappings")
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1e6 else f"{v:.6g}"
        return "" if v is None else str(v)

    def numeric(k: str) -> bool:
        return all(isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool)
                   for r in rows if r.get(k) is not None)

    return md_table([k.replace("_", " ") for k in keys], "".join("r" if numeric(k) else "l" for k in keys),
                    ([cell(r.get(k)) for k in keys] for r in rows))


def t_goals(R: Results) -> str:
    enc, lat, pipe, mem = R.get("encode"), R.get("latent_ops"), R.get("pipeline"), R.get("memory")

    def verdict(g: dict[str, Any]) -> str:
        return "met" if g["met"] else "missed"

    out = ["| goal | target | measured (same run) | verdict |", "|---|---|---|---|"]
    g = enc["goal"]
    out.append(f"| encode at batch 32 reaches a share of this machine's fp32 matmul peak | ≥ 40% | "
               f"{pct(g['achieved'])} | {verdict(g)} |")
    g, sets = pipe["goal"], pipe["sets"]
    photos = sets["photos"]["ratio_ours_over_facenet"]
    short = ("" if photos >= 2
             else f" overall; on the photos alone {1 - photos / 2:.1%} short (MTCNN-bound, see §2)")
    out.append("| end-to-end images/s over facenet-pytorch's (celeba + photos) | ≥ 2× | "
               f"{g['achieved']:.2f}× (celeba {sets['celeba']['ratio_ours_over_facenet']:.2f}×, photos "
               f"{photos:.2f}×, 1080p photo {sets['photo_1080p']['ratio_ours_over_facenet']:.2f}×) | "
               f"{verdict(g)}{short} |")
    if R.has("detection_levers"):
        lv = R.get("detection_levers")
        ratios = ", ".join(f"{k} {p['ratio']:.2f}×" for k, p in lv["pipelines"].items())
        out.append("| photos end to end over facenet-pytorch, same faces (issue 15; its own run, §2) "
                   f"| ≥ 3× | {ratios} | "
                   f"{'met' if lv['goal']['met'] else 'missed (MTCNN-bound; every lever measured in §2)'} |")
    g = lat["goal"]
    calls = lat["disentangle_vs_encode_crops_one_call_per_batch"]["added"]["median"]
    detect = lat["disentangle_vs_encode_photos"]["added"]["median"]
    over = ("met" if g["met"]
            else f"missed ({pct(g['achieved'] - g['target'])} of encode time over the target)")
    out.append("| `disentangle` adds to `encode` (pre-cropped faces, batch 32) | ≤ 25% | "
               f"+{pct(g['achieved'])} (one call per 32 faces +{pct(calls)}; +{pct(detect)} with detection) "
               f"| {over} |")
    g, pts = mem["goal"], mem["points"]
    out.append(f"| peak memory independent of N | flat | {pts[0]['peak_rss_mib']['median']:.0f} MiB at "
               f"N={pts[0]['n']:,} → {pts[-1]['peak_rss_mib']['median']:.0f} MiB at N={pts[-1]['n']:,} "
               f"({g['achieved']:+.1%}) | {verdict(g)} |")
    return "\n".join(out)


def t_encode(R: Results) -> str:
    rows = R.get("encode")["rows"]

    def line(bs: int) -> list[Any]:
        def pick(layout: str, call: str) -> dict[str, Any]:
            return next(r for r in rows if r["batch_size"] == bs and r["layout"] == layout
                        and r["call"] == call)
        sf, sp, nf = pick("fast", "sdk"), pick("plain", "sdk"), pick("fast", "network")
        return [bs, sf["images"], fmt_range(sf["images_per_s"]), fmt_range(sp["images_per_s"]),
                fmt_range(nf["images_per_s"]), f"{sf['gflops']['median']:.1f}", pct(sf["fraction_of_peak"])]

    return md_table(["batch", "images", "sdk fast (img/s)", "sdk plain (img/s)", "network fast (img/s)",
                     "sdk fast GFLOP/s", "share of peak"], "rrrrrrr",
                    map(line, sorted({r["batch_size"] for r in rows})))


def t_pipeline(R: Results) -> str:
    pipe = R.get("pipeline")
    rows = [[name, s["images"], ", ".join(s["image_sizes"]), fmt_range(s["images_per_s"]["ours"]),
             fmt_range(s["images_per_s"]["ours_plain"]), fmt_range(s["images_per_s"]["facenet"]),
             f"**{s['ratio_ours_over_facenet']:.2f}×**",
             f"{s['faces_found']['ours']}, {s['faces_found']['facenet']}"]
            for name, s in pipe["sets"].items()]
    c = pipe["combined_celeba_plus_photos"]
    rows.append(["celeba + photos", c["images"], "", f"{c['ours_images_per_s']:.1f}", "",
                 f"{c['facenet_images_per_s']:.1f}", f"**{c['ratio']:.2f}×**", ""])
    return md_table(["images", "n", "sizes", "ours (img/s)", "ours, plain (img/s)", "facenet-pytorch (img/s)",
                     "ours / facenet", "faces found (ours, theirs)"], "lrlrrrrl", rows)


def t_levers_pipelines(R: Results) -> str:
    pipelines = R.get("detection_levers")["pipelines"]
    return md_table(["images", "ours (s)", "facenet-pytorch (s)", "ours / facenet"], "lrrr",
                    ([f"{name} ({p['images']})", fmt_range(p["ours_s"], 3), fmt_range(p["facenet_s"], 3),
                      f"**{p['ratio']:.2f}×**"] for name, p in pipelines.items()))


def t_levers_time(R: Results) -> str:
    w = R.get("detection_levers")["where_our_time_goes_photos_s"]
    parts = [("decode", w["decode"]["median"]), ("detection copy (PIL downscale)", w["downscale"]["median"]),
             ("MTCNN pyramid (area resampling)", w["pyramid"]["median"]), ("P-net", w["pnet"]["median"]),
             ("cutting R-net/O-net candidates", w["candidate_cuts"]["median"]),
             ("R-net", w["rnet"]["median"]), ("O-net", w["onet"]["median"]),
             ("rest of the cascade (NMS, boxes, Python)", w["cascade_rest_s"]),
             ("crop, encode and the rest", w["crop_encode_rest_s"])]
    total = sum(v for _, v in parts)
    return md_table(["stage", "seconds", "share"], "lrr",
                    ([label, f"{v:.3f}", pct(v / total)] for label, v in parts))


def t_levers(R: Results) -> str:
    r = R.get("detection_levers")
    peer = r["facenet_faces_full_images"]
    rows = [[f"detection copy ≤ {s['max_side']} px{' (the SDK)' if s['max_side'] == 1280 else ''}",
             fmt_range(s["detect_s"], 3), s["faces"], "yes" if s["faces_equal_to_facenet"] else "**no**"]
            for s in r["max_side"]]
    c = r["prototype_cascade"]
    rows.append(["the SDK's MTCNN calls on the same detection copies", fmt_range(c["sdk_mtcnn_s"], 3),
                 "", ""])
    for key, label in (("full", "R-net/O-net batched across sizes (prototype)"),
                       ("chained", "… and a chained pyramid (prototype)")):
        rows.append([label, fmt_range(c[key]["detect_s"], 3), c[key]["faces"],
                     f"{'yes' if c[key]['faces'] == peer else '**no**'} (boxes move ≤ "
                     f"{c[key]['max_box_difference_px']:.2g} px)"])
    return md_table(["lever", "detection (s)", "faces per photo", "same faces as facenet-pytorch"], "lrll",
                    rows)


def t_latent_ops(R: Results) -> str:
    lat = R.get("latent_ops")

    def line(label: str, key: str) -> list[Any]:
        r = lat[key]
        added = r["added"]
        return [label, r["images"], fmt_range(r["encode_images_per_s"]),
                fmt_range(r["disentangle_images_per_s"]),
                f"+{pct(added['median'])} ({pct(added['min'])}–{pct(added['max'])})"]

    return md_table(["input", "n", "encode (img/s)", "disentangle (img/s)", "added cost"], "lrrrr",
                    [line("pre-cropped faces (`detect=False`), one call", "disentangle_vs_encode_crops"),
                     line("pre-cropped faces, one call per 32 faces",
                          "disentangle_vs_encode_crops_one_call_per_batch"),
                     line("celeba10k photos (`detect=True`)", "disentangle_vs_encode_photos")])


def t_memory(R: Results) -> str:
    mem = R.get("memory")
    base = mem["fixed_part_n16"]
    rows = [["16 (fixed part)", f"{base['peak_rss_mib']:.0f}", f"{base['seconds']:.1f}", ""]]
    rows += [[f"{p['n']:,}", fmt_range(p["peak_rss_mib"], 0), fmt_range(p["seconds"]),
              f"{p['images_per_s']['median']:.0f}"] for p in mem["points"]]
    return md_table(["N images", "peak RSS (MiB)", "time (s)", "images/s"], "rrrr", rows)


def t_contention(R: Results, stem: str) -> str:
    from . import contention

    return contention.table(R.get(stem))


def t_onnx(R: Results, level: str) -> str:
    from . import onnx_speed

    if level not in onnx_speed.LEVELS:
        raise TemplateError(f"table:onnx {level}: the levels are {onnx_speed.LEVELS}")
    return onnx_speed.table(R.get("onnx_speed")["rows"], level)


def t_registry(R: Results) -> str:
    return registry.table()


TABLES: dict[str, Callable[..., str]] = {
    "ops": t_ops, "functions": t_functions, "rows": t_rows, "goals": t_goals, "encode": t_encode,
    "pipeline": t_pipeline, "levers_pipelines": t_levers_pipelines, "levers_time": t_levers_time,
    "levers": t_levers, "latent_ops": t_latent_ops, "memory": t_memory, "contention": t_contention,
    "onnx": t_onnx, "registry": t_registry,
}


def c_suite_command(R: Results) -> str:
    """The command of the suite run behind sections 1-5 (recorded by the runner; older runs: run_all.py)."""
    enc = R.get("encode")
    suite = enc.get("suite", {})
    return str(suite.get("command")
               or f"python benchmarks/run_all.py --threads {enc['machine']['torch_threads']}")


def c_machine_load(R: Results) -> str:
    if all(R.get(k)["machine"]["bench_ok_marker"] for k in CORE):
        return "The machine was otherwise idle (training and evaluation had finished)."
    return ("**Machine load:** a training job of the project was still running on this machine during the "
            "run (the marker that says the machine is free was absent), so absolute numbers are lower and "
            "noisier than on an idle machine; ratios are measured in the same run, side by side, and are "
            "less affected.")


def c_finish_times(R: Results) -> str:
    def load(m: dict[str, Any]) -> float:
        return float((m["loadavg"] if "loadavg" in m else m["loadavg_at_start"])[0])

    return ", ".join(f"{k} {R.get(k)['machine']['when_utc'][11:16]} ({load(R.get(k)['machine']):.1f})"
                     for k in CORE)


def c_run_seconds(R: Results) -> str:
    """The run times the runner recorded (``run_seconds.json``), or nothing."""
    if not R.has("run_seconds"):
        return ""
    seconds = R.get("run_seconds")
    return (f"The whole run took {sum(seconds.values()) / 60:.1f} minutes ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ").")


def c_encode_conv_share(R: Results) -> float:
    return float(next(r["share"] for r in R.get("encode")["profile_batch32"]["fast"]
                      if "convolution" in r["op"]))


def c_pipeline_mtcnn_share(R: Results) -> float:
    so = R.get("pipeline")["ours_stage_seconds_celeba"]
    return float(so["mtcnn"]["median"] / sum(v["median"] for v in so.values()))


def _levers_times(R: Results) -> tuple[dict[str, Any], float, float]:
    r = R.get("detection_levers")
    photos = r["pipelines"]["photos"]
    return r, photos["ours_s"]["median"], photos["facenet_s"]["median"]


def c_levers_copy_bounds(R: Results) -> str:
    """The photos' ratio with each smaller detection copy's detection time in place of the SDK's."""
    r, ours, theirs = _levers_times(R)
    base = next(s["detect_s"]["median"] for s in r["max_side"] if s["max_side"] == 1280)
    return ", ".join(f"≤ {s['max_side']} px: {theirs / (ours - base + s['detect_s']['median']):.2f}×"
                     for s in r["max_side"] if s["max_side"] != 1280)


def _cascade_ratio(R: Results, key: str) -> float:
    r, ours, theirs = _levers_times(R)
    c = r["prototype_cascade"]
    return float(theirs / (ours - c["sdk_mtcnn_s"]["median"] + c[key]["detect_s"]["median"]))


def c_levers_imfdb(R: Results) -> str:
    im = R.get("detection_levers")["imfdb_faces"]
    return "; ".join(f"{k.replace('_', ' ')} {v['faces']} (counts differ on "
                     f"{v['images_where_counts_differ']} images)"
                     for k, v in im.items() if isinstance(v, dict))


def c_levers_jpeg_usable(R: Results) -> int:
    return sum(1 for d in R.get("detection_levers")["jpeg_draft"] if d["draft_size"] != d["size"])


def c_levers_jpeg_ms(R: Results) -> float:
    return float(sum(d["full_ms"]["median"] for d in R.get("detection_levers")["jpeg_draft"]))


def c_train_rasterize_s(R: Results) -> float:
    p3 = R.get("train")["stage1"]["pytorch3d"]["cprofile_one_step"]
    return float(sum(r["own_s"] for r in p3 if "rasterize_meshes" in r["function"]))


def c_video_machine(R: Results) -> str:
    """`` (date UTC, N torch threads, load average at the end L)`` when the video results carry the
    machine."""
    m = R.get("video_speed").get("machine")
    if not m:
        return ""
    return (f" ({m['when_utc']} UTC, {m['torch_threads']} torch threads, load average at the end "
            f"{m['loadavg'][0]:.1f})")


CALCS: dict[str, Callable[[Results], Any]] = {
    "suite_command": c_suite_command, "machine_load": c_machine_load, "finish_times": c_finish_times,
    "run_seconds": c_run_seconds, "encode_conv_share": c_encode_conv_share,
    "pipeline_mtcnn_share": c_pipeline_mtcnn_share, "levers_copy_bounds": c_levers_copy_bounds,
    "levers_batched_ratio": lambda R: _cascade_ratio(R, "full"),
    "levers_chained_ratio": lambda R: _cascade_ratio(R, "chained"),
    "levers_imfdb": c_levers_imfdb, "levers_jpeg_usable": c_levers_jpeg_usable,
    "levers_jpeg_ms": c_levers_jpeg_ms, "train_rasterize_s": c_train_rasterize_s,
    "video_machine": c_video_machine,
}


# ---------------------------------------------------------------------------------------- rendering


def _placeholder(R: Results, body: str) -> str:
    head, *filters = [p.strip() for p in body.split("|")]
    kind, sep, rest = head.partition(":")
    if not sep:
        raise TemplateError("write {{ value:PATH }}, {{ calc:NAME }} or {{ table:NAME ARGS }}")
    kind = kind.strip()
    if kind == "value":
        value: Any = R.value(rest)
    elif kind == "calc":
        if rest.strip() not in CALCS:
            raise TemplateError(f"no calc {rest.strip()!r}; there are: {', '.join(CALCS)}")
        value = CALCS[rest.strip()](R)
    elif kind == "table":
        name, *args = rest.split()
        if name not in TABLES:
            raise TemplateError(f"no table {name!r}; there are: {', '.join(TABLES)}")
        value = TABLES[name](R, *args)
    else:
        raise TemplateError(f"unknown kind {kind!r} (value, calc, table, if)")
    for f in filters:
        value = _apply(value, f)
    return _text(value)


def _condition(R: Results, paths: str) -> bool:
    """Whether every path (separated by spaces) names something that is there."""
    for path in paths.split():
        if not R.has(_split_path(path)[0]):
            return False
        try:
            value = R.value(path)
        except TemplateError:
            return False
        if value is None or value == [] or value == {}:
            return False
    return True


def render(template: str | None = None, results: Results | Path | None = None) -> str:
    """The page: ``template`` (default: the template file) filled from ``results`` (default: the
    committed results folder)."""
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    R = results if isinstance(results, Results) else Results(results or RESULTS_DIR)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch is shown, the whole block's parent is shown)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{_show(TEMPLATE) if template is None else 'template'}:{number}"
        shown = all(s for s, _ in stack)
        control = CONTROL.match(line)
        try:
            if control:
                word = control.group(1)
                if word.startswith("if:"):
                    stack.append((shown and _condition(R, control.group("cond")), shown))
                elif not stack:
                    raise TemplateError(f"{{{{ {word} }}}} without {{{{ if:... }}}}")
                elif word == "else":
                    cond, parent = stack.pop()
                    stack.append((parent and not cond, parent))
                else:
                    stack.pop()
                continue
            if not shown:
                continue
            rendered = PLACEHOLDER.sub(lambda m: _placeholder(R, m.group(1)), line)
        except MissingResult as e:
            raise MissingResult(e.stem, e.path, f"{where}: {line.strip()}") from None
        except TemplateError as e:
            raise TemplateError(f"{where}: {line.strip()}: {e}") from None
        except (KeyError, IndexError, TypeError, ValueError, StopIteration) as e:
            raise TemplateError(f"{where}: {line.strip()}: {type(e).__name__}: {e}") from None
        if rendered == "" and PLACEHOLDER.fullmatch(line.strip()):
            continue  # a placeholder alone on its line that renders to nothing: no empty line
        out.append(rendered)
    if stack:
        raise TemplateError(f"{len(stack)} {{{{ if:... }}}} without {{{{ end }}}}")
    return "\n".join(out) + "\n"


def write(doc: Path = DOC, results: Path | None = None) -> Path:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(results=results), encoding="utf-8")
    return doc
