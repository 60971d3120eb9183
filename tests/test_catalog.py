"""latentface_sdk.catalog: which models can be loaded here (bundled, and in the local Hugging Face cache),
described by their config.json and the first sentence of their model card; local files only.

The bundled models are a temporary checkout layout (``_paths.PACKAGE_DIR`` pointed at it); the Hub cache is
hand-built in the layout huggingface_hub writes. ``latentface models`` itself is tested in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from _hub_cache import COMMIT, fake_cache
from _tiny import tiny_config

from latentface_sdk import FaceEncoder, hub, list_pretrained  # the public name
from latentface_sdk.catalog import card_summary

pytestmark = pytest.mark.usefixtures("hub_env")  # no Hub settings from the environment


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(2)
        enc = FaceEncoder.from_config(tiny_config("tiny-catalog", latent_dim=32))
    return enc.save_pretrained(tmp_path_factory.mktemp("catalog-model"))


def test_list_pretrained_reads_bundled_and_cached_models(
    bundled: Path, model_dir: Path, tmp_path: Path
) -> None:
    (bundled / "other-model" / "README.md").write_text(
        "---\nlicense: mit\n---\n\n# other-model\n\n| a | b |\n\nA tiny test model. It encodes noise.\n")
    cache = tmp_path / "hf-cache"
    fake_cache(cache, "someone/latentface-test", model_dir)
    (cache / "models--someone--broken" / "snapshots" / COMMIT).mkdir(parents=True)  # no files: not listed
    models = list_pretrained(cache_dir=cache)
    assert [(m.name, m.source) for m in models] == [(hub.DEFAULT_MODEL, "bundled"),
                                                    ("other-model", "bundled"),
                                                    ("someone/latentface-test", "hub-cache")]
    assert models[1].summary == "A tiny test model." and models[0].summary == ""
    assert models[2].checksum == FaceEncoder.from_pretrained(model_dir).config.checksum
    assert card_summary(tmp_path / "missing.md") == ""
    assert list_pretrained(cache_dir=tmp_path / "no-cache")[-1].name == "other-model"


def test_the_newest_complete_snapshot_describes_a_cached_model(
    bundled: Path, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    old = fake_cache(cache, "someone/model", model_dir)
    new = old.parent / ("f" * 40)
    shutil.copytree(old, new)
    (new / "README.md").write_text("The newer card.\n")
    os.utime(old / "config.json", (1_000_000, 1_000_000))  # older than the copy
    half = old.parent / ("a" * 40)
    half.mkdir()
    (half / "config.json").write_text((old / "config.json").read_text())  # newest, but without weights
    cached = [m for m in list_pretrained(cache_dir=cache) if m.source == "hub-cache"]
    assert len(cached) == 1 and cached[0].path == new and cached[0].summary == "The newer card."
    (cache / "not-a-model").mkdir()  # other folders of the cache are not models
    (cache / "models--someone--empty").mkdir()  # no snapshots folder
    assert [m.name for m in list_pretrained(cache_dir=cache) if m.source == "hub-cache"] == ["someone/model"]


def test_the_default_cache_follows_the_environment(bundled: Path, model_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cache(tmp_path / "env-cache", "someone/env-model", model_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "env-cache"))
    assert list_pretrained()[-1].name == "someone/env-model"


def test_an_unreadable_config_gives_no_checksum(bundled: Path) -> None:
    (bundled / "other-model" / "config.json").write_text("{not json")
    (bundled / hub.DEFAULT_MODEL / "config.json").write_text(json.dumps({"checksum": 12}))
    models = {m.name: m for m in list_pretrained(cache_dir=bundled / "no-cache")}
    assert models["other-model"].checksum is None and models[hub.DEFAULT_MODEL].checksum is None


@pytest.mark.parametrize(("card", "summary"), [
    ("First sentence here. Second one.\n", "First sentence here."),
    ("---\nlicense: mit\ntags: [a]\n---\n# Title\n\n![logo](x.png)\n\nIt works! Really.\n", "It works!"),
    ("# Title\n\n- a list item\n* another\n> a quote\n<div>html</div>\n\nProse?\n", "Prose?"),
    ("# Only a heading\n", ""),
    ("A paragraph that goes on\nover two lines. Then more.\n\nNext paragraph.\n",
     "A paragraph that goes on over two lines."),
    ("No full stop at all\n", "No full stop at all"),
    ("Version 1.5 is out. Yes.\n", "Version 1.5 is out."),  # a dot inside a number ends nothing
    ("---\nunterminated front matter\n\nText.\n", ""),
])
def test_card_summary_is_the_first_sentence_of_prose(card: str, summary: str, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(card, encoding="utf-8")
    assert card_summary(readme) == summary


def test_card_summary_skips_a_code_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n```python\ncode\n```\n\nProse.\n", encoding="utf-8")
    assert card_summary(readme) == "Prose."


def test_card_summary_is_cut_to_the_limit(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("word " * 100 + ".\n")
    short = card_summary(readme, limit=40)
    assert len(short) == 40 and short.endswith("...") and short.startswith("word word")
    readme.write_bytes(b"Caf\xe9 latte is fine.\n")  # not UTF-8: replaced, not an error
    assert card_summary(readme) == "Caf\ufffd latte is fine."
    assert card_summary(tmp_path) == ""  # a folder, not a file
