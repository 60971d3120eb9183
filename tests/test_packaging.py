"""The distribution is what pyproject.toml says: one version, every sub-package, bundled weights, console
scripts.

Also checks that `.ci/run` runs exactly the set-up and test commands that README.md shows a newcomer.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

import latentface_sdk
from latentface_sdk import _paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below Python 3.11
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
DIST_NAME = "latentface-sdk"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml of this checkout."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


# --- version -------------------------------------------------------------------------------------------


def test_version_is_defined_in_one_place(pyproject: dict[str, Any]) -> None:
    """pyproject reads the version from latentface_sdk._version; nothing else assigns a version string."""
    project = pyproject["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "latentface_sdk._version.__version__"
    }
    assigners = [
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "latentface_sdk").rglob("*.py")
        if re.search(r"^__version__\s*=", p.read_text(encoding="utf-8"), flags=re.MULTILINE)
    ]
    assert assigners == ["latentface_sdk/_version.py"]
    Version(latentface_sdk.__version__)  # raises unless it is a valid PEP 440 version


def test_installed_metadata_matches_package_version() -> None:
    """The installed distribution's metadata carries the same version as ``latentface_sdk.__version__``."""
    assert importlib.metadata.version(DIST_NAME) == latentface_sdk.__version__


# --- packages and package data -------------------------------------------------------------------------


def test_every_subpackage_is_listed(pyproject: dict[str, Any]) -> None:
    """The explicit package list (needed to map weights/) names every folder of Python code, and no ghost."""
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(d.relative_to(REPO_ROOT).parts)
        for d in [REPO_ROOT / "latentface_sdk", *(REPO_ROOT / "latentface_sdk").rglob("*")]
        if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.py"))
    }
    missing = on_disk - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert listed - on_disk == {"latentface_sdk.weights"}


