"""The benchmarks as one suite (issue 28): registry, runner and the page made from the results.

Nothing here runs a benchmark: the registry is checked against the scripts on disk, docs/benchmarks.md
against what its template and the committed results make (so the page and the numbers cannot drift),
and the runner with its subprocess replaced.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import __main__ as suite  # noqa: E402
from benchmarks import registry, report  # noqa: E402


def test_every_registered_script_exists() -> None:
    for b in registry.BENCHMARKS:
        assert b.path.is_file(), f"{b.name}: {b.where} does not exist"
        assert b.kind in registry.FOLDERS and b.options <= registry.OPTIONS, b.name
        assert b.measures and b.feeds and (b.kind == "tool" or b.minutes > 0), b.name
        folder = registry.EXPERIMENT_RESULTS if b.kind == "experiment" else registry.RESULTS
        for r in b.results:
            assert r.startswith(folder + "/") and r.endswith(".json"), (b.name, r)


def test_every_script_is_registered() -> None:
    assert registry.unregistered_scripts() == [], "add these to benchmarks/registry.py (or archive them)"
    names = [b.name for b in registry.BENCHMARKS]
    assert len(names) == len(set(names))
    assert {b.name for b in registry.BENCHMARKS if b.kind == "tool"} == {"train_log_summary"}


def test_archived_code_is_not_a_benchmark() -> None:
    archive = REPO / "experiments" / "archive"
    assert (archive / "README.md").is_file() and (archive / "mtcnn_cascade.py").is_file()
    assert not (REPO / "benchmarks" / "archive").exists()
    assert all(not b.script.startswith("archive/") for b in registry.BENCHMARKS)


def test_research_lives_in_experiments_and_its_readme_says_what_each_found() -> None:
    """benchmarks/ holds what a user reruns (speed and quality of what ships); the scripts that chose a
    recipe live in experiments/, and experiments/README.md names each with its command."""
    readme = (REPO / "experiments" / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in (REPO / "experiments").glob("*.py"))
    assert {"stage1_levers.py", "stage2_levers.py", "stage1_ablation.py", "detection_levers.py",
            "expression_readout.py", "answer_heads.py"} <= set(scripts)
    for name in scripts:
        assert f"python experiments/{name}" in readme, f"experiments/README.md says nothing of {name}"
        assert not (REPO / "benchmarks" / name).exists(), name
    for b in registry.BENCHMARKS:
        assert (b.kind == "experiment") == (b.where.startswith("experiments/")), b.name
    present = {p.relative_to(REPO).as_posix() for p in (REPO / "experiments" / "results").glob("*.json")}
    claimed = {r for b in registry.BENCHMARKS if b.kind == "experiment" for r in b.results}
    assert present == claimed, "results files in experiments/results that no experiment claims (or missing)"


def test_every_results_file_has_its_benchmark() -> None:
    claimed = {r for b in registry.BENCHMARKS for r in b.results} | set(registry.SUITE_RESULTS)
    present = {p.relative_to(REPO).as_posix() for folder in ("benchmarks", "experiments")
               for p in (REPO / folder / "results").glob("*.json")}
    assert present - claimed == set(), "results files no registered benchmark writes"
    results = [r for b in registry.BENCHMARKS for r in b.results]
    assert len(results) == len(set(results)), "two benchmarks claim one results file"


def test_lookup_by_name_script_or_results_name() -> None:
    assert registry.lookup("encode_speed").name == "encode_speed"
    assert registry.lookup("encode").name == "encode_speed"  # run_all.py --only encode
    assert registry.lookup("pipeline_speed.py").name == "pipeline_speed"
    with pytest.raises(KeyError, match="python -m benchmarks list"):
        registry.lookup("no_such_benchmark")


def test_the_page_is_what_the_template_and_the_results_make() -> None:
    rendered = report.render()
    committed = report.DOC.read_text(encoding="utf-8")
    assert rendered == committed, ("docs/benchmarks.md is stale or edited by hand: "
                                   "run `python -m benchmarks report`")
    # the headings other pages link to
    for heading in ("## 6. On a busy machine: thread settings beside competing processes",
                    "## 7. ONNX Runtime against PyTorch", "## 8. Video"):
        assert f"\n{heading}\n" in committed
    assert "2.25 ms per face" in committed and "| ONNX Runtime ms/face |" in committed
    assert "{{" not in committed and "}}" not in committed


def test_each_section_says_its_command() -> None:
    page = report.DOC.read_text(encoding="utf-8")
    sections = re.split(r"\n## (?=\d\.)", page)[1:]
    assert len(sections) == 8
    for section in sections:
        assert "python benchmarks/" in section or "python -m benchmarks" in section, section[:80]


def _render(template: str, folder: Path) -> str:
    return report.render(template, report.Results(folder))


def test_a_missing_results_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(report.MissingResult) as e:
        _render("intro\n\n{{ table:onnx network }}\n", tmp_path)
    message = str(e.value)
    assert "onnx_speed.json" in message and "template:3" in message
    assert "python -m benchmarks run onnx_speed" in message
    with pytest.raises(report.MissingResult, match="no registered benchmark writes it"):
        _render("{{ value:not_a_result.x | .1f }}\n", tmp_path)
    # the committed template names every file it needs: an empty results folder fails on the first
    with pytest.raises(report.MissingResult, match="encode.json"):
        report.render(results=tmp_path)


def test_unknown_names_and_keys_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"a": {"b": 1}}))
    for template, message in (("{{ value:x.a.c }}", "no key 'c'"), ("{{ table:nope }}", "no table 'nope'"),
                              ("{{ calc:nope }}", "no calc 'nope'"),
                              ("{{ value:x.a.b | nofilter }}", "filter"),
                              ("{{ if:x }}\nopen\n", "without {{ end }}"), ("{{ end }}", "without {{ if")):
        with pytest.raises(report.TemplateError, match=re.escape(message)):
            _render(template + "\n", tmp_path)


def test_values_filters_and_sections(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "command": "python benchmarks/x.py", "stamp": "2026-11-26 08:41:07",
        "t": {"median": 1.234, "min": 1.0, "max": 1.5}, "imports": {"latentface_sdk.encoder": 781.7},
        "rows": [{"mode": "video", "frames": 120, "frames_per_s": 30.5},
                 {"mode": "image files", "frames": 120, "frames_per_s": 12.25}],
        "n": [1000, 10000], "share": 0.918,
    }
    (tmp_path / "x.json").write_text(json.dumps(data))
    out = _render("`{{ value:x.command }}` on {{ value:x.stamp | date }} at {{ value:x.stamp | hm }}\n"
                  "{{ value:x.t | range }}, {{ value:x.t | range:2 }}, "
                  "{{ value:x.t.median | scale:1000 | .0f }}\n"
                  "{{ value:x.imports.latentface_sdk.encoder | .0f }} {{ value:x.n[-1] | , }} "
                  "{{ value:x.share | pct }}\n"
                  "{{ value:x.rows[mode=image files].frames_per_s }} {{ value:x.rows | len }}\n"
                  "{{ if:x.rows }}\nshown\n{{ if:y }}\nhidden\n{{ else }}\nno y\n{{ end }}\n"
                  "{{ else }}\nnot shown\n{{ end }}\n"
                  "{{ if:y }}\nnot shown\n{{ end }}\n"
                  "{{ table:rows x.rows }}\n", tmp_path)
    assert out.splitlines()[:6] == [
        "`python benchmarks/x.py` on 2026-11-26 at 08:41", "1.2 (1.0–1.5), 1.23 (1.00–1.50), 1234",
        "782 10,000 92%", "12.25 2", "shown", "no y"]
    assert out.splitlines()[6:] == ["| mode | frames | frames per s |", "|---|---:|---:|",
                                    "| video | 120 | 30.5 |", "| image files | 120 | 12.25 |"]
    with pytest.raises(report.TemplateError, match="matches 2 elements"):
        _render("{{ value:x.rows[frames=120].mode }}\n", tmp_path)


def test_the_video_section_renders_when_its_results_exist(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    shutil.copytree(report.RESULTS_DIR, folder)
    (folder / "video_speed.json").unlink(missing_ok=True)
    assert "Not run yet. `python -m benchmarks run video_speed" in report.render(results=folder)
    rows = [{"mode": "video", "frames": 120, "seconds": 4.0, "frames_per_s": 30.0},
            {"mode": "image files", "frames": 120, "seconds": 8.0, "frames_per_s": 15.0}]
    command = "python benchmarks/video_speed.py --threads 2 --json benchmarks/results/video_speed.json"
    (folder / "video_speed.json").write_text(json.dumps({"command": command, "rows": rows}))
    page = report.render(results=folder)
    video = page.split("## 8. Video\n", 1)[1].split("\n## ", 1)[0]
    assert f"Command: `{command}`." in video and "Not run yet" not in video
    assert "| mode | frames | seconds | frames per s |" in video and "| image files | 120 | 8 | 15 |" in video


def test_list_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "list"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for b in registry.BENCHMARKS:
        assert f"| {b.name} | `{b.where}` |" in proc.stdout


def test_the_documented_commands_parse() -> None:
    template = report.TEMPLATE.read_text(encoding="utf-8")
    block = re.search(r"```text\n(.*?)```", template.split("## Rerun", 1)[1], flags=re.S)
    assert block
    lines = [line.split(" #")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "benchmarks"], line
        suite.parser().parse_args(words[3:])


def _args(*argv: str) -> Any:
    return suite.parser().parse_args(["run", *argv])


def test_run_passes_each_script_the_options_it_has(tmp_path: Path) -> None:
    names = registry.by_name()
    enc = suite.commands(names["encode_speed"], _args("x", "--threads", "2", "--quick"), tmp_path)
    # (tmp_path is absolute, unless the checkout sits right in the temp folder: suite._rel's rules below)
    assert enc == [["python", "benchmarks/encode_speed.py", "--threads", "2", "--repeats", "1", "--quick",
                    "--json", suite._rel(tmp_path / "encode.json")]]
    enc = suite.commands(names["encode_speed"], _args("x"), registry.REPO_ROOT / "benchmarks" / "results")
    assert enc == [["python", "benchmarks/encode_speed.py", "--repeats", "5", "--json",
                    "benchmarks/results/encode.json"]]
    ray = suite.commands(names["ray_extract"], _args("x", "--threads", "2", "--repeats", "3"), tmp_path)
    assert "--threads" not in ray[0] and "--repeats" not in ray[0]
    gap = suite.commands(names["rdm_identity_gap"], _args("x", "--model", "runs/m"), tmp_path)
    assert gap[0].count("--model") == 1 and "runs/m" in gap[0]
    levers = suite.commands(names["stage1_levers"], _args("x", "--extra=--steps 10"), tmp_path)
    assert ([c[2] for c in levers] == ["prepare", "train", "score"]
            and all(c[-2:] == ["--steps", "10"] for c in levers))
    assert all(c[1] == "experiments/stage1_levers.py" for c in levers)


def test_an_experiment_writes_its_results_beside_it(capsys: pytest.CaptureFixture[str]) -> None:
    """By default an experiment's results go to experiments/results/, a benchmark's to benchmarks/results/."""
    assert suite.main(["run", "stage2_levers", "encode_speed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "experiments/stage2_levers.py --json experiments/results/stage2_levers.json" in out
    assert "benchmarks/encode_speed.py --repeats 5 --json benchmarks/results/encode.json" in out


def test_paths_are_given_as_a_reader_types_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative inside the checkout and beside it, absolute elsewhere, wherever the checkout lives."""
    root = tmp_path / "lf ci" / "main"
    monkeypatch.setattr(registry, "REPO_ROOT", root)
    assert suite._rel(root / "runs" / "x.json") == "runs/x.json"
    assert suite._rel(root.parent / "shared" / "data") == "../shared/data"
    assert suite._rel(tmp_path / "elsewhere" / "x.json") == str(tmp_path / "elsewhere" / "x.json")


