"""Render the generated pages of ``docs/`` from their Markdown templates and the results JSON files.

``docs/benchmarks.md`` (speed), ``docs/results.md`` (how good the shipped model is) and
``docs/training.md`` (how to retrain it, and the research that chose the recipe): the prose lives in
``benchmarks/templates/<page>.md``; every number comes from ``benchmarks/results/<name>.json`` (or,
for an experiment, ``experiments/results/<name>.json``) through a placeholder. Placeholders
(``{{ ... }}``, inline or alone on a line):

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

TEMPLATES = registry.HERE / "templates"
RESULTS_DIR = registry.REPO_ROOT / registry.RESULTS
#: The experiments' results: read after the results folder named (the suite never rewrites them).
EXPERIMENTS_DIR = registry.REPO_ROOT / registry.EXPERIMENT_RESULTS
#: The generated pages: ``docs/<name>.md`` from ``benchmarks/templates/<name>.md`` (but for
#: :data:`ELSEWHERE`).
PAGES = ("benchmarks", "results", "training", "experiments", "card")
#: The generated pages that do not live in ``docs/``: the experiments' README and the bundled model's card.
ELSEWHERE = {"experiments": "experiments/README.md", "card": "weights/latentface-cpu-small/README.md"}
TEMPLATE = TEMPLATES / "benchmarks.md"
DOC = registry.REPO_ROOT / "docs" / "benchmarks.md"


def template_of(page: str) -> Path:
    """The template of a generated page (``results`` -> ``benchmarks/templates/results.md``)."""
    if page not in PAGES:
        raise TemplateError(f"no page {page!r}; there are: {', '.join(PAGES)}")
    return TEMPLATES / f"{page}.md"


def doc_of(page: str) -> Path:
    """Where a generated page is written (``results`` -> ``docs/results.md``)."""
    template_of(page)
    if page in ELSEWHERE:
        return registry.REPO_ROOT / ELSEWHERE[page]
    return registry.REPO_ROOT / "docs" / f"{page}.md"
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
    """The results files of one folder (then of ``also``: the experiments' folder), read when first
    named."""

    def __init__(self, folder: Path = RESULTS_DIR, also: Path | None = EXPERIMENTS_DIR) -> None:
        self.folder = Path(folder)
        self.folders = [self.folder] + ([Path(also)] if also is not None else [])
        self._cache: dict[str, Any] = {}

    def path(self, stem: str) -> Path:
        """The file of ``stem``: the first folder's, else the first that has it."""
        found = (f / f"{stem}.json" for f in self.folders)
        return next((p for p in found if p.is_file()), self.folder / f"{stem}.json")

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


# ---------------------------------------------------- docs/results.md and docs/training.md (quality)


def _cell(value: Any, spec: str = ".2f", sem: Any = None) -> str:
    """A number as ``spec`` (`` ± sem`` beside it when given); nothing for a value not recorded."""
    if value is None:
        return ""
    text = format(value, spec)
    return f"{text} ± {sem:.2f}" if sem is not None else text


#: How the pages name each feature set of ``python -m latentface_sdk.eval`` (what it is, then the name).
FEATURES = {
    "raw": "grey pixels (`raw`)", "lbp": "LBP histograms (`lbp`)", "hog": "HOG (`hog`)",
    "random-encoder": "an untrained encoder's `[Z_t, Z_s]` (`random-encoder`)",
    "latentface": "`Z_exp = [Z_t, Z_s]` (`latentface`)", "latentface-id": "`Z_id` (`latentface-id`)",
    "latentface-verify": "`[Z_id, Z_exp]`, `verification_features` (`latentface-verify`)",
    "latentface-fer": "`[Δexp, Z_exp]` (`latentface-fer`)",
    "latentface-expression": "`expression_features` (`latentface-expression`)",
    "lbp-frontal": "LBP on the frontal view (`lbp-frontal`)",
    "lbp-frontal-photo": "LBP on the photo-textured frontal view (`lbp-frontal-photo`)",
    "hog-frontal": "HOG on the frontal view (`hog-frontal`)",
}


def _feature(row: dict[str, Any]) -> str:
    name = FEATURES.get(row["feature"], f"`{row['feature']}`")
    return name + (" ¹" if row.get("weights") not in (None, "dc20075") else "")


def t_identity(R: Results) -> str:
    """What an app compares, on the held-out verify pairs: the embedding against LBP, the raw latents,
    unsupervised whitening and the untrained model (answers.json, probes.json)."""
    ident, probes = R.get("answers")["identity"], R.get("probes")
    controls = probes.get("controls", {})
    zid = next(r for r in probes["verify"]["rows"] if r["feature"] == "latentface-id")
    rows = [["LBP histograms", _cell(ident["lbp_cosine"]["accuracy"], sem=ident["lbp_cosine"]["sem"]), ""],
            ["`verification_features` `[Z_id, Z_exp]`, raw",
             _cell(ident["verification_features_cosine"]["accuracy"],
                   sem=ident["verification_features_cosine"]["sem"]),
             _cell(ident["verification_features_probe"]["accuracy"],
                   sem=ident["verification_features_probe"]["sem"])],
            ["`Z_id`, raw", _cell(zid["cosine"], sem=zid["cosine_sem"]),
             _cell(zid["probe"], sem=zid["probe_sem"])]]
    white = controls.get("identity_unsupervised_whitening_cosine")
    if white:
        rows.append(["unsupervised: standardise + PCA whitening (128) of `Z_id` / `[Z_id, Z_exp]`",
                     f"{white['latentface-id']:.1f} / {white['latentface-verify']:.1f}", ""])
    if "identity_random_init_lda_cosine" in controls:
        rows.append(["untrained model (random init, seed 0), `[Z_t, Z_s]` + the same LDA recipe",
                     _cell(controls["identity_random_init_lda_cosine"]), ""])
    emb = ident["embedding_cosine"]
    rows.append(["**`identity_embedding`**", f"**{_cell(emb['accuracy'], sem=emb['sem'])}**", ""])
    return md_table(["features", "cosine accuracy (%)", "linear probe (%)"], "lrr", rows)


def t_thresholds(R: Results) -> str:
    """verify() at the model's threshold and stricter ones (answers.json)."""
    ident = R.get("answers")["identity"]
    rows = [ident["at_model_threshold"], *ident["other_thresholds"]]
    return md_table(["cosine threshold", "accuracy (%)", "false accepts (%)", "false rejects (%)"], "rrrr",
                    ([f"{r['threshold']:.4g}" + (" (the model's)" if i == 0 else ""), f"{r['accuracy']:.1f}",
                      f"{r['false_accept_rate']:.1f}", f"{r['false_reject_rate']:.1f}"]
                     for i, r in enumerate(rows)))


def t_expressions(R: Results) -> str:
    """expressions() on FER-2013 PublicTest and the Taiwan held-out performers, beside the controls."""
    ex, probes = R.get("answers")["expression"], R.get("probes")
    controls = probes.get("controls", {})
    fer = {r["feature"]: r for r in probes["fer"]["rows"]}
    pub, tw = ex["fer2013_publictest"], ex["taiwan_held_out"]
    rows = [[f"FER-2013 PublicTest ({pub['n']:,} faces), `enc.expressions`", f"**{pub['accuracy']:.2f}**",
             f"**{pub['macro_f1']:.2f}**"]]
    if "expression_random_init_probe_accuracy" in controls:
        rows.append(["the same probe on an untrained model's `expression_features` (random init)",
                     f"{controls['expression_random_init_probe_accuracy']:.2f}",
                     f"{controls['expression_random_init_probe_macro_f1']:.2f}"])
    rows.append(["HOG / LBP, the same probe", f"{fer['hog']['accuracy']:.2f} / {fer['lbp']['accuracy']:.2f}",
                 f"{fer['hog']['macro_f1']:.2f} / {fer['lbp']['macro_f1']:.2f}"])
    rows.append([f"Taiwan corpus, five held-out performers ({tw['n']} colour studio photos), the FER head as "
                 "shipped", f"{tw['accuracy']:.1f}", f"{tw['macro_f1']:.1f}"])
    return md_table(["", "accuracy (%)", "macro-F1 (%)"], "lrr", rows)


def t_probe_verify(R: Results) -> str:
    """Every feature set on the verify pairs (probes.json)."""
    return md_table(["features", "dim", "probe acc (%)", "cosine acc (%)", "probe AUC", "cosine AUC"],
                    "lrrrrr",
                    ([_feature(r), r["dim"], _cell(r["probe"], sem=r["probe_sem"]),
                      _cell(r["cosine"], sem=r["cosine_sem"]), _cell(r["probe_auc"], ".3f"),
                      _cell(r["cosine_auc"], ".3f")] for r in R.get("probes")["verify"]["rows"]))


def t_probe_fer(R: Results, which: str = "fer") -> str:
    """Every feature set on FER-2013 PublicTest (``fer``) or the Taiwan performers (``taiwan``)."""
    return md_table(["features", "dim", "accuracy (%)", "macro-F1 (%)"], "lrrr",
                    ([_feature(r), r["dim"], _cell(r["accuracy"]), _cell(r["macro_f1"])]
                     for r in R.get("probes")[which]["rows"]))


#: pose_check.py's measures as the pages name them, with their number format.
POSE = (("yaw r against the landmark yaw estimate", "yaw_r", ".3f"),
        ("roll r against the eye-line angle (photos as they are)", "roll_r", ".3f"),
        ("yaw std (°)", "yaw_std_deg", ".2f"),
        ("pitch std / roll std (°)", ("pitch_std_deg", "roll_std_deg"), ".2f"),
        ("**rolled photos** (turned ±30° in their plane): roll r against the eye-line angle", "rolled_roll_r",
         ".3f"),
        ("... degrees of model roll per degree of turn", "rolled_roll_slope", ".2f"),
        ("reconstruction: mean absolute error inside the mask", "recon_masked_l1", ".3f"),
        ("frontal render: share of the frame the mask covers", "frontal_mask_cover", ".2f"),
        ("light direction R², relit faces encoded again (azimuth / elevation)",
         ("light_r2_azimuth", "light_r2_elevation"), ".2f"),
        ("texture move under relighting / between two people", "texture_move_relit_over_between_people",
         ".2f"),
        ("keypoint pits, share of the face's relief", "keypoint_pit_over_relief", ".3f"),
        ("turned faces (\\|yaw estimate\\| >= 0.2)", "turned_faces", ".0f"),
        ("... MTCNN finds a face in the frontalized image", "frontal_detected", ".0%"),
        ("... mean \\|yaw estimate\\| after / before frontalization", "frontal_yaw_ratio", ".2f"))


def _pose_rows(sets: list[dict[str, Any]]) -> Iterable[list[str]]:
    for label, key, spec in POSE:
        keys = key if isinstance(key, tuple) else (key,)
        yield [label, *(" / ".join(format(s[k], spec) for k in keys) for s in sets)]


def t_pose(R: Results, stem: str = "pose_check") -> str:
    """pose_check.py's measures on the held-out UTKFace rows and the CelebA verify sample."""
    res = R.get(stem)["results"]
    sets = [res["utkface-heldout"], res["celeba-verify"]]
    head = [f"UTKFace held-out ({sets[0]['faces']:.0f} faces)",
            f"CelebA verify ({sets[1]['faces']:.0f} faces)"]
    return md_table(["measure", *head], "lrr", _pose_rows(sets))


ARMS = (("yaw_r", ".2f"), ("roll_r", ".2f"), ("yaw_std_deg", ".2f"), ("recon_masked_l1", ".3f"),
        ("light_r2", ".2f"), ("texture_move_relit_over_between_people", ".2f"), ("frontal_detected", ".2f"),
        ("frontal_yaw_ratio", ".2f"))


def t_arms(R: Results, *specs: str) -> str:
    """Stage-1 arms scored by pose_check (cells: UTKFace held-out / CelebA verify). Each spec is
    ``STEM:ARM`` (an arm of ``experiments/results/STEM.json``), ``STEM`` (a pose_check file) or ``STEM:*``
    (every arm of the file, in its order)."""
    rows = []
    for spec in specs:
        stem, _, arm = spec.partition(":")
        data = R.get(stem)
        arms = list(data["results"]) if arm == "*" else [arm] if arm else [None]
        for a in arms:
            res = data["results"] if a is None else data["results"][a]
            label = f"{a}, {data['steps']} steps" if a is not None else "the shipped weights"
            rows.append([label, *(f"{res['utkface-heldout'][k]:{f}} / {res['celeba-verify'][k]:{f}}"
                                  for k, f in ARMS)])
    return md_table(["arm", "yaw_r", "roll_r", "yaw_std (°)", "recon_l1", "light_r2", "tex_move", "front_det",
                     "front_yaw"], "lrrrrrrrr", rows)


def t_expression_levers(R: Results) -> str:
    """The stage-1 expression screen (stage1_expression_levers.json)."""
    def pair(v: list[float] | None, spec: str) -> str:
        return " / ".join(format(x, spec) for x in v) if v else ""

    return md_table(["arm", "FER `Z_exp`", "FER `expression_features` (macro-F1)", "verify `Z_exp`",
                     "recon L1", "yaw r", "light elevation R²", "keypoint pits"], "lrrrrrrr",
                    ([r["arm"], f"{r['fer_z_exp']:.2f}",
                      f"{r['fer_expression_features']:.2f} ({r['fer_expression_features_macro_f1']:.2f})",
                      _cell(r["verify_z_exp"], sem=r["verify_z_exp_sem"]), pair(r["recon_l1"], ".4f"),
                      pair(r["yaw_r"], ".3f"), pair(r["light_r2_elevation"], ".3f"),
                      pair(r["keypoint_pits"], ".3f")]
                     for r in R.get("stage1_expression_levers")["rows"]))


def t_stage2_levers(R: Results, stem: str = "stage2_levers") -> str:
    """Stage-2 arms: ``[Δexp, Z_exp]`` on FER-2013 and its gain over ``Z_exp`` alone."""
    rows = R.get(stem)["rows"]
    return md_table(["stage 2", "steps", "`[Δexp, Z_exp]` (%)", "gain over `Z_exp`"], "lrrr",
                    ([r["arm"], "" if r["steps"] is None else f"{r['steps']:,}", f"{r['accuracy']:.2f}",
                      "" if r.get("gain") is None else f"{r['gain']:+.2f}"] for r in rows))


def t_readout(R: Results) -> str:
    """The FER probe on each readout of the encoders (expression_readout.json)."""
    return md_table(["readout (FER-2013 PublicTest, the FER probe)", "dim", "accuracy (%)", "macro-F1 (%)"],
                    "lrrr", ([r["layout"], f"{r['dim']:,}", f"{r['accuracy']:.2f}", f"{r['macro_f1']:.2f}"]
                             for r in R.get("expression_readout")["rows"]))


def t_log_windows(R: Results, log: str) -> str:
    """Medians of a training log over windows of steps (train_runs.json, train_log_summary.py's table)."""
    rows = R.get("train_runs")["log_windows"][log]
    keys = [k for k in rows[0] if k != "steps"]
    return md_table(["steps", *(f"`{k}`" for k in keys)], "l" + "r" * len(keys),
                    ([r["steps"], *(f"{r[k]:.3f}" for k in keys)] for r in rows))


def t_train_times(R: Results) -> str:
    """The shipped weights' runs, step by step (train_runs.json)."""
    return md_table(["run", "recipe", "work", "wall time (min)"], "lllr",
                    ([r["run"], f"`{r['recipe']}`" if r.get("recipe") else "", r["work"],
                      _cell(r["minutes"], ".0f")]
                     for r in R.get("train_runs")["steps"]))


TABLES: dict[str, Callable[..., str]] = {
    "ops": t_ops, "functions": t_functions, "rows": t_rows, "goals": t_goals, "encode": t_encode,
    "pipeline": t_pipeline, "levers_pipelines": t_levers_pipelines, "levers_time": t_levers_time,
    "levers": t_levers, "latent_ops": t_latent_ops, "memory": t_memory, "contention": t_contention,
    "onnx": t_onnx, "registry": t_registry, "identity": t_identity, "thresholds": t_thresholds,
    "expressions": t_expressions, "probe_verify": t_probe_verify, "probe_fer": t_probe_fer, "pose": t_pose,
    "arms": t_arms, "expression_levers": t_expression_levers, "stage2_levers": t_stage2_levers,
    "train_times": t_train_times, "readout": t_readout, "log_windows": t_log_windows,
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


def c_zid_over_zexp(R: Results) -> float:
    """How far the identity latents' verification probe is above ``Z_exp``'s (probes.json)."""
    rows = {r["feature"]: r for r in R.get("probes")["verify"]["rows"]}
    return float(rows["latentface-id"]["probe"] - rows["latentface"]["probe"])


def c_photo_means(R: Results) -> str:
    """The mean identity cosine of one person's photos and of two people's (answers.json's shared photos)."""
    photos = R.get("answers")["photos"]
    who = [f.split(" (")[0] for f in photos["faces"]]
    same, other = [], []
    for i in range(len(who)):
        for j in range(i + 1, len(who)):
            (same if who[i] == who[j] else other).append(photos["similarity"][i][j])
    return f"{sum(same) / len(same):.2f} against {sum(other) / len(other):.2f}"


def c_probe_footnote(R: Results) -> str:
    """The note behind the rows of probes.json measured on other weights (nothing when there are none)."""
    probes = R.get("probes")
    rows = [r for k in ("verify", "fer", "taiwan") for r in probes.get(k, {}).get("rows", [])]
    other = sorted({r["weights"] for r in rows if r.get("weights") not in (None, "dc20075")})
    return (f"¹ Baselines that do not depend on the weights, from an earlier run (commit {', '.join(other)})."
            if other else "")


def c_train_minutes(R: Results) -> float:
    """The shipped weights' runs from nothing, in minutes (train_runs.json)."""
    return float(sum(r["minutes"] or 0 for r in R.get("train_runs")["steps"]))


CALCS: dict[str, Callable[[Results], Any]] = {
    "suite_command": c_suite_command, "machine_load": c_machine_load, "finish_times": c_finish_times,
    "run_seconds": c_run_seconds, "encode_conv_share": c_encode_conv_share,
    "pipeline_mtcnn_share": c_pipeline_mtcnn_share, "levers_copy_bounds": c_levers_copy_bounds,
    "levers_batched_ratio": lambda R: _cascade_ratio(R, "full"),
    "levers_chained_ratio": lambda R: _cascade_ratio(R, "chained"),
    "levers_imfdb": c_levers_imfdb, "levers_jpeg_usable": c_levers_jpeg_usable,
    "levers_jpeg_ms": c_levers_jpeg_ms, "train_rasterize_s": c_train_rasterize_s,
    "video_machine": c_video_machine, "zid_over_zexp": c_zid_over_zexp, "train_minutes": c_train_minutes,
    "photo_means": c_photo_means, "probe_footnote": c_probe_footnote,
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


def render(template: str | None = None, results: Results | Path | None = None,
           page: str = "benchmarks") -> str:
    """A page: ``template`` (default: the template file of ``page``) filled from ``results`` (default:
    the committed results folders)."""
    text = template_of(page).read_text(encoding="utf-8") if template is None else template
    R = results if isinstance(results, Results) else Results(results or RESULTS_DIR)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch is shown, the whole block's parent is shown)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{_show(template_of(page)) if template is None else 'template'}:{number}"
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


def write(doc: Path = DOC, results: Path | None = None, page: str = "benchmarks") -> Path:
    """Write one page (default: docs/benchmarks.md) from the results."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(results=results, page=page), encoding="utf-8")
    return doc


def stale_pages(results: Path | None = None) -> list[str]:
    """The generated pages of docs/ that differ from what their templates and the results make."""
    return [page for page in PAGES
            if not doc_of(page).is_file()
            or doc_of(page).read_text(encoding="utf-8") != render(results=results, page=page)]