def test_optional_engines_stay_out_of_the_core(pyproject: dict[str, Any]) -> None:
    """Ray and Gradio are extras: not core dependencies, and `import latentface_sdk` (or the CLI) never loads
    them."""
    core = " ".join(pyproject["project"]["dependencies"]).lower()
    assert "ray" not in core and "gradio" not in core
    extras = pyproject["project"]["optional-dependencies"]
    assert (any(d.startswith("ray[data]") for d in extras["ray"])
            and any(d.startswith("gradio") for d in extras["demo"]))
    code = ("import sys, latentface_sdk, latentface_sdk.cli, latentface_sdk.integrations; "
            "print(sorted(m for m in ('ray', 'gradio', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_weights_folder_is_mapped_into_the_package(pyproject: dict[str, Any]) -> None:
    """Top-level weights/ becomes latentface_sdk/weights/ with its json, safetensors and model cards."""
    setuptools_cfg = pyproject["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"] == {"latentface_sdk.weights": "weights"}
    data = setuptools_cfg["package-data"]["latentface_sdk.weights"]
    assert {"*/*.json", "*/*.safetensors", "*/*.md"} <= set(data)
    assert (REPO_ROOT / "weights" / "README.md").is_file()


def _copy_source_tree(dest: Path) -> None:
    """The files a wheel is built from (no caches, no egg-info, none of the repository's real weights)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO_ROOT / "latentface_sdk", dest / "latentface_sdk", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (REPO_ROOT / name).is_file():
            shutil.copy2(REPO_ROOT / name, dest / name)
    (dest / "weights").mkdir()
    shutil.copy2(REPO_ROOT / "weights" / "README.md", dest / "weights" / "README.md")


@pytest.mark.slow
def test_wheel_ships_bundled_weights(tmp_path: Path) -> None:
    """A wheel built from the tree carries weights/<name>/ as package data, and _paths finds it installed."""
    src = tmp_path / "src"
    _copy_source_tree(src)
    model = src / "weights" / "tiny-test"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"name": "tiny-test"}))
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (model / "README.md").write_text("# tiny-test\n")
    (model / "train.log").write_text("not for the wheel\n")

    out = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "No matching distribution found for setuptools" in done.stderr:
        pytest.skip("building a wheel needs setuptools from a package index, which is unreachable here")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("latentface_sdk-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for f in ("config.json", "model.safetensors", "README.md"):
        assert f"latentface_sdk/weights/tiny-test/{f}" in names
    assert "latentface_sdk/weights/README.md" in names
    assert "latentface_sdk/weights/tiny-test/train.log" not in names
    assert "latentface_sdk/py.typed" in names and "latentface_sdk/_paths.py" in names
    recipes = {
        p.relative_to(src).as_posix() for p in (src / "latentface_sdk" / "train" / "configs").glob("*.json")
    }
    assert recipes <= names, "training recipes must ship in the wheel"

    # Imported from the unpacked wheel (not this checkout), the package lists the bundled model.
    probe = (
        "import json, latentface_sdk, latentface_sdk._paths as p;"
        "print(json.dumps([latentface_sdk.__file__, str(p.bundled_weights_dir()), p.list_bundled()]))"
    )
    env_site = str(tmp_path / "site")
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": env_site},
    )
    assert run.returncode == 0, run.stderr
    module_file, weights_dir, bundled = json.loads(run.stdout.strip().splitlines()[-1])
    assert module_file.startswith(env_site)
    assert weights_dir == str(tmp_path / "site" / "latentface_sdk" / "weights")
    assert bundled == ["tiny-test"]


# --- _paths on temporary trees ---------------------------------------------------------------------------


def _model(folder: Path, with_config: bool = True) -> None:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    if with_config:
        (folder / "config.json").write_text("{}")


def test_paths_installed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In site-packages the weights sit inside the package; a stray top-level weights/ is ignored."""
    site = tmp_path / "site-packages"
    pkg = site / "latentface_sdk"
    _model(pkg / "weights" / "b-model")
    _model(pkg / "weights" / "a-model")
    _model(pkg / "weights" / "no-config", with_config=False)
    (pkg / "weights" / "README.md").write_text("layout\n")
    _model(site / "weights" / "stray")
    monkeypatch.setattr(_paths, "PACKAGE_DIR", pkg)

    assert _paths.bundled_weights_dir() == pkg / "weights"
    assert _paths.list_bundled() == ["a-model", "b-model"]


def test_paths_source_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a checkout (pyproject.toml beside the package) the top-level weights/ folder is used."""
    repo = tmp_path / "repo"
    (repo / "latentface_sdk").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\n")
    _model(repo / "weights" / "latentface-cpu-small")
    monkeypatch.setattr(_paths, "PACKAGE_DIR", repo / "latentface_sdk")

    assert _paths.bundled_weights_dir() == repo / "weights"
    assert _paths.list_bundled() == ["latentface-cpu-small"]


def test_paths_without_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing bundled, the installed location comes back (absent) and the list is empty."""
    site = tmp_path / "site-packages"
    (site / "latentface_sdk").mkdir(parents=True)
    _model(site / "weights" / "stray")  # not a checkout: no pyproject.toml, so not ours
    monkeypatch.setattr(_paths, "PACKAGE_DIR", site / "latentface_sdk")

    assert _paths.bundled_weights_dir() == site / "latentface_sdk" / "weights"
    assert not _paths.bundled_weights_dir().exists()
    assert _paths.list_bundled() == []


def test_paths_in_this_checkout() -> None:
    """Run from this repository, the bundled folder is the top-level weights/ (the editable install)."""
    if (Path(_paths.__file__).resolve().parent / "weights").is_dir():
        pytest.skip("running from an installed wheel, not the checkout")
    assert _paths.bundled_weights_dir() == REPO_ROOT / "weights"
    expected = sorted(p.parent.name for p in (REPO_ROOT / "weights").glob("*/config.json"))
    assert _paths.list_bundled() == expected


# --- console scripts -------------------------------------------------------------------------------------


def test_console_scripts_declared_and_installed(pyproject: dict[str, Any]) -> None:
    """pyproject declares the CLIs and the installed metadata carries exactly those entry points."""
    declared = pyproject["project"]["scripts"]
    assert declared == {
        "latentface": "latentface_sdk.cli:main",
        "latentface-train": "latentface_sdk.train.__main__:main",
    }
    dist = importlib.metadata.distribution(DIST_NAME)
    installed = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert installed == declared


@pytest.mark.parametrize("name", ["latentface", "latentface-train"])
def test_console_script_targets_resolve(name: str) -> None:
    """Each console script's target is a callable ``main`` once its module exists."""
    dist = importlib.metadata.distribution(DIST_NAME)
    (ep,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == name]
    if importlib.util.find_spec(ep.module) is None:
        pytest.skip(f"{ep.module} is not written yet")
    assert callable(ep.load())


# --- README <-> .ci/run ----------------------------------------------------------------------------------


def _readme_block(marker: str) -> list[str]:
    """The lines of the fenced code block that follows ``<!-- ci:<marker> -->`` in README.md."""
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- ci:{marker}"))
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return lines[fence + 1 : end]


def test_readme_has_exactly_two_setup_commands() -> None:
    """One line installs everything and runs the main job; one line runs the tests."""
    (setup,) = _readme_block("setup")
    (tests,) = _readme_block("test")
    steps = setup.split(" && ")
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1] == '.venv/bin/pip install -e ".[dev]"'
    assert steps[2].startswith(".venv/bin/latentface encode ")
    assert tests.startswith(".venv/bin/python -m pytest")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_runs_the_readme_commands() -> None:
    """`.ci/run --print` shows the commands it would run: the README's, verbatim."""
    ci = REPO_ROOT / ".ci" / "run"
    done = subprocess.run(["bash", str(ci), "--print"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    printed = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    (setup,) = _readme_block("setup")
    (tests,) = _readme_block("test")
    venv, install, encode = setup.split(" && ")
    assert printed == {"venv": venv, "install": install, "encode": encode, "test": tests}


def test_recipes_load_typed_with_clear_errors(tmp_path: Path) -> None:
    """Training recipes are the config dataclasses nested in the stage configs, read by one loader."""
    from latentface_sdk.config import AutoencoderConfig, ConfigError, CropConfig, RDMConfig, load_json
    from latentface_sdk.train.stage1 import Stage1Config
    from latentface_sdk.train.stage2 import Stage2Config

    configs = Path(__file__).resolve().parents[1] / "latentface_sdk" / "train" / "configs"
    s1 = Stage1Config.load(configs / "stage1_default.json")
    assert (isinstance(s1.model, AutoencoderConfig) and s1.model.depth_prior == 0.3
            and s1.model.latent_dim == 256)
    assert isinstance(s1.crop, CropConfig) and s1.crop.margin == 0.1
    ft = Stage1Config.load(configs / "stage1_finetune.json")
    assert ft.model == s1.model and ft.augment_roll_deg == 25.0 and ft.init_from == "runs/stage1/model"
    s2 = Stage2Config.load(configs / "stage2_default.json")
    assert isinstance(s2.rdm, RDMConfig) and s2.data[0].kind == "celeba"
    bad = tmp_path / "bad.json"
    for text, message in [
        ('{"model": {"widht": 3}}', r"bad.json.model: unknown field\(s\) \['widht'\]"),
        ('{"model": {"width": "wide"}}', r"bad.json.model.width: expected a number"),
        ('{"lr": true}', r"bad.json.lr: expected a number"),
        ('{"steps": 2.5}', r"bad.json.steps: expected an integer"),
        ('{"max_images": null, "init_from": 3}', r"bad.json.init_from: expected a string"),
        ("[1, 2]", r"bad.json: expected an object"),
        ("{not json", r"bad.json: not valid JSON"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_json(Stage1Config, bad)
    bad.write_text('{"data": [{"kind": "celeba"}]}')
    with pytest.raises(ConfigError, match=r"data\[0\]: missing field\(s\) \['path'\]"):
        Stage2Config.load(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        Stage2Config.load(tmp_path / "nope.json")
