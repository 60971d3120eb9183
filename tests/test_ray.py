"""Feature extraction on Ray Data: rows equal to the one-machine command's, bad files kept as rows."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _close import assert_close_to_scale
from _tiny import tiny_config
from PIL import Image

from latentface_sdk import FaceEncoder, cli

ray = pytest.importorskip("ray", reason="needs the [ray] extra (pip install 'latentface-sdk[ray]')")
pq = pytest.importorskip("pyarrow.parquet")

from latentface_sdk.integrations.ray import FaceEncodeBatches, encode_batch, model_id_of  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    return FaceEncoder.from_config(tiny_config("tiny-ray")).save_pretrained(
        tmp_path_factory.mktemp("ray-model"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Two photos with faces (one with two), a faceless image, a truncated JPEG and a text file named .png."""
    root = tmp_path_factory.mktemp("ray-images")
    shutil.copy(shared_data / "photos" / "obama_small.jpg", root / "a_obama.jpg")
    shutil.copy(shared_data / "photos" / "two_people.jpg", root / "b_two.jpg")
    Image.new("RGB", (120, 90), (128, 128, 128)).save(root / "c_grey.png")
    (root / "d_broken.jpg").write_bytes((shared_data / "photos" / "biden.jpg").read_bytes()[:300])
    (root / "e_text.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # two model copies of one CPU each, and one CPU for the read and write tasks (encode_files does the same)
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _sorted_rows(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.lexsort((np.nan_to_num(arrays["boxes"][:, 0], nan=-1.0),
                        np.asarray(arrays["names"], dtype=str)))
    return {k: np.asarray(v)[order] for k, v in arrays.items()}


def _table_arrays(table: object) -> dict[str, np.ndarray]:
    out = {}
    for name in table.column_names:  # type: ignore[attr-defined]
        values = table.column(name).to_pylist()  # type: ignore[attr-defined]
        out[name] = np.asarray(values, dtype=np.float32 if isinstance(values[0], (list, float)) else None)
    return out


def _npz_rows(path: Path) -> dict[str, np.ndarray]:
    """The rows of a ``latentface encode`` .npz, its per-file arrays spread over the rows as Ray has them."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    n = len(arrays["names"])
    arrays["inputs"] = arrays["inputs"][arrays["source"]]
    arrays["model"] = np.asarray([str(arrays["model"])] * n)
    del arrays["run_key"]  # what a resumed run checks: a Ray run is not resumed
    return arrays


def test_encode_batch_names_rows_by_path_and_keeps_bad_inputs(model_dir: Path, folder: Path) -> None:
    enc = FaceEncoder.from_pretrained(model_dir)
    paths = sorted(str(p) for p in folder.iterdir())
    data = [Path(p).read_bytes() for p in paths]
    table = encode_batch(enc, data, paths, faces="all")
    rows = _table_arrays(table)
    direct = enc.encode(paths, faces="all").numpy()
    assert list(rows["names"]) == list(direct["names"])  # file bytes named by path == the files themselves
    assert list(rows["errors"]) == list(direct["errors"])
    np.testing.assert_array_equal(rows["ok"], direct["ok"])
    # float32 rounding at each array's magnitude (boxes are pixels, up to ~950 here): tests/_close.py
    assert_close_to_scale(rows["texture"], direct["texture"], msg="texture")
    assert_close_to_scale(rows["boxes"], direct["boxes"], msg="boxes")
    bad = dict(zip(rows["names"], rows["errors"], strict=True))
    assert "no face found" in bad[str(folder / "c_grey.png")]
    assert bad[str(folder / "d_broken.jpg")].startswith(str(folder / "d_broken.jpg") + ": ")
    assert "not an image file" in bad[str(folder / "e_text.png")]
    assert rows["ok"].sum() == 3  # obama + the two people
    assert table.schema.field("texture").type.list_size == 256
    # no input list: no source; the model id is the one the CLI records
    assert set(rows["source"]) == {-1} and list(rows["inputs"]) == list(rows["names"])
    assert set(rows["model"]) == {model_id_of(enc.config)} and "@" in rows["model"][0]
    sourced = _table_arrays(encode_batch(enc, data, paths, faces="all", sources=[10, 11, 12, 13, 14],
                                         model_id="m@1"))
    np.testing.assert_array_equal(sourced["source"], direct["source"] + 10)
    assert set(sourced["model"]) == {"m@1"}


def test_the_callable_class_takes_ray_batches(model_dir: Path, folder: Path) -> None:
    batches = FaceEncodeBatches(str(model_dir), operation="disentangle")
    path = str(folder / "a_obama.jpg")
    table = batches({"bytes": np.asarray([Path(path).read_bytes()], dtype=object),
                     "path": np.asarray([path])})
    assert table.num_rows == 1 and table.column("ok").to_pylist() == [True]
    assert "identity_texture" in table.column_names
    with pytest.raises(KeyError, match="include_paths"):
        batches({"bytes": np.asarray([b""], dtype=object)})
    with pytest.raises(KeyError, match="'bytes' column"):
        batches({"path": np.asarray([path]), "pixels": np.zeros((1, 4, 4, 3))})


def test_the_callable_class_names_rows_by_the_input_list(model_dir: Path, folder: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file Ray read gets the index and the name of its entries in the input list; a file listed
    twice (by two names) gives the rows of each entry, a file not listed keeps the path Ray read."""
    monkeypatch.chdir(folder.parent)
    inputs = [f"{folder.name}/b_two.jpg", f"{folder.name}/a_obama.jpg", str(folder / "a_obama.jpg")]
    batches = FaceEncodeBatches(str(model_dir), faces="all", inputs=inputs)
    read = [str(folder / n) for n in ("a_obama.jpg", "e_text.png", "b_two.jpg")]
    rows = _table_arrays(batches({"bytes": np.asarray([Path(p).read_bytes() for p in read], dtype=object),
                                  "path": np.asarray(read)}))
    assert list(rows["source"]) == [1, 2, -1, 0, 0]
    assert list(rows["names"]) == [inputs[1], inputs[2], read[1], inputs[0], inputs[0]]
    assert list(rows["inputs"]) == list(rows["names"])
    assert rows["errors"][2].startswith(read[1] + ": ")
    assert set(rows["model"]) == {model_id_of(batches.encoder.config, model_dir)}


@pytest.mark.slow
def test_cli_on_ray_writes_the_rows_of_the_local_cli(model_dir: Path, folder: Path, tmp_path: Path,
                                                     local_ray: None, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Same columns, same rows, same names: a relative input folder is named relatively in both."""
    monkeypatch.chdir(folder.parent)
    local = tmp_path / "local.npz"
    assert cli.main(["encode", folder.name, "-o", str(local), "--model", str(model_dir), "--faces", "all",
                     "--no-progress"]) == 1
    out = tmp_path / "parquet"
    code = cli.main(["encode", folder.name, "-o", str(out), "--model", str(model_dir), "--faces", "all",
                     "--engine", "ray", "--workers", "2", "--batch-size", "2", "--no-progress"])
    assert code == 1  # the bad inputs are reported, as by the local command
    err = capsys.readouterr().err
    assert "d_broken.jpg" in err and "e_text.png" in err and "c_grey.png" in err
    want = _npz_rows(local)
    assert not Path(want["names"][0]).is_absolute()
    got = _table_arrays(pq.read_table(out))
    assert set(got) == set(want)
    want, got = _sorted_rows(want), _sorted_rows(got)
    for key in ("names", "inputs", "errors", "model"):
        assert list(got[key]) == list(want[key]), key
    np.testing.assert_array_equal(got["source"], want["source"])
    np.testing.assert_array_equal(got["ok"], want["ok"])
    for key in ("texture", "shape", "pose", "light", "boxes", "scores"):  # other processes, other threads
        assert_close_to_scale(got[key], want[key], msg=key)


def test_cli_on_ray_refuses_a_non_empty_folder(model_dir: Path, folder: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.parquet").write_text("x")
    assert cli.main(["encode", str(folder), "-o", str(tmp_path), "--model", str(model_dir), "--engine", "ray",
                     "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
