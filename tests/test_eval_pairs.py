"""Pairs files: LFW's numeric format, the file-name variant, malformed lines, missing images, folds."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from latentface_sdk.errors import DataError
from latentface_sdk.eval.pairs import read_pairs


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _lfw_tree(root: Path) -> None:
    for name, count in {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1, "Dee_D": 2}.items():
        for i in range(1, count + 1):
            _touch(root / name / f"{name}_{i:04d}.jpg")


def test_lfw_numeric_format(tmp_path: Path) -> None:
    _lfw_tree(tmp_path / "lfw")
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(
        "2\t1\n"
        "Ann_A\t1\t3\n"  # fold 0, same
        "Ann_A\t2\tBob_B\t1\n"  # fold 0, different
        "Dee_D\t1\t2\n"  # fold 1, same
        "Cid_C 1 Bob_B 2\n"  # fold 1, different (spaces work too)
        "\n"
    )
    ps = read_pairs(pairs_file, tmp_path / "lfw")
    assert ps.n_folds == 2 and len(ps) == 4 and not ps.missing
    assert ps.labels.tolist() == [True, False, True, False]
    assert ps.folds.tolist() == [0, 0, 1, 1]
    first = ps.pairs[0]
    assert first.path_a == tmp_path / "lfw" / "Ann_A" / "Ann_A_0001.jpg"
    assert first.path_b == tmp_path / "lfw" / "Ann_A" / "Ann_A_0003.jpg"
    assert (ps.pairs[3].identity_a, ps.pairs[3].identity_b) == ("Cid_C", "Bob_B")
    assert ps.pairs[3].line == 5
    images = ps.images()
    assert len(images) == len(set(images)) == 8
    a, b = ps.indices()
    assert [images[i] for i in a] == [p.path_a for p in ps.pairs]
    assert [images[i] for i in b] == [p.path_b for p in ps.pairs]
    assert ps.fold_identities() == {0: {"Ann_A", "Bob_B"}, 1: {"Dee_D", "Cid_C", "Bob_B"}}
    quick = ps.select_folds([1])
    assert quick.folds.tolist() == [1, 1] and quick.n_folds == 2


def test_old_single_number_header_is_one_fold(tmp_path: Path) -> None:
    _lfw_tree(tmp_path)
    pairs_file = tmp_path / "pairsDevTrain.txt"
    pairs_file.write_text("2\nAnn_A 1 2\nBob_B 1 2\nAnn_A 1 Cid_C 1\nDee_D 2 Bob_B 1\n")
    ps = read_pairs(pairs_file)  # root defaults to the pairs file's folder
    assert ps.n_folds == 1
    assert ps.labels.tolist() == [True, True, False, False]
    assert set(ps.folds.tolist()) == {0}


def test_file_name_variant(tmp_path: Path) -> None:
    for name in ("a1.jpg", "a2.jpg", "b1.jpg", "c1.jpg"):
        _touch(tmp_path / "images" / name)
    pairs_file = tmp_path / "pairs_verify.txt"
    pairs_file.write_text("1\t1\n7\ta1.jpg\ta2.jpg\n7\ta1.jpg\t9\tb1.jpg\n")
    ps = read_pairs(pairs_file)  # <root>/images is found by itself
    assert [p.path_a.name for p in ps.pairs] == ["a1.jpg", "a1.jpg"]
    assert ps.pairs[0].path_b == tmp_path / "images" / "a2.jpg"
    assert ps.labels.tolist() == [True, False]
    assert (ps.pairs[1].identity_a, ps.pairs[1].identity_b) == ("7", "9")
    # an explicit image folder wins over <root>/images
    other = tmp_path / "elsewhere"
    for name in ("a1.jpg", "a2.jpg", "b1.jpg"):
        _touch(other / name)
    ps2 = read_pairs(pairs_file, image_dir=other)
    assert ps2.pairs[1].path_b == other / "b1.jpg"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("1\t1\nAnn_A\t1\nAnn_A 1 Bob_B 1\n", ":2:"),  # two fields
        ("1\t1\nAnn_A 1 2\nAnn_A 1 Bob_B 1 extra\n", ":3:"),  # five fields
        ("1\t1\nAnn_A 0 2\nAnn_A 1 Bob_B 1\n", ":2:"),  # LFW numbers start at 1
        ("1\t1\nAnn_A 1 x.jpg\nAnn_A 1 Bob_B 1\n", ":2:"),  # number mixed with a file name
        ("folds pairs\nAnn_A 1 2\n", ":1:"),  # bad header
    ],
)
def test_malformed_lines_name_the_line(tmp_path: Path, text: str, where: str) -> None:
    _lfw_tree(tmp_path)
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(text)
    with pytest.raises(DataError, match=where):
        read_pairs(pairs_file)


def test_line_count_must_match_the_header(tmp_path: Path) -> None:
    _lfw_tree(tmp_path)
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("2\t1\nAnn_A 1 2\nAnn_A 1 Bob_B 1\n")
    with pytest.raises(DataError, match="4 lines"):
        read_pairs(pairs_file)


def test_forced_lfw_format_refuses_file_names(tmp_path: Path) -> None:
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("1\t1\n7 a.jpg b.jpg\n7 a.jpg 8 c.jpg\n")
    with pytest.raises(DataError, match=":2: expected image numbers"):
        read_pairs(pairs_file, line_format="lfw", check_files=False)


def test_missing_images_are_counted_reported_and_skipped(tmp_path: Path) -> None:
    _lfw_tree(tmp_path)
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(
        "1\t3\n"
        "Ann_A 1 2\n"
        "Ann_A 1 9\n"  # Ann_A_0009.jpg does not exist
        "Bob_B 1 2\n"
        "Ann_A 1 Bob_B 1\n"
        "Zed_Z 1 Bob_B 7\n"  # neither image exists
        "Cid_C 1 Dee_D 1\n"
    )
    with pytest.warns(UserWarning, match=r"skipped 2 pair\(s\) naming 3 missing image\(s\)"):
        ps = read_pairs(pairs_file)
    assert len(ps) == 4
    assert [m.line for m in ps.missing] == [3, 6, 6]
    assert ps.missing[0].path == tmp_path / "Ann_A" / "Ann_A_0009.jpg"
    assert all(p.line not in (3, 6) for p in ps.pairs)
    # without the check the pairs are all kept
    assert len(read_pairs(pairs_file, check_files=False)) == 6


def test_missing_pairs_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such pairs file"):
        read_pairs(tmp_path / "nope.txt")


def test_celeba_verify_folds_are_identity_disjoint(shared_data: Path) -> None:
    celeba = shared_data / "celeba10k"
    ps = read_pairs(celeba / "pairs_verify.txt")
    assert ps.n_folds == 10 and len(ps) == 2200 and not ps.missing
    ids = ps.fold_identities()
    assert sorted(ids) == list(range(10))
    for i in range(10):
        for j in range(i + 1, 10):
            assert not ids[i] & ids[j], f"folds {i} and {j} share identities {sorted(ids[i] & ids[j])[:5]}"
    for fold in range(10):
        sel = ps.folds == fold
        assert ps.labels[sel].sum() == 110 and (~ps.labels[sel]).sum() == 110
    # every image is a 'verify' row of identity.csv, with the identity the pairs file names
    with (celeba / "identity.csv").open(newline="") as fh:
        rows = {r["image"]: (r["identity"], r["split"]) for r in csv.DictReader(fh)}
    for p in ps.pairs:
        assert rows[p.path_a.name] == (p.identity_a, "verify")
        assert rows[p.path_b.name] == (p.identity_b, "verify")
        assert p.same == (p.identity_a == p.identity_b)
