"""latentface_sdk.video and FaceEncoder.encode_video: sampling, upright frames, tracks, bad files, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

av = pytest.importorskip("av")  # the optional 'video' extra (installed by the dev extra)

from latentface_sdk import FaceEncoder  # noqa: E402
from latentface_sdk.video import (  # noqa: E402
    IoUTracker,
    VideoDecodeError,
    box_iou,
    read_frames,
    sample_times,
    upright,
)

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
FPS = 10


def write_video(path: Path, frames: list[np.ndarray], *, rotation: int = 0, faststart: bool = True) -> Path:
    """An MPEG-4 file of RGB frames at 10 fps (moov first, so that a truncated copy still opens)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"}
        if rotation:
            stream.set_display_rotation(rotation)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of ../shared/data/photos/obama_and_biden.jpg (its top, with the two faces) sliding 4 px
    right per frame."""
    img = Image.open(PHOTOS / "obama_and_biden.jpg").convert("RGB")
    w = 320
    base = np.asarray(img.resize((w + 64, int(w * img.height / img.width))))[:140]
    frames = [base[:, 48 - 4 * i : 48 - 4 * i + w] for i in range(12)]
    return write_video(tmp_path_factory.mktemp("video") / "two.mp4", frames)


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder.from_pretrained(device="cpu")


def test_frames_are_sampled_by_count_and_by_rate(tmp_path: Path) -> None:
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(20)]
    path = write_video(tmp_path / "grey.mp4", frames)
    every = list(read_frames(path, every=3))
    assert [f.index for f in every] == [0, 3, 6, 9, 12, 15, 18]
    assert [f.time for f in every] == pytest.approx([i / FPS for i in range(0, 20, 3)])
    assert every[2].image.shape == (32, 48, 3) and abs(float(every[2].image.mean()) - 60) < 4
    assert [f.index for f in read_frames(path, fps=2.5)] == [0, 4, 8, 12, 16]
    assert len(list(read_frames(path))) == 20
    with pytest.raises(ValueError, match="not both"):
        sample_times(2, 5.0)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="every must be"):
            list(read_frames(path, every=bad))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fps must be"):
        list(read_frames(path, fps=0))


def test_a_rotated_phone_video_comes_out_upright(tmp_path: Path) -> None:
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:8, :8] = 255  # a white corner at the stored picture's top left
    path = write_video(tmp_path / "phone.mp4", [stored] * 3, rotation=90)
    first = next(read_frames(path))
    assert first.image.shape == (48, 32, 3)  # shown in portrait
    # turned a quarter anticlockwise
    assert first.image[-8:, :8].mean() > 200 and first.image[:8, :8].mean() < 50
    assert np.array_equal(upright(stored, 90), np.rot90(stored)) and upright(stored, 0) is stored
    assert np.array_equal(upright(stored, -90), np.rot90(stored, 3))


def test_tracker_links_overlapping_boxes_and_starts_new_tracks() -> None:
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]])) == pytest.approx(
        np.array([[1 / 3, 0.0]]))
    t = IoUTracker(min_iou=0.3, max_gap=1)
    a, b = [0, 0, 10, 10], [50, 0, 60, 10]
    assert t.update(0, np.array([a, b])).tolist() == [0, 1]
    # order does not matter
    assert t.update(1, np.array([[52, 0, 62, 10], [1, 0, 11, 10]])).tolist() == [1, 0]
    assert t.update(2, np.zeros((0, 4))).tolist() == []  # a frame without faces
    assert t.update(3, np.array([[2, 0, 12, 10]])).tolist() == [0]  # seen within max_gap
    assert t.update(6, np.array([[2, 0, 12, 10]])).tolist() == [2]  # too long unseen: a new track


def test_encode_video_gives_rows_per_face_with_times_and_two_tracks(encoder: FaceEncoder,
                                                                    two_people: Path) -> None:
    res = encoder.encode_video(two_people, every=2, frames_per_batch=4)
    assert res.frames_decoded == 12 and res.frames_sampled == 6
    assert len(res) == 12  # two faces in each of the 6 sampled frames
    assert sorted(set(res.frame.tolist())) == [0, 2, 4, 6, 8, 10]
    assert res.time.tolist() == pytest.approx([f / FPS for f in res.frame.tolist()])
    assert sorted(set(res.track.tolist())) == [0, 1]
    for t in (0, 1):  # one person per track, moving right with the picture (8 px per sampled frame)
        rows = res.track == t
        x = res.encoding.boxes[rows, 0].numpy()
        assert len(x) == 6 and np.all(np.diff(x) > 4)
    gap = res.encoding.boxes[res.track == 0, 0] - res.encoding.boxes[res.track == 1, 0]
    assert bool((gap.abs() > 40).all())  # two people apart in every frame, never swapped
    # the same latents as encoding the decoded frame as an image
    frame4 = next(f for f in read_frames(two_people) if f.index == 4)
    still = encoder.encode([frame4.image], faces="all")
    rows4 = (res.frame == 4).nonzero().flatten()
    assert torch.allclose(res.encoding.texture[rows4], still.texture, atol=1e-5)
    assert res.encoding.names[int(rows4[0])].endswith("two.mp4#4") and bool(res.encoding.ok.all())
    arrays = res.numpy()
    assert ({"frame", "time", "track", "texture", "boxes"} <= set(arrays)
            and arrays["texture"].shape == (12, 256))
    means = res.track_means()
    assert means["track"].tolist() == [0, 1] and means["faces"].tolist() == [6, 6]
    assert means["texture"].shape == (2, 256) and means["end"].tolist() == pytest.approx([1.0, 1.0])
    dis = encoder.encode_video(two_people, fps=2.5, features="disentangle", faces="largest")
    assert (len(dis) == 3 and dis.disentangled is not None
            and dis.disentangled.identity_texture.shape == (3, 256))
    assert "VideoEncoding(" in repr(dis)


def test_a_truncated_video_keeps_the_rows_before_the_break(encoder: FaceEncoder, two_people: Path,
                                                           tmp_path: Path) -> None:
    data = two_people.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4: stopped decoding at frame \d+") as info:
        encoder.encode_video(cut, frames_per_batch=2)
    err = info.value
    assert err.frame is not None and 0 < err.frame < 12 and err.path == str(cut)
    assert err.partial is not None and len(err.partial) == 2 * err.frame  # every frame before the break
    assert err.partial.frame.max() == err.frame - 1


def test_not_a_video_and_a_video_without_faces(encoder: FaceEncoder, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoDecodeError, match="notes.mp4: cannot be opened as a video") as info:
        encoder.encode_video(text)
    assert info.value.frame is None and info.value.partial is not None and len(info.value.partial) == 0
    with pytest.raises(VideoDecodeError, match="no such file"):
        encoder.encode_video(tmp_path / "missing.mp4")
    rng = np.random.default_rng(0)
    noise = write_video(tmp_path / "noise.mp4", [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                                                 for _ in range(5)])
    empty = encoder.encode_video(noise)
    assert len(empty) == 0 and empty.frames_sampled == 5 and empty.numpy()["texture"].shape == (0, 256)
    assert empty.track_means()["track"].shape == (0,)


def test_cli_writes_rows_and_keeps_them_when_the_file_breaks(two_people: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from latentface_sdk.cli import main

    out = tmp_path / "rows.npz"
    assert main(["video", str(two_people), "-o", str(out), "--every", "3", "--track-means", "--no-progress",
                 "--device", "cpu"]) == 0
    with np.load(out) as z:
        assert z["frame"].tolist() == [0, 0, 3, 3, 6, 6, 9, 9]
        assert sorted(set(z["track"].tolist())) == [0, 1] and z["texture"].shape == (8, 256)
        assert int(z["frames_sampled"]) == 4 and str(z["decode_error"]) == ""
    with np.load(tmp_path / "rows.tracks.npz") as z:
        assert z["faces"].tolist() == [4, 4]
    data = two_people.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    capsys.readouterr()
    assert main(["video", str(cut), "-o", str(tmp_path / "cut.npz"), "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "cut.mp4: stopped decoding at frame" in err
    with np.load(tmp_path / "cut.npz") as z:
        assert len(z["frame"]) > 0 and "stopped decoding" in str(z["decode_error"])
    assert main(["video", str(two_people), "-o", str(tmp_path / "rows.csv"), "--no-progress"]) == 2


def test_the_streamed_parts_are_the_whole_result(encoder: FaceEncoder, two_people: Path) -> None:
    parts = list(encoder.encode_video_parts(two_people, every=2, frames_per_batch=2))
    assert len(parts) == 3 and [len(p) for p in parts] == [4, 4, 4]
    whole = encoder.encode_video(two_people, every=2)
    assert torch.equal(torch.cat([p.track for p in parts]), whole.track)
    assert torch.allclose(torch.cat([p.encoding.texture for p in parts]), whole.encoding.texture, atol=1e-5)
    with pytest.raises(TypeError, match="every_n"):
        next(encoder.encode_video_parts(two_people, every_n=2))
    with pytest.raises(ValueError, match="frames_per_batch must be"):
        encoder.encode_video(two_people, frames_per_batch=0)
