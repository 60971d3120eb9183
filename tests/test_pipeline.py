"""latentface_sdk.pipeline: inputs -> crops (crop_inputs), the batch runner (FacePipeline), rows back
(split_rows, CropBatch.scatter, assemble_encoding), and the single/batch rules every operation follows.

The focused tests drive the functions with fake detectors, encoders and work functions; the rest go
through ``FaceEncoder`` with the tiny model (``tests/_tiny_model.py``), as a user would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_model import synthetic_crops
from PIL import Image

from latentface_sdk import FaceEncoder, InvalidImageError, NoFaceError
from latentface_sdk.config import CropConfig
from latentface_sdk.detection import FaceBox, crop_aligned, crop_face
from latentface_sdk.models.autoencoder import Latents
from latentface_sdk.pipeline import (
    CropBatch,
    FacePipeline,
    Row,
    assemble_encoding,
    crop_inputs,
    split_rows,
    to_cpu,
)


def _rows_equal(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5, equal_nan=True)


# ------------------------------------------------------------------------------------------ crop_inputs

CROP = CropConfig()
BIG = FaceBox((10.0, 12.0, 70.0, 80.0), 0.99, np.arange(10, dtype=np.float32).reshape(5, 2))
SMALL = FaceBox((80.0, 20.0, 100.0, 44.0), 0.95)


def _photo(seed: int = 0, h: int = 120, w: int = 140) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class _Detections:
    """A stand-in for ``FaceDetector.detect_batch``: the given boxes per image (by call order), recorded."""

    def __init__(self, *per_image: list[FaceBox]) -> None:
        self.per_image = list(per_image)
        self.calls: list[int] = []

    def __call__(self, rgbs: list[np.ndarray]) -> list[list[FaceBox]]:
        self.calls.append(len(rgbs))
        assert all(r.dtype == np.uint8 and r.ndim == 3 for r in rgbs)
        return [self.per_image.pop(0) for _ in rgbs]


def _never(rgbs: list[np.ndarray]) -> list[list[FaceBox]]:
    raise AssertionError("the detector must not run")


def _crop_inputs(items: list[object], detect_batch: object, **kw: object) -> CropBatch:
    args: dict[str, object] = {"start": 0, "single": False, "detect": True, "faces": "largest", "crop": CROP,
                               "detect_batch": detect_batch, "max_pixels": 10**8}
    args.update(kw)
    return crop_inputs(items, **args)  # type: ignore[arg-type]


def test_crop_inputs_keeps_the_good_items_of_a_list_and_marks_the_bad_one() -> None:
    a, b = _photo(0), _photo(1)
    detect = _Detections([BIG], [SMALL])
    batch = _crop_inputs([a, np.zeros((4, 4), dtype=bool), b], detect, start=10)
    assert detect.calls == [2]  # only the readable images are detected, in one call
    assert [r.method for r in batch.rows] == ["mtcnn", "failed", "mtcnn"]
    assert [r.source for r in batch.rows] == [10, 11, 12] and batch.rows[1].name == "item 11"
    err = batch.rows[1].error
    assert err is not None and "item 11" in err and "bool" in err
    assert batch.rows[1].box is None and np.isnan(batch.rows[1].score)
    assert batch.rows[0].error is None and batch.rows[0].box == BIG.box and batch.rows[0].score == BIG.score
    assert batch.rows[0].landmarks is BIG.landmarks and batch.rows[2].landmarks is None
    assert batch.crop_rows == [0, 2] and batch.crops.shape == (2, 64, 64, 3) and batch.crops.dtype == np.uint8
    np.testing.assert_array_equal(batch.crops[0], crop_face(a, BIG.box, CROP))
    np.testing.assert_array_equal(batch.crops[1], crop_face(b, SMALL.box, CROP))
    assert batch.latents is None
    with pytest.raises(InvalidImageError, match="bool"):  # the same bad item alone raises
        _crop_inputs([np.zeros((4, 4), dtype=bool)], _never, single=True)


def test_crop_inputs_faces_all_gives_a_row_per_face_largest_first() -> None:
    a, b = _photo(0), _photo(1)
    batch = _crop_inputs([a, b], _Detections([SMALL, BIG], []), faces="all")
    assert [(r.source, r.method) for r in batch.rows] == [(0, "mtcnn"), (0, "mtcnn"), (1, "noface")]
    assert [r.box for r in batch.rows[:2]] == [BIG.box, SMALL.box]  # largest first, whatever the order found
    assert batch.crop_rows == [0, 1] and batch.crops.shape[0] == 2
    np.testing.assert_array_equal(batch.crops[1], crop_face(a, SMALL.box, CROP))
    err = batch.rows[2].error
    assert err is not None and "no face found" in err and "detect=False" in err and batch.rows[2].box is None
    largest = _crop_inputs([a, b], _Detections([SMALL, BIG], []))
    assert [r.box for r in largest.rows] == [BIG.box, None] and largest.crop_rows == [0]
    np.testing.assert_array_equal(largest.crops[0], batch.crops[0])
    # fallback="center" (training and evaluation data): a faceless image is centre-cropped instead
    centred = _crop_inputs([a, b], _Detections([SMALL, BIG], []), fallback="center")
    assert [r.method for r in centred.rows] == ["mtcnn", "center"] and centred.crop_rows == [0, 1]
    np.testing.assert_array_equal(centred.crops[1], crop_aligned(b, CROP.size))
    with pytest.raises(NoFaceError, match="no face found"):  # one input without a face raises
        _crop_inputs([b], _Detections([]), single=True)


def test_crop_inputs_detect_false_takes_the_centred_square_without_the_detector() -> None:
    wide, tall = _photo(0, 60, 100), _photo(1, 90, 50)
    batch = _crop_inputs([wide, tall], _never, detect=False, faces="all")
    assert [r.method for r in batch.rows] == ["center", "center"] and batch.crop_rows == [0, 1]
    assert batch.rows[0].box == (20.0, 0.0, 80.0, 60.0) and batch.rows[1].box == (0.0, 20.0, 50.0, 70.0)
    assert all(np.isnan(r.score) and r.error is None and r.landmarks is None for r in batch.rows)
    np.testing.assert_array_equal(batch.crops[0], crop_aligned(wide, CROP.size))
    np.testing.assert_array_equal(batch.crops[1], crop_aligned(tall, CROP.size))
    empty = _crop_inputs([np.zeros((3, 3), dtype=bool)], _never, detect=False)
    assert empty.crops.shape == (0, 64, 64, 3) and empty.crop_rows == []


def test_crop_inputs_a_degenerate_box_is_a_marked_row() -> None:
    a = _photo(0)
    flat = FaceBox((30.0, 30.0, 30.0, 30.0), 0.9)
    batch = _crop_inputs([a], _Detections([BIG, flat]), faces="all")
    assert [r.method for r in batch.rows] == ["mtcnn", "noface"] and batch.crop_rows == [0]
    assert batch.rows[1].box == flat.box and "degenerate" in (batch.rows[1].error or "")
    with pytest.raises(NoFaceError, match="degenerate"):  # a single input whose only face cannot be cut
        _crop_inputs([a], _Detections([flat]), single=True)


# ---------------------------------------------------------------------------------------- FacePipeline


@dataclass
class _Means:
    """A work result: one value per crop (a tensor field) and a tag (not a tensor: copied to every part)."""

    value: torch.Tensor
    tag: str
    nothing: torch.Tensor | None = None


def _fake_latents(crops: np.ndarray) -> Latents:
    """Latents whose every entry is the crop's mean pixel (float64, to see the pipeline cast them)."""
    m = torch.from_numpy(crops.reshape(len(crops), -1).mean(axis=1))
    col = m[:, None]
    return Latents(texture=col.repeat(1, 8), shape=-col.repeat(1, 8), pose=col.repeat(1, 6),
                   light=col.repeat(1, 4))


