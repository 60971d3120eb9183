"""hub.resolve: the bundled default, bundled names, local folders and Hub ids, offline only (no network here).

The Hub path is tested on a hand-built Hugging Face cache (``models--owner--name/snapshots/<commit>/`` with
``refs/main``) read with ``local_files_only=True`` or ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _hub_cache import COMMIT, fake_cache
from _tiny import tiny_config

from latentface_sdk import FaceEncoder, OfflineError, WeightsError, _paths, hub

pytestmark = pytest.mark.usefixtures("hub_env")  # no Hub settings from the environment


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(2)
    return FaceEncoder.from_config(tiny_config("tiny-hub", latent_dim=32)).save_pretrained(
        tmp_path_factory.mktemp("hub-model"))


def test_default_and_bundled_names(bundled: Path) -> None:
    assert hub.resolve() == bundled / hub.DEFAULT_MODEL
    assert hub.resolve("other-model") == bundled / "other-model"
    enc = FaceEncoder.from_pretrained(device="cpu")
    assert enc.config.name == "tiny-hub"


def test_unknown_names_list_the_bundled_ones(bundled: Path) -> None:
    with pytest.raises(WeightsError, match="'latentface-cpu-small', 'other-model'"):
        hub.resolve("nope")
    with pytest.raises(WeightsError, match="no such model"):
        hub.resolve("./not/a/folder")
    with pytest.raises(WeightsError, match="empty model name"):
        hub.resolve("  ")


def test_missing_default_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_paths, "PACKAGE_DIR", tmp_path / "site" / "latentface_sdk")
    with pytest.raises(WeightsError,
                       match="default model 'latentface-cpu-small' is not installed.*none are installed"):
        hub.resolve()


def test_local_folders(model_dir: Path, tmp_path: Path) -> None:
    assert hub.resolve(model_dir) == model_dir
    assert hub.resolve(str(model_dir)) == model_dir
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="lacks model.safetensors"):
        hub.resolve(half)
    (half / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(WeightsError,
                       match="pytorch_model.bin but no model.safetensors: pickled weights are refused"):
        hub.resolve(half)
    with pytest.raises(WeightsError, match="is a file"):
        hub.resolve(model_dir / "config.json")


def test_hub_id_from_the_cache_with_local_files_only(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    snap = fake_cache(cache, "someone/latentface-test", model_dir)
    assert hub.resolve("someone/latentface-test", cache_dir=cache, local_files_only=True) == snap
    # A pinned commit resolves without refs; an unknown tag is not cached.
    assert hub.resolve("someone/latentface-test", revision=COMMIT, cache_dir=cache,
                       local_files_only=True) == snap
    with pytest.raises(OfflineError, match="revision 'v9'"):
        hub.resolve("someone/latentface-test", revision="v9", cache_dir=cache, local_files_only=True)
    enc = FaceEncoder.from_pretrained("someone/latentface-test", cache_dir=cache, local_files_only=True,
                                      device="cpu")
    ref = FaceEncoder.from_pretrained(model_dir, device="cpu")
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert torch.equal(enc.encode(x, detect=False).texture, ref.encode(x, detect=False).texture)


def test_hf_hub_offline_and_cache_env(model_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "env-cache"
    snap = fake_cache(cache, "owner/model", model_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.is_offline() and hub.hub_cache_dir() == cache
    assert hub.resolve("owner/model") == snap  # local_files_only=None follows HF_HUB_OFFLINE
    with pytest.raises(OfflineError) as err:
        hub.resolve("owner/not-cached")
    text = str(err.value)
    assert "offline mode" in text and str(cache) in text and "owner/not-cached" in text
    # Even local_files_only=False does not go online while HF_HUB_OFFLINE is set.
    with pytest.raises(OfflineError, match="offline mode"):
        hub.resolve("owner/not-cached", local_files_only=False)


def test_missing_id_with_local_files_only(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    with pytest.raises(OfflineError, match=f"not in the Hub cache at {cache}"):
        FaceEncoder.from_pretrained("owner/missing", cache_dir=cache, local_files_only=True, device="cpu")


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.hub_cache_dir() == tmp_path / "home" / "hub"
    assert hub.hub_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"


def test_incomplete_snapshot_is_a_weights_error(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "partial"
    snap = fake_cache(cache, "owner/partial", model_dir)
    (snap / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="lacks model.safetensors"):
        hub.resolve("owner/partial", cache_dir=cache, local_files_only=True)


class _FileHub:
    """A stand-in for huggingface_hub.HfApi that keeps repositories as folders (no network).

    ``upload_folder`` stores the files that match ``allow_patterns`` as a new commit and lays them out
    the way ``snapshot_download`` leaves them in a Hub cache, so that ``from_pretrained`` can load
    what was pushed offline.
    """

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.created: list[tuple[str, bool | None]] = []
        self.uploads: list[dict[str, object]] = []

    def create_repo(self, repo_id: str, *, private: bool | None = None, repo_type: str | None = None,
                    exist_ok: bool = False) -> str:
        assert repo_type == "model" and exist_ok
        self.created.append((repo_id, private))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id: str, folder_path: str, allow_patterns: list[str],
                      **kwargs: object) -> str:
        import fnmatch

        files = sorted(p.name for p in Path(folder_path).iterdir()
                       if any(fnmatch.fnmatch(p.name, pat) for pat in allow_patterns))
        commit = f"{len(self.uploads) + 1:040d}"
        fake_cache(self.cache, repo_id, Path(folder_path), commit, files)
        self.uploads.append({"repo_id": repo_id, "files": files, **kwargs})
        return f"https://huggingface.co/{repo_id}/commit/{commit}"


def test_push_to_hub_then_load_it_offline(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub-cache"
    api = _FileHub(cache)
    enc = FaceEncoder.from_pretrained(model_dir, device="cpu")
    url = enc.push_to_hub("someone/pushed", private=True, storage_dtype=torch.float16, api=api)
    assert url.endswith("/commit/" + "1".rjust(40, "0"))
    assert api.created == [("someone/pushed", True)]
    assert api.uploads[0]["files"] == ["README.md", "config.json", "model.safetensors"]
    card = (cache / "models--someone--pushed" / "snapshots" / "1".rjust(40, "0") / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\nlibrary_name: latentface-sdk\n")
    assert 'FaceEncoder.from_pretrained("someone/pushed")' in card
    back = FaceEncoder.from_pretrained("someone/pushed", cache_dir=cache, local_files_only=True, device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a, b = enc.encode(img, detect=False), back.encode(img, detect=False)
    torch.testing.assert_close(a.texture, b.texture, atol=0.05, rtol=0.05)  # float16 storage: rounding only
    assert back.config.name == enc.config.name
    # a second push with the user's own card is a new commit that from_pretrained picks up
    enc.push_to_hub("someone/pushed", model_card="# mine\n", api=api, commit_message="v2")
    assert api.uploads[1]["commit_message"] == "v2"
    again = hub.resolve("someone/pushed", cache_dir=cache, local_files_only=True)
    assert (again / "README.md").read_text() == "# mine\n"


def test_push_refuses_bad_ids_offline_mode_and_non_model_folders(model_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    api = _FileHub(tmp_path / "c")
    with pytest.raises(WeightsError, match="owner/name"):
        hub.push_folder(model_dir, "not-an-id", api=api)
    with pytest.raises(WeightsError, match="lacks"):
        hub.push_folder(tmp_path, "a/b", api=api)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        hub.push_folder(model_dir, "a/b", api=api)
    assert api.created == [] and api.uploads == []


@pytest.mark.parametrize("name", ["a" * 5000, "x/" * 300, "bad\0name", "~no-such-user-here/model",
                                  "a" * 300 + "/b", "C:\\weights\\model", "../../nowhere", "näme with spaces",
                                  "a/b/c", "  "])
def test_odd_names_give_a_weights_error_not_an_oserror(name: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        hub.resolve(name, cache_dir=tmp_path, local_files_only=True)
    message = str(info.value)
    assert len(message) < 600  # a 5000-character name is shortened in the message
    with pytest.raises(WeightsError):
        FaceEncoder.from_pretrained(name, cache_dir=tmp_path, local_files_only=True)
