"""latentface_sdk.train.data and train.groups: the expression-rich shared sources and what they hold out."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from latentface_sdk.errors import DataError
from latentface_sdk.train.data import TAIWAN_HOLDOUT, shared_source
from latentface_sdk.train.groups import labelled_groups
from latentface_sdk.train.recipes import Stage1Config, Stage2Config
from latentface_sdk.train.stage2 import load_groups

REPO = Path(__file__).resolve().parents[1]


def test_fer_training_images_come_without_public_test(shared_data: Path) -> None:
    paths = shared_source(shared_data, "fer2013-train")
    assert len(paths) == 28709
    assert all("/Training/" in p for p in paths) and not any("PublicTest" in p for p in paths)


def test_taiwan_performers_are_split_into_train_and_held_out(shared_data: Path) -> None:
    train = shared_source(shared_data, "taiwan-tcce-train")
    held = shared_source(shared_data, "taiwan-tcce-heldout")
    with open(shared_data / "taiwan_tcce" / "labels.csv", newline="") as fh:
        who = {str(shared_data / "taiwan_tcce" / "images" / r["image"]): r["identity"]
               for r in csv.DictReader(fh)}
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(who)
    assert {who[p] for p in held} == set(TAIWAN_HOLDOUT)
    assert not {who[p] for p in train} & set(TAIWAN_HOLDOUT)


def test_expression_recipes_never_train_on_held_out_rows(shared_data: Path) -> None:
    s1 = Stage1Config.load(REPO / "latentface_sdk/train/configs/stage1_expression.json")
    assert "shared:taiwan-tcce-heldout" not in s1.sources and "shared:utkface" not in s1.sources
    with open(shared_data / "celeba10k" / "identity.csv", newline="") as fh:
        verify = {r["image"] for r in csv.DictReader(fh) if r["split"] == "verify"}
    for src in s1.sources:
        names = {Path(p).name for p in shared_source(shared_data, src.split(":", 1)[1])}
        if src in ("shared:celeba-train", "shared:celeba-wild"):
            assert not names & verify, src
    s2 = Stage2Config.load(REPO / "latentface_sdk/train/configs/stage2_expression.json")
    groups = load_groups(s2.data, min_size=s2.min_group_size)
    held = set(shared_source(shared_data, "taiwan-tcce-heldout"))
    assert not held & set(groups.paths) and not any(Path(p).name in verify for p in groups.paths
                                                   if "celeba10k" in p)
    assert any(str(g).startswith("taiwan_tcce:") for g in groups.groups)


def test_labelled_groups_read_identities_and_refuse_a_folder_without_labels(tmp_path: Path) -> None:
    (tmp_path / "set" / "images").mkdir(parents=True)
    for name in ("a1.jpg", "a2.jpg", "b1.jpg", "c1.jpg", "c2.jpg"):
        (tmp_path / "set" / "images" / name).write_bytes(b"x")
    (tmp_path / "set" / "labels.csv").write_text(
        "image,identity,expression\na1.jpg,A,happy\na2.jpg,A,sad\nb1.jpg,B,\nc1.jpg,C,\nc2.jpg,C,\n")
    g = labelled_groups(tmp_path / "set", holdout=["C"])
    assert g.groups == ["set:A", "set:A"]  # B has one image (below min_size), C is held out
    with pytest.raises(DataError, match="labels.csv"):
        labelled_groups(tmp_path / "nothing")
