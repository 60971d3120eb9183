"""The bundled weights' answers on real photographs (``../shared/data/photos``): the identity embedding
ranks people correctly, verify() decides, expressions() reads a smile. The model never trained on these
photos; who is who is written down in benchmarks/answers_check.py (``PHOTO_PEOPLE``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from latentface_sdk import FaceEncoder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundled() -> FaceEncoder:
    return FaceEncoder.from_pretrained(device="cpu")


def _people() -> tuple[dict[str, list[str]], Any]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from answers_check import PHOTO_PEOPLE, labelled_faces
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return PHOTO_PEOPLE, labelled_faces


@pytest.mark.slow
def test_the_embedding_tells_people_apart_where_raw_latents_cannot(bundled: FaceEncoder,
                                                                  shared_data: Path) -> None:
    """The issue's complaint and what the head changes: the raw verification features give every pair of
    these faces cosine ~1; the embedding spreads them, and most faces' nearest other face is the same
    person. (Not every pair: benchmarks/answers_check.py measures how far one person's photos are from
    two people's, and docs/results.md reports that the goal of separating all of them is not met.)"""
    people, labelled = _people()
    names = sorted(people)
    paths = [str(shared_data / "photos" / n) for n in names]
    r = bundled.identity_embedding(paths, faces="all")
    who: list[str] = []
    rows: list[int] = []
    for k, name in enumerate(names):
        mine = labelled(r.encoding, k, len(people[name]))
        assert len(mine) == len(people[name]), name
        rows += mine
        who += people[name]
    emb = r.embeddings[rows]
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(rows)), atol=1e-5)
    sim = emb @ emb.T
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    same = torch.tensor([float(sim[i, j]) for i, j in pairs if who[i] == who[j]])
    diff = torch.tensor([float(sim[i, j]) for i, j in pairs if who[i] != who[j]])
    raw = torch.nn.functional.normalize(bundled.disentangle(paths, faces="all").verification_features[rows])
    assert float((raw @ raw.T).min()) > 0.999  # the raw features: every pair looks alike
    assert float(diff.mean()) < 0.3 and float(same.mean()) > float(diff.mean()) + 0.1
    # nearest other face: the same person for most faces that have another photo here (8 of 10 measured)
    hits = 0
    for i in range(len(rows)):
        if who.count(who[i]) > 1:
            others = sim[i].clone()
            others[i] = -2.0
            hits += who[int(others.argmax())] == who[i]
    assert hits >= 7, hits
    # the latents-in path gives the same vectors
    lat = bundled.identity_from_latents(r.encoding)[rows]
    torch.testing.assert_close(lat, emb, atol=1e-5, rtol=0)  # unit vectors: absolute is relative


@pytest.mark.slow
def test_verify_says_same_and_different(bundled: FaceEncoder, shared_data: Path) -> None:
    photos = shared_data / "photos"
    v = bundled.verify([photos / "obama-1080p.jpg", photos / "alex-lacamoire.png"],
                       [photos / "obama_small.jpg", photos / "biden.jpg"])
    assert v.ok.tolist() == [True, True]
    assert v.same_person.tolist() == [True, False], v.similarity


@pytest.mark.slow
def test_expressions_read_a_broad_smile(bundled: FaceEncoder, shared_data: Path) -> None:
    e = bundled.expressions(shared_data / "photos" / "obama_small.jpg")
    assert e.classes == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert e.labels == ["happy"], e.top(3)
    assert float(e.probabilities.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_the_cli_verifies_and_writes_answer_columns(shared_data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import numpy as np

    from latentface_sdk.cli import main

    photos = shared_data / "photos"
    assert main(["verify", str(photos / "obama-1080p.jpg"), str(photos / "obama_small.jpg"), "--json",
                 "--device", "cpu"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["ok"] and answer["same_person"] and answer["similarity"] > answer["threshold"]
    out = tmp_path / "faces.npz"
    assert main(["encode", str(photos / "obama_small.jpg"), str(photos / "biden.jpg"), "--answers", "-o",
                 str(out), "--device", "cpu", "--no-progress"]) == 0
    with np.load(out) as z:
        assert z["identity_embedding"].shape == (2, 192) and z["expression_probabilities"].shape == (2, 7)
        assert z["expression"].tolist()[0] == "happy"  # the broad smile
        assert list(z["expression_classes"])[3] == "happy" and float(z["identity_threshold"]) > 0
        assert np.allclose(np.linalg.norm(z["identity_embedding"][:2], axis=1), 1, atol=1e-5)
    assert main(["verify", str(photos / "obama2.jpg"), str(tmp_path / "nope.jpg")]) == 2