class _FakeEncoder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, crops: np.ndarray, batch_size: int) -> Latents:
        self.calls.append((crops.shape[0], batch_size))
        return _fake_latents(crops)


def _mean_work(calls: list[int]):  # type: ignore[no-untyped-def]
    def work(batch: CropBatch) -> _Means:
        assert batch.latents is not None and torch.is_inference_mode_enabled()
        calls.append(batch.crops.shape[0])
        return _Means(value=batch.latents.texture[:, :1] * 2.0, tag="means")

    return work


def test_face_pipeline_runs_batches_with_a_fake_encoder(crops: list[np.ndarray],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = np.zeros((2, 2, 7), np.uint8)
    fake = _FakeEncoder()
    pipe = FacePipeline(CROP, fake, detector=lambda: pytest.fail("detect=False must not build the detector"),
                        threads=None)
    calls: list[int] = []
    done = pipe.run([crops[0], crops[1], bad, crops[3], crops[4]], detect=False, faces="largest",
                    batch_size=2, progress=False, desc="fake", max_pixels=10**8, work=_mean_work(calls))
    assert capsys.readouterr().err == ""  # progress=False: no bar
    assert [len(b.rows) for b, _ in done] == [2, 2, 1]
    assert fake.calls == [(2, 2), (1, 2), (1, 2)] and calls == [2, 1, 1]
    assert [r.source for b, _ in done for r in b.rows] == [0, 1, 2, 3, 4]
    assert done[1][0].rows[0].method == "failed" and done[1][0].crop_rows == [1]
    for batch, result in done:
        assert result is not None and result.tag == "means" and result.nothing is None
        assert batch.latents is not None and batch.latents.texture.dtype == torch.float32  # moved by to_cpu
        means = torch.from_numpy(batch.crops.reshape(len(batch.crops), -1).mean(axis=1)).float()
        torch.testing.assert_close(batch.latents.texture[:, 0], means)
        torch.testing.assert_close(result.value[:, 0], 2.0 * means)  # each batch gets its own crops' rows
        assert result.value.dtype == torch.float32 and result.value.device.type == "cpu"


def test_face_pipeline_groups_work_over_batches_and_skips_faceless_ones(
    crops: list[np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = np.zeros((2, 2, 7), np.uint8)
    items = [bad, bad, crops[0], crops[1], crops[2], bad, crops[3]]
    pipe = FacePipeline(CROP, _FakeEncoder(), detector=lambda: pytest.fail("not needed"), threads=None)
    alone: list[int] = []
    done = pipe.run(items, detect=False, faces="largest", batch_size=2, progress=False, desc="x",
                    max_pixels=10**8, work=_mean_work(alone))
    grouped: list[int] = []
    together = pipe.run(items, detect=False, faces="largest", batch_size=2, progress=True, desc="grouping",
                        max_pixels=10**8, work=_mean_work(grouped), work_rows=3)
    assert "grouping" in capsys.readouterr().err  # progress=True: the bar, with its description
    assert alone == [2, 1, 1]  # the first batch holds no crop: no encoder call, no work, no result
    assert grouped == [3, 1]  # crops 2+1 once they reach 3, then the rest
    assert done[0][1] is None and together[0][1] is None and done[0][0].latents is None
    for (b1, r1), (b2, r2) in zip(done, together, strict=True):
        assert [r.source for r in b1.rows] == [r.source for r in b2.rows]
        if r1 is not None:
            assert r2 is not None and torch.equal(r1.value, r2.value)  # split back into the right batches
    untouched = pipe.run(items[:2], detect=False, faces="largest", batch_size=2, progress=False, desc="x",
                         max_pixels=10**8)
    assert untouched[0][1] is None and untouched[0][0].crop_rows == []


def test_face_pipeline_detects_with_the_detector_it_is_given(crops: list[np.ndarray]) -> None:
    built: list[int] = []

    class _Detector:
        def detect_batch(self, rgbs: list[np.ndarray]) -> list[list[FaceBox]]:
            two = [FaceBox((4.0, 4.0, 40.0, 44.0), 0.9), FaceBox((30.0, 30.0, 60.0, 60.0), 0.8)]
            return [list(two) for _ in rgbs]

    def detector() -> _Detector:
        built.append(1)
        return _Detector()

    pipe = FacePipeline(CROP, _FakeEncoder(), detector=detector, threads=None)  # type: ignore[arg-type]
    done = pipe.run(crops[:3], detect=True, faces="all", batch_size=2, progress=False, desc="x",
                    max_pixels=10**8)
    assert len(built) == 2  # asked for once per batch that needs detection
    assert [r.source for b, _ in done for r in b.rows] == [0, 0, 1, 1, 2, 2]
    assert all(r.score in (0.9, 0.8) for b, _ in done for r in b.rows)


def test_face_pipeline_checks_its_arguments_and_the_single_rules(crops: list[np.ndarray]) -> None:
    pipe = FacePipeline(CROP, _FakeEncoder(), detector=lambda: pytest.fail("not needed"), threads=None)

    def run(images: object, **kw: object) -> object:
        args: dict[str, object] = {"detect": False, "faces": "largest", "batch_size": 4, "progress": False,
                                   "desc": "x", "max_pixels": 10**8}
        args.update(kw)
        return pipe.run(images, **args)  # type: ignore[arg-type]

    for bad in ("biggest", None):
        with pytest.raises(ValueError, match="faces must be"):
            run(crops[0], faces=bad)
    for size in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            run(crops[0], batch_size=size)
    with pytest.raises(InvalidImageError, match="7 channels"):
        run(np.zeros((2, 2, 7), np.uint8))  # one input: raises
    done = run([np.zeros((2, 2, 7), np.uint8)])  # a list of one: a marked row
    assert done[0][0].rows[0].method == "failed"  # type: ignore[index]


# ------------------------------------------------------------------------------- rows back: split, scatter


def test_split_rows_cuts_every_tensor_field_and_keeps_the_others() -> None:
    result = _Means(value=torch.arange(10.0).reshape(5, 2), tag="t", nothing=None)
    parts = split_rows(result, [2, 0, 3])
    assert [type(p) for p in parts] == [_Means] * 3 and [p.tag for p in parts] == ["t"] * 3
    assert [p.value.shape[0] for p in parts] == [2, 0, 3] and all(p.nothing is None for p in parts)
    assert torch.equal(torch.cat([p.value for p in parts]), result.value)
    assert torch.equal(parts[2].value, result.value[2:])
    lat = _fake_latents(np.stack(synthetic_crops(3)))
    one, two = split_rows(lat, [1, 2])
    assert isinstance(one, Latents) and one.pose.shape == (1, 6) and two.light.shape == (2, 4)
    assert torch.equal(two.shape, lat.shape[1:])
    with pytest.raises(RuntimeError):  # sizes that do not add up to the rows
        split_rows(result, [2, 2])


def test_scatter_and_to_cpu() -> None:
    batch = CropBatch(rows=[Row("a", 0), Row("b", 1, error="x", method="failed"), Row("c", 2)],
                      crop_rows=[0, 2], crops=np.zeros((2, 64, 64, 3), np.uint8))
    out = batch.scatter(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64), (2,))
    assert out.dtype == torch.float32 and out.shape == (3, 2)
    assert out[[0, 2]].tolist() == [[1.0, 2.0], [3.0, 4.0]] and torch.isnan(out[1]).all()
    assert torch.isnan(batch.scatter(None, (4, 4))).all()
    moved = to_cpu(_Means(value=torch.ones(2, 1, dtype=torch.float64), tag="t"))
    assert moved.value.dtype == torch.float32 and moved.tag == "t" and moved.nothing is None


def test_assemble_encoding_puts_every_row_back_in_order() -> None:
    lat_a = _fake_latents(np.full((1, 64, 64, 3), 10, np.uint8))
    lat_b = _fake_latents(np.stack([np.full((64, 64, 3), v, np.uint8) for v in (20, 30)]))
    a = CropBatch(rows=[Row("p.jpg", 0, box=(1.0, 2.0, 3.0, 4.0), score=0.9),
                        Row("item 1", 1, error="item 1: broken", method="failed")],
                  crop_rows=[0], crops=np.zeros((1, 64, 64, 3), np.uint8), latents=to_cpu(lat_a))
    b = CropBatch(rows=[Row("item 2", 2, box=(5.0, 5.0, 5.0, 5.0), score=0.5, error="degenerate",
                            method="noface"),
                        Row("item 3", 3, box=(0.0, 0.0, 8.0, 8.0)),
                        Row("item 3", 3, box=(1.0, 1.0, 2.0, 2.0))],
                  crop_rows=[1, 2], crops=np.zeros((2, 64, 64, 3), np.uint8), latents=to_cpu(lat_b))
    c = CropBatch(rows=[Row("item 4", 4, error="no face", method="noface")], crop_rows=[],
                  crops=np.zeros((0, 64, 64, 3), np.uint8))
    e = assemble_encoding([a, b, c], latent_dim=8)
    assert len(e) == 6 and e.texture.shape == (6, 8) and e.pose.shape == (6, 6) and e.light.shape == (6, 4)
    assert e.ok.tolist() == [True, False, False, True, True, False]
    assert e.texture[:, 0].nan_to_num(-1).tolist() == [10.0, -1, -1, 20.0, 30.0, -1]
    assert torch.equal(e.shape[0], -e.texture[0]) and torch.isnan(e.light[[1, 2, 5]]).all()
    assert e.boxes[0].tolist() == [1.0, 2.0, 3.0, 4.0] and e.boxes[2].tolist() == [5.0, 5.0, 5.0, 5.0]
    assert torch.isnan(e.boxes[[1, 5]]).all()  # rows without a box
    assert e.scores[[0, 2]].tolist() == pytest.approx([0.9, 0.5]) and torch.isnan(e.scores[3])
    assert e.names == ["p.jpg", "item 1", "item 2", "item 3", "item 3", "item 4"]
    assert e.errors == [None, "item 1: broken", "degenerate", None, None, "no face"]
    assert e.source.tolist() == [0, 1, 2, 3, 3, 4] and e.source.dtype == torch.long


# ------------------------------------------------------------------- the single/batch rules, end to end


def test_every_input_kind_gives_the_same_features(
    enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path
) -> None:
    rgb = crops[0]
    png = tmp_path / "face.png"
    Image.fromarray(rgb).save(png)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    kinds = {
        "path str": str(png),
        "path obj": png,
        "PIL": Image.open(png),
        "numpy uint8": rgb,
        "numpy float": rgb.astype(np.float32) / 255.0,
        "torch uint8 CHW": chw,
        "torch float CHW": chw.float() / 255.0,
        "torch 1xCHW": chw[None],
        "PIL RGBA opaque": Image.fromarray(rgb).convert("RGBA"),
    }
    ref = enc.encode(rgb, detect=False).texture
    for kind, x in kinds.items():
        got = enc.encode(x, detect=False).texture
        assert torch.equal(got, ref), kind
    batch = enc.encode(torch.stack([chw, chw]), detect=False)  # a BxCxHxW tensor is a batch
    assert len(batch) == 2 and torch.equal(batch.texture[1:], ref)
    mixed = enc.encode([str(png), rgb, chw], detect=False)
    assert mixed.names == [str(png), "item 1", "item 2"]
    assert torch.equal(mixed.texture, ref.expand(3, -1))


def test_grey_input_is_converted(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    grey = crops[0][:, :, 0]
    a = enc.encode(grey, detect=False).texture
    b = enc.encode(np.repeat(grey[:, :, None], 3, axis=2), detect=False).texture
    assert torch.equal(a, b)


def test_detect_false_takes_the_centred_square(enc: FaceEncoder, crops: list[np.ndarray]) -> None:
    side = np.zeros((64, 16, 3), np.uint8)
    wide = np.concatenate([side, crops[1], side], axis=1)
    r = enc.encode([wide, crops[1]], detect=False)
    assert r.boxes[0].tolist() == [16.0, 0.0, 80.0, 64.0]
    assert torch.equal(r.texture[0], r.texture[1])


def test_batch_keeps_good_items_in_order(enc: FaceEncoder, crops: list[np.ndarray], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    items = [crops[0], str(broken), crops[1], np.zeros((4, 4), dtype=bool), crops[2]]
    r = enc.encode(items, detect=False, batch_size=2)
    assert r.ok.tolist() == [True, False, True, False, True]
    assert r.errors[0] is None and str(broken) in (r.errors[1] or "") and "item 3" in (r.errors[3] or "")
    assert torch.isnan(r.texture[1]).all() and torch.isnan(r.boxes[3]).all()
    single = enc.encode([crops[0], crops[1], crops[2]], detect=False).texture
    assert torch.equal(r.texture[[0, 2, 4]], single)


def test_single_bad_input_raises_typed_errors(enc: FaceEncoder, tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="no such file"):
        enc.encode(tmp_path / "missing.jpg")
    with pytest.raises(InvalidImageError, match="dtype bool"):
        enc.encode(np.zeros((8, 8), dtype=bool), detect=False)
    with pytest.raises(InvalidImageError, match="empty list"):
        enc.encode([])
    with pytest.raises(ValueError, match="faces must be"):
        enc.encode(np.zeros((8, 8, 3), np.uint8), detect=False, faces="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(np.zeros((8, 8, 3), np.uint8), detect=False, batch_size=0)


def test_single_faceless_image_raises_no_face_error(enc: FaceEncoder) -> None:
    blank = np.full((160, 160, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        enc.encode(blank)
    r = enc.encode([blank])  # in a list: a marked row instead
    assert r.ok.tolist() == [False] and "no face found" in (r.errors[0] or "")


def test_faces_policy_on_two_people(enc: FaceEncoder, shared_data: Path) -> None:
    photo = shared_data / "photos" / "two_people.jpg"
    both = enc.encode(photo, faces="all")
    assert len(both) == 2 and both.ok.all() and both.source.tolist() == [0, 0]
    assert (both.scores >= enc.config.crop.threshold).all()
    areas = (both.boxes[:, 2] - both.boxes[:, 0]) * (both.boxes[:, 3] - both.boxes[:, 1])
    assert areas[0] >= areas[1]  # largest first
    largest = enc.encode(photo)
    assert len(largest) == 1 and torch.equal(largest.boxes[0], both.boxes[0])
    assert torch.equal(largest.texture[0], both.texture[0])
    blank = np.full((160, 160, 3), 128, dtype=np.uint8)
    mixed = enc.encode([photo, blank, Image.open(photo)], faces="all")
    assert mixed.source.tolist() == [0, 0, 1, 2, 2] and mixed.ok.tolist() == [True, True, False, True, True]
    assert mixed.names[:2] == [str(photo)] * 2 and mixed.names[2] == "item 1"
    # A path and a PIL image: the same faces (MTCNN batches same-size images, so boxes agree to float
    # rounding).
    torch.testing.assert_close(mixed.boxes[3:], both.boxes, atol=1e-2, rtol=0)
    torch.testing.assert_close(mixed.texture[3:], both.texture, atol=1e-3, rtol=0)


def test_detected_path_pil_numpy_agree(enc: FaceEncoder, shared_data: Path) -> None:
    photo = shared_data / "photos" / "obama_small.jpg"
    rgb = np.array(Image.open(photo).convert("RGB"))
    ref = enc.encode(photo)
    for x in (Image.open(photo), rgb, torch.from_numpy(rgb).permute(2, 0, 1)):
        got = enc.encode(x)
        assert torch.equal(got.boxes, ref.boxes) and torch.equal(got.texture, ref.texture)



# ------------------------------------------------------------ work gathered over batches, end to end


def test_disentangle_samples_identities_of_several_batches_together(
    enc: FaceEncoder, crops: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RDMs run on groups of at least IDENTITY_ROWS crops gathered over batches, and each group's
    identities go back to their rows (bad items and batches without a face included)."""
    import latentface_sdk.facade as facade_module
    import latentface_sdk.operations as ops

    bad = np.zeros((2, 2, 7), np.uint8)
    items = [crops[0], bad, crops[1], crops[2], bad, bad, crops[3], crops[4], crops[0]]
    reference = enc.disentangle(items, detect=False, seed=3, batch_size=64)  # one batch, one group
    groups: list[int] = []
    real = ops.sample_identity

    def counting(*args: object, **kwargs: object) -> ops.IdentityLatents:
        batch = args[1]
        groups.append(batch.crops.shape[0])  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(facade_module, "sample_identity", counting)
    monkeypatch.setattr(facade_module, "IDENTITY_ROWS", 3)
    grouped = enc.disentangle(items, detect=False, seed=3, batch_size=2)
    # batches of 2 items hold 1, 2, 0, 2, 1 crops: groups close once they hold 3 (1+2, 0+2+1)
    assert groups == [3, 3]
    assert grouped.ok.tolist() == reference.ok.tolist() and grouped.errors == reference.errors
    for field in ("identity_texture", "identity_shape", "expression_texture", "texture"):
        _rows_equal(getattr(grouped, field), getattr(reference, field))
    monkeypatch.setattr(facade_module, "IDENTITY_ROWS", 0)
    groups.clear()
    per_batch = enc.disentangle(items, detect=False, seed=3, batch_size=2)
    assert groups == [1, 2, 2, 1]  # 0: every batch with a face alone
    _rows_equal(per_batch.identity_shape, reference.identity_shape)


def test_face_pipeline_decoding_ahead_keeps_the_rows_and_marks_bad_files(
    crops: list[np.ndarray], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    items = [crops[0], str(broken), crops[1], str(tmp_path / "missing.png"), crops[2]]
    rows = {}
    for workers in (0, 2):
        pipe = FacePipeline(CROP, _FakeEncoder(), detector=lambda: pytest.fail("not needed"), threads=None,
                            decode_workers=workers)
        done = pipe.run(items, detect=False, faces="largest", batch_size=2, progress=False, desc="x",
                        max_pixels=10**8)
        rows[workers] = [(r.source, r.method, r.error) for b, _ in done for r in b.rows]
    assert rows[2] == rows[0]
    assert [m for _, m, _ in rows[2]] == ["center", "failed", "center", "failed", "center"]


def test_auto_decode_workers_keeps_the_cpu_path_unthreaded() -> None:
    from latentface_sdk.pipeline import GPU_DECODE_WORKERS, auto_decode_workers

    assert auto_decode_workers(None, "cpu") == 0
    assert auto_decode_workers(None, torch.device("cuda:0")) == GPU_DECODE_WORKERS  # no GPU touched
    assert auto_decode_workers(3, "cpu") == 3 and auto_decode_workers(0, "cuda") == 0
