"""The pages made from results files (issue 37): docs/results.md, docs/training.md, experiments/README.md
and the bundled model's card, like docs/benchmarks.md, are what their templates and the committed results
make, so a page and its numbers cannot drift; and install.md's sizes and times are the measured ones.

Nothing here measures anything: the pages are rendered from benchmarks/results/ and experiments/results/.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import report  # noqa: E402

GENERATED = [p for p in report.PAGES if p != "benchmarks"]  # benchmarks.md: tests/test_benchmarks_suite.py


@pytest.mark.parametrize("page", GENERATED)
def test_the_page_is_what_its_template_and_the_results_make(page: str) -> None:
    committed = report.doc_of(page).read_text(encoding="utf-8")
    assert report.render(page=page) == committed, (
        f"{report.doc_of(page).relative_to(REPO)} is stale or edited by hand: "
        "run `python -m benchmarks report`")
    assert "{{" not in committed and "}}" not in committed
    assert "python -m benchmarks report" in committed.split("\n# ", 1)[0] or committed.startswith("---")


def test_a_changed_result_changes_the_pages(tmp_path: Path) -> None:
    """The numbers come from the results files: a new answers.json run shows on results.md and the card."""
    folder = tmp_path / "results"
    shutil.copytree(report.RESULTS_DIR, folder)
    answers = json.loads((folder / "answers.json").read_text(encoding="utf-8"))
    answers["identity"]["embedding_cosine"]["accuracy"] = 81.234
    (folder / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
    for page in ("results", "card"):
        assert "81.23" not in report.render(page=page)
        assert "81.23" in report.render(results=folder, page=page), page
    (folder / "probes.json").unlink()
    with pytest.raises(report.MissingResult, match="python -m benchmarks run probes"):
        report.render(results=folder, page="results")


def test_the_product_pages_read_as_a_product() -> None:
    """results.md and training.md answer a user's questions; which issue did what lives in CHANGELOG.md."""
    results = report.doc_of("results").read_text(encoding="utf-8")
    training = report.doc_of("training").read_text(encoding="utf-8")
    for page in (results, training):
        assert not re.search(r"\bissue \d+", page), re.search(r".{40}\bissue \d+.{20}", page)
    for heading in ("## At a glance", "## The data", "## Identity", "## Expressions", "## All probes",
                    "## 3D: pose, light, frontalization and reconstruction", "## Reproduce"):
        assert f"\n{heading}\n" in results, heading
    for heading in ("## Reproduce the shipped weights", "### Time", "## How the recipe was chosen"):
        assert f"\n{heading}\n" in training, heading
    assert "The bundled weights, version by version" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", ["results", "experiments"])
def test_measured_numbers_come_from_placeholders(page: str) -> None:
    """Outside code blocks, no number with decimals is typed into the template (chance on 7 classes aside)."""
    text = report.template_of(page).read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", re.sub(r"\{\{.*?\}\}", "", text), flags=re.S)
    typed = set(re.findall(r"(?<![\w.`-])\d+\.\d+(?![\w.`])", text)) - {"14.3"}
    assert not typed, f"numbers typed into benchmarks/templates/{page}.md: {sorted(typed)}"


def _size(mb: float) -> str:
    return f"{mb / 1024:.2f} GB"


def _time(seconds: float) -> str:
    s = round(seconds)
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60} s"


def test_install_sizes_and_times_are_the_measured_ones() -> None:
    """docs/install.md states the sizes and install times that benchmarks/install_check.py measured (the
    README links there instead of repeating them)."""
    measured = json.loads((report.RESULTS_DIR / "install_check.json").read_text(encoding="utf-8"))
    install = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    for venv in measured["venvs"]:
        assert _size(venv["size_mb"]) in install, (venv["venv"], _size(venv["size_mb"]))
        assert _time(venv["install_seconds"]) in install, (venv["venv"], _time(venv["install_seconds"]))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"\d+(\.\d+)? GB", readme), "state install sizes in docs/install.md and link to it"
    assert "docs/install.md" in readme


def test_a_probes_run_renders_the_results_page(tmp_path: Path) -> None:
    """benchmarks/probes.py collects the eval runs' JSON into what results.md reads; a fresh run (no
    transcription note, no controls, no earlier-weights rows) still makes the page."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import probes
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    runs = tmp_path / "runs"
    (runs / "verify").mkdir(parents=True)
    verify = [{"feature": f, "dim": 512, "folds": 10, "n_pairs": 2200,
               "probe_accuracy": {"mean": acc, "sem": 0.01},
               "cosine_accuracy": {"mean": acc - 0.02, "sem": 0.01},
               "probe_auc": 0.8, "cosine_auc": 0.75}
              for f, acc in (("lbp", 0.54), ("latentface", 0.68), ("latentface-id", 0.7312))]
    (runs / "verify" / "verification.json").write_text(json.dumps({"results": verify}))
    for name, n_train, n_test in (("fer", 28709, 3589), ("taiwan", 1033, 199)):
        (runs / name).mkdir()
        found = (("lbp", 0.35), ("hog", 0.42), ("latentface-expression", 0.5))
        rows = [{"feature": f, "dim": 640, "accuracy": acc, "macro_f1": acc - 0.05, "n_train": n_train,
                 "n_test": n_test} for f, acc in found]
        (runs / name / "fer.json").write_text(json.dumps({"results": rows}))
    collected = probes.collect(runs, controls=None)  # a fresh run: no controls, whatever runs/ holds
    assert collected["verify"]["pairs"] == 2200 and collected["fer"]["test"] == 3589
    assert collected["verify"]["rows"][2] == {"feature": "latentface-id", "dim": 512, "probe": 73.12,
                                              "probe_sem": 1.0, "cosine": 71.12, "cosine_sem": 1.0,
                                              "probe_auc": 0.8, "cosine_auc": 0.75}
    folder = tmp_path / "results"
    shutil.copytree(report.RESULTS_DIR, folder)
    (folder / "probes.json").write_text(json.dumps(collected))
    page = report.render(results=folder, page="results")
    glance = page.split("## The data")[0]
    assert "the best probe on the raw latents 73.12%" in glance and "untrained model" not in glance
    assert "¹" not in page and "Transcribed" not in page