def test_run_refuses_what_it_cannot_do(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in ((["run"], "or --all"), (["run", "--all", "encode"], "or --all"),
                          (["run", "train_log_summary"], "is a tool"),
                          (["run", "pose_check", "--quick"], "no --quick"),
                          (["run", "--all", "--extra=--x"], "exactly one"),
                          (["run", "nope"], "no benchmark 'nope'")):
        with pytest.raises(SystemExit):
            suite.main(argv)
        assert message in capsys.readouterr().err, argv


def test_relative_paths_replace_the_longest_machine_prefix_first() -> None:
    """The rules on a made-up machine where the checkout lives under the temp folder in a path with a
    space and home holds the temp folder: inside the repository -> relative, beside it -> ``../shared``,
    elsewhere in the temp folder -> ``$TMPDIR``, in home -> ``~``, a sibling that merely starts with the
    repository's name untouched by the repository's rule."""
    pairs = sorted({"/h/tmp/lf ci/main": ".", "/h/tmp/lf ci/shared": "../shared", "/h/tmp": "$TMPDIR",
                    "/h": "~"}.items(), key=lambda kv: -len(kv[0]))
    got = suite.relative_paths({"a": ["--json /h/tmp/lf ci/main/benchmarks/results/x.json",
                                      "/h/tmp/lf ci/shared/data/photos", "/h/tmp/lf ci/main",
                                      "/h/tmp/lf ci/mainx/y", "/h/tmp/other", "/h/cache", "/hx", 3]}, pairs)
    assert got == {"a": ["--json benchmarks/results/x.json", "../shared/data/photos", ".",
                         "$TMPDIR/lf ci/mainx/y", "$TMPDIR/other", "~/cache", "/hx", 3]}


def test_paths_of_this_machine_become_relative() -> None:
    """The same on this machine, wherever the checkout lives (under the temp folder or home included)."""
    repo = str(registry.REPO_ROOT)
    shared = str(registry.REPO_ROOT.parent / "shared")
    got = suite.relative_paths({"a": [f"--json {repo}/benchmarks/results/x.json", f"{shared}/data/photos",
                                      repo, 3]})
    assert got == {"a": ["--json benchmarks/results/x.json", "../shared/data/photos", ".", 3]}
    # a sibling folder whose name starts with the repository's is not inside it: it gets the rules of the
    # temp folder and home (where the checkout may itself live) but never the repository's
    sibling = f"{repo}x/y"
    others = [(prefix, repl) for prefix, repl in suite._machine_paths() if repl != "."]
    assert suite.relative_paths(sibling) == suite.relative_paths(sibling, others)
    assert suite.relative_paths(sibling).endswith(f"{registry.REPO_ROOT.name}x/y")


def test_a_run_stamps_its_results_and_records_its_time(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_call(cmd: list[str], env: dict[str, str]) -> int:  # what the script would write
        calls.append(cmd)
        assert env["OMP_NUM_THREADS"] == "2"
        out = registry.REPO_ROOT / cmd[cmd.index("--json") + 1]
        out.write_text(json.dumps({"rows": [{"mode": "video",
                                             "file": f"{registry.REPO_ROOT}/runs/clip.mp4"}]}))
        return 0

    monkeypatch.setattr(suite, "call", fake_call)
    assert suite.main(["run", "video_speed", "--threads", "2", "--out", str(tmp_path)]) == 0
    assert calls and calls[0][1:3] == ["benchmarks/video_speed.py", "--threads"]
    data = json.loads((tmp_path / "video_speed.json").read_text())
    assert data["rows"][0]["file"] == "runs/clip.mp4"
    assert data["command"].startswith("python benchmarks/video_speed.py --threads 2 --json ")
    assert data["suite"]["command"].startswith("python -m benchmarks run video_speed --threads 2 --out ")
    assert ("git_commit" in data["suite"]
            and {"cpu", "cores", "when_utc", "git_commit"} <= set(data["machine"]))
    assert set(json.loads((tmp_path / "run_seconds.json").read_text())) == {"video_speed"}
    assert not (tmp_path / "benchmarks.md").exists()  # the other families' results are not there: no page
