"""Hashing goes through latentface_sdk.digests only, and the keys that are stored on disk (cache keys,
resume keys, the seeds of the sampled noise) are the SHA-256 values they were before it did."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

import latentface_sdk
from latentface_sdk import cropset, operations, runfiles
from latentface_sdk.config import CropConfig, RDMConfig
from latentface_sdk.digests import bytes_digest, json_digest, seed_digest, text_digest
from latentface_sdk.train import rdm_trainer
from latentface_sdk.train.recipes import DataSource, Stage2Config

PACKAGE = Path(latentface_sdk.__file__).parent


def _imports_hashlib(tree: ast.AST) -> list[int]:
    """Lines of ``import hashlib``, ``from hashlib import ...`` and ``import_module("hashlib")`` calls."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "hashlib" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hashlib":
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == "hashlib"
                                                for a in node.args):
            lines.append(node.lineno)
    return lines


def test_no_module_but_digests_imports_hashlib() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _imports_hashlib(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if lines:
            found[path.relative_to(PACKAGE).as_posix()] = lines
    assert set(found) == {"digests.py"}, f"hash through latentface_sdk.digests instead: {found}"


def test_the_small_digests_are_sha256_of_what_they_name() -> None:
    assert bytes_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert text_digest("é|1") == hashlib.sha256("é|1".encode()).hexdigest()
    value = {"b": [1, 2.5, None], "a": "x"}
    assert json_digest(value) == hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    mixed = hashlib.sha256(b"seed").digest()
    assert seed_digest(b"seed") == int.from_bytes(mixed[:8], "little") & (2**63 - 1)
    assert 0 <= seed_digest(b"") < 2**63


def test_stored_keys_are_those_of_before(tmp_path: Path) -> None:
    """Crop caches, resumable runs and stage-2 checkpoints keep their keys (the formulas of before)."""
    names = [str(tmp_path / "a.jpg"), str(tmp_path / "missing.png")]
    Path(names[0]).write_bytes(b"x")
    st = Path(names[0]).stat()
    crop = CropConfig()
    payload = {"format": cropset._CACHE_FORMAT, "paths": names, "stats": [[st.st_size, st.st_mtime_ns], None],
               "crop": dataclasses.asdict(crop), "detect": True, "fallback": "center"}
    old = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()
    assert cropset._cache_key(names, crop, True, "center") == old

    options = {"detect": True, "faces": "all"}
    payload = {"format": runfiles.PARTS_FORMAT, "command": "encode", "options": options, "model": "m@1",
               "inputs": [[names[0], st.st_size, st.st_mtime_ns], [names[1], None, None]], "chunk": 64}
    old = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert runfiles.run_key("encode", options, "m@1", names, 64) == old

    cfg = Stage2Config(data=[DataSource("celeba", "../shared/data")], rdm=RDMConfig(sample_init="zero"))
    d = cfg.to_dict()
    for k in ("steps", "checkpoint_every", "log_every", "encode_batch_size"):
        d.pop(k)
    assert cfg.recipe_hash() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def test_seeded_noise_is_that_of_before() -> None:
    """The seeds of stage 2's batches and of each crop's identity noise (pinned values, so that trained
    runs resume and sampled identities are reproduced)."""
    mixed = hashlib.sha256(b"stage2|1|2|0").digest()
    want = torch.Generator().manual_seed(int.from_bytes(mixed[:8], "little") & (2**63 - 1))
    got = rdm_trainer._step_generator(1, 2, 0)
    assert torch.equal(torch.rand(3, generator=got), torch.rand(3, generator=want))
    assert operations._seed_from("rdm", 3, "texture", b"\x01\x02") == 6527711970347013080
    crops = (np.arange(2 * 4 * 4 * 3) % 251).astype(np.uint8).reshape(2, 4, 4, 3)
    noise = operations.identity_noise(crops, "shape", seed=7, num_samples=2, dim=3)
    pinned = [[-1.0034542083740234, -1.519589900970459, -0.32323646545410156],
              [0.6063809394836426, 0.20671384036540985, 1.5880098342895508]]
    torch.testing.assert_close(noise[:2], torch.tensor(pinned))
