"""Tracks that stay on one person (issue 35): shot cuts, identity-aware association, time from the first
frame. Unit tests on synthetic frames and embeddings, then clips made with PyAV from the shared photos,
each photo framed so that its face lands at the same place (box IoU across a cut well above 0.3)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

av = pytest.importorskip("av")  # the optional 'video' extra (installed by the dev extra)

from latentface_sdk import FaceEncoder  # noqa: E402
from latentface_sdk.errors import ConfigError  # noqa: E402
from latentface_sdk.shots import (  # noqa: E402
    CUT_THRESHOLD,
    ShotDetector,
    colour_change,
    frame_change,
    frame_signature,
    layout_change,
    shot_indices,
)
from latentface_sdk.video import FaceTracker, IoUTracker, box_iou, read_frames  # noqa: E402

FPS = 10


# ------------------------------------------------------------------------------------------- helpers
def smooth_picture(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth random colour picture (noise on a coarse grid, enlarged): structure like a scene."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 20, w // 20, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def write_video(path: Path, frames: list[np.ndarray], *, first_pts: int = 0) -> Path:
    """An MPEG-4 file of RGB frames at 10 fps whose first frame is at ``first_pts`` / 10 s of stream
    time (a start offset, as in many real files)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"}
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts, frame.time_base = first_pts + i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class Framer:
    """Frames of a photo with its face (found once by the encoder) scaled to ``face`` px wide and centred at
    (cx, cy) of a w x h frame, shifted by (dx, dy), brightness times ``gain``."""

    def __init__(self, encoder: FaceEncoder, photos: Path, names: list[str]) -> None:
        found = encoder.encode([photos / n for n in names])
        self.images = {n: Image.open(photos / n).convert("RGB") for n in names}
        self.boxes = {n: found.boxes[i].tolist() for i, n in enumerate(names)}

    def frame(self, name: str, *, w: int = 320, h: int = 240, face: float = 90, cx: float = 160,
              cy: float = 110, dx: float = 0, dy: float = 0, gain: float = 1.0) -> np.ndarray:
        x1, y1, x2, y2 = self.boxes[name]
        s = face / (x2 - x1)
        img = self.images[name]
        arr = np.asarray(img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR))
        ox = int(round((x1 + x2) / 2 * s - cx - dx))
        oy = int(round((y1 + y2) / 2 * s - cy - dy))
        pad = max(w, h)
        arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        out = arr[oy + pad:oy + pad + h, ox + pad:ox + pad + w].astype(np.float32)
        return np.clip(out * gain, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def framer(encoder: FaceEncoder, shared_data: Path) -> Framer:
    return Framer(encoder, shared_data / "photos",
                  ["obama2.jpg", "obama-1080p.jpg", "biden.jpg", "alex-lacamoire.png"])


def shot_clip(framer: Framer, path: Path, names: list[str], per_shot: int = 8,
              first_pts: int = 0) -> Path:
    """One shot per photo, ``per_shot`` frames each, the face drifting 2 px per frame and the light
    flickering, hard cuts between shots with the face at the same place."""
    frames = [framer.frame(n, dx=2 * i, gain=1.0 + 0.08 * ((i % 3) - 1))
              for n in names for i in range(per_shot)]
    return write_video(path, frames, first_pts=first_pts)


def tracks_by_shot(shot: np.ndarray, track: np.ndarray) -> dict[int, set[int]]:
    return {int(s): set(track[shot == s].tolist()) for s in np.unique(shot)}


# ---------------------------------------------------------------------------- shots (synthetic frames)
def test_cuts_between_pictures_and_none_within_a_shot() -> None:
    a, b = smooth_picture(0), smooth_picture(1)
    sa = frame_signature(a)
    assert frame_change(sa, sa) == 0.0
    assert frame_change(sa, frame_signature(b)) >= CUT_THRESHOLD
    within = [
        np.roll(a, 4, axis=1),                                                  # a small pan
        np.clip(a * 0.6, 0, 255).astype(np.uint8),                              # the light dims
        np.clip(a * np.array([1.2, 0.9, 0.8]), 0, 255).astype(np.uint8),        # and turns warm
        np.asarray(Image.fromarray(a).resize((176, 132)))[6:126, 8:168],        # a slight zoom
    ]
    for x in within:
        sx = frame_signature(x)
        assert frame_change(sa, sx) < CUT_THRESHOLD, (layout_change(sa, sx), colour_change(sa, sx))
    frames = [a, *within, b, np.roll(b, -3, axis=0), a]
    assert shot_indices(frames).tolist() == [0, 0, 0, 0, 0, 1, 1, 2]
    assert shot_indices(frames, threshold=None).tolist() == [0] * 8
    detector = ShotDetector()
    assert [detector.update(f) for f in frames] == shot_indices(frames).tolist()


def test_signatures_of_odd_frames() -> None:
    black = np.zeros((48, 64, 3), np.uint8)
    grey = np.full((10, 12), 128, np.uint8)  # tiny and single-channel
    sb, sg = frame_signature(black), frame_signature(grey)
    assert np.isfinite(sb.layout).all() and sb.colour.sum() == pytest.approx(1.0)
    assert frame_change(sb, frame_signature(black)) == 0.0 and np.isfinite(frame_change(sb, sg))
    # a fade to black after a picture is a shot boundary; black to black is not
    assert shot_indices([smooth_picture(2), black, black]).tolist() == [0, 1, 1]


def test_cuts_are_found_in_every_decoded_frame_whatever_the_sampling(tmp_path: Path) -> None:
    a, b = smooth_picture(3, 96, 128), smooth_picture(4, 96, 128)
    frames = [np.roll(a, 2 * i, axis=1) for i in range(7)] + [np.roll(b, 2 * i, axis=1) for i in range(7)]
    path = write_video(tmp_path / "cut.mp4", frames)
    assert [f.shot for f in read_frames(path)] == [0] * 7 + [1] * 7
    assert [(f.index, f.shot) for f in read_frames(path, every=5)] == [(0, 0), (5, 0), (10, 1)]
    assert {f.shot for f in read_frames(path, cut_threshold=None)} == {0}
    with pytest.raises(ValueError, match="cut_threshold"):
        next(read_frames(path, cut_threshold=0))


def test_time_counts_from_the_first_frame_and_keeps_the_offset(tmp_path: Path) -> None:
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(6)]
    path = write_video(tmp_path / "late.mp4", frames, first_pts=8)  # the stream starts at 0.8 s
    got = list(read_frames(path))
    assert [f.time for f in got] == pytest.approx([i / FPS for i in range(6)])
    assert {round(f.start_time, 6) for f in got} == {0.8}
    assert [f.index for f in read_frames(path, fps=5)] == [0, 2, 4]  # ticks from the first frame


# ------------------------------------------------------------------------ tracker (synthetic embeddings)
BOX = [100.0, 80.0, 160.0, 150.0]
PERSON_A, PERSON_B = unit([1, 0.1, 0]), unit([0.1, 1, 0.2])  # cosine about 0.2


def test_a_face_joins_a_track_only_when_box_and_identity_agree() -> None:
    t = FaceTracker(min_iou=0.3, min_similarity=0.5)
    assert t.update(0, np.array([BOX]), np.array([PERSON_A])).tolist() == [0]
    assert t.update(1, np.array([BOX]), np.array([PERSON_A])).tolist() == [0]
    # another person at the very same place (a missed cut): a new track
    assert t.update(2, np.array([BOX]), np.array([PERSON_B])).tolist() == [1]
    # box overlap alone (no identity, or identities not given) links them, as before
    plain = FaceTracker(min_iou=0.3)
    assert [plain.update(i, np.array([BOX]), np.array([e])).tolist() for i, e in
            enumerate([PERSON_A, PERSON_B])] == [[0], [0]]
    t2 = FaceTracker(min_similarity=0.5)
    assert [t2.update(i, np.array([BOX])).tolist() for i in range(2)] == [[0], [0]]
    # a face without an identity (NaN row) is linked by its box
    t3 = FaceTracker(min_similarity=0.5)
    t3.update(0, np.array([BOX]), np.array([PERSON_A]))
    assert t3.update(1, np.array([BOX]), np.full((1, 3), np.nan)).tolist() == [0]
    assert IoUTracker is FaceTracker


def test_every_track_ends_at_a_cut() -> None:
    t = FaceTracker(min_similarity=0.5)
    other = [300.0, 80.0, 360.0, 150.0]
    assert t.update(0, np.array([BOX, other]), np.array([PERSON_A, PERSON_B]), shot=0).tolist() == [0, 1]
    assert t.update(1, np.array([BOX, other]), np.array([PERSON_A, PERSON_B]), shot=0).tolist() == [0, 1]
    # the same people at the same places after a cut: new tracks all the same
    assert t.update(2, np.array([BOX, other]), np.array([PERSON_A, PERSON_B]), shot=1).tolist() == [2, 3]
    assert t.update(3, np.array([other]), np.array([PERSON_B]), shot=1).tolist() == [3]
    # ... even by identity alone (no re-join across a cut)
    assert t.update(4, np.array([BOX]), np.array([PERSON_B]), shot=2).tolist() == [4]


def test_a_face_rejoins_its_track_by_identity_within_a_shot() -> None:
    far = [20.0, 20.0, 80.0, 90.0]
    t = FaceTracker(min_iou=0.3, max_gap=1, min_similarity=0.5, rejoin_gap=6)
    for i in range(3):
        assert t.update(i, np.array([BOX]), np.array([PERSON_A])).tolist() == [0]
    for i in range(3, 6):
        assert t.update(i, np.zeros((0, 4)), np.zeros((0, 3))).tolist() == []  # hidden for 3 frames
    # back elsewhere (IoU 0, past max_gap): the same track by identity; another person there is not
    assert t.update(6, np.array([far, BOX]), np.array([PERSON_B, PERSON_A])).tolist() == [1, 0]
    # too long unseen: a new track
    for i in range(7, 15):
        t.update(i, np.zeros((0, 4)), np.zeros((0, 3)))
    assert t.update(15, np.array([BOX]), np.array([PERSON_A])).tolist() == [2]
    # out of reach (1 face width per sampled frame since the track was seen): a new track
    t.update(16, np.zeros((0, 4)), np.zeros((0, 3)))
    assert t.update(17, np.array([[400.0, 80.0, 460.0, 150.0]]), np.array([PERSON_A])).tolist() == [3]
    assert t.update(18, np.array([[40.0, 80.0, 100.0, 150.0]]), np.array([PERSON_A])).tolist() == [2]


def test_two_people_who_swap_places_keep_their_tracks() -> None:
    left, right = [0.0, 0.0, 10.0, 10.0], [7.0, 0.0, 17.0, 10.0]
    for tracker, expected in ((FaceTracker(min_similarity=0.5), [1, 0]), (FaceTracker(), [0, 1])):
        tracker.update(0, np.array([left, right]), np.array([PERSON_A, PERSON_B]))
        # each now overlaps the other's old box most: box overlap alone swaps the ids
        got = tracker.update(1, np.array([[1.0, 0.0, 11.0, 10.0], [6.0, 0.0, 16.0, 10.0]]),
                             np.array([PERSON_B, PERSON_A]))
        assert got.tolist() == expected


# ------------------------------------------------------------------------------ clips through the model
def test_two_people_cut_at_the_same_place_get_two_tracks(encoder: FaceEncoder, framer: Framer,
                                                         tmp_path: Path) -> None:
    path = shot_clip(framer, tmp_path / "obama_biden.mp4", ["obama2.jpg", "biden.jpg"], first_pts=8)
    for options in ({}, {"every": 3}, {"fps": 4.0}):
        res = encoder.encode_video(path, frames_per_batch=5, **options)
        shot, track, frame = res.shot.numpy(), res.track.numpy(), res.frame.numpy()
        assert (shot == (frame >= 8)).all(), options  # the cut is before frame 8, found when sampling too
        by_shot = tracks_by_shot(shot, track)
        assert [len(v) for v in by_shot.values()] == [1, 1], options  # one id per person per shot
        assert not by_shot[0] & by_shot[1], options  # no track holds both people
    # the boxes across the cut overlap far beyond min_iou: box overlap alone would have joined them
    boxes = res.encoding.boxes.numpy()
    assert box_iou(boxes[shot == 0][-1:], boxes[shot == 1][:1])[0, 0] > 0.6
    # time from the first frame, the stream's offset kept
    assert res.time[0].item() == 0.0 and res.start_time == pytest.approx(0.8)
    assert res.time.tolist() == pytest.approx((res.frame.double() / FPS).tolist())
    arrays = res.numpy()
    assert arrays["shot"].tolist() == shot.tolist() and arrays["shot"].dtype == np.int64
    means = res.track_means()
    assert means["shot"].tolist() == [0, 1] and means["start"].tolist() == pytest.approx([0.0, 0.8])


def test_two_photos_of_one_person_are_two_tracks_one_per_shot(encoder: FaceEncoder, framer: Framer,
                                                              tmp_path: Path) -> None:
    path = shot_clip(framer, tmp_path / "obama_obama.mp4", ["obama2.jpg", "obama-1080p.jpg"])
    res = encoder.encode_video(path)
    assert res.shot.tolist() == [0] * 8 + [1] * 8
    by_shot = tracks_by_shot(res.shot.numpy(), res.track.numpy())
    assert by_shot == {0: {0}, 1: {1}}  # tracks end at cuts; the person keeps one id within each shot


def test_one_face_moving_in_one_shot_keeps_one_id(encoder: FaceEncoder, framer: Framer,
                                                  tmp_path: Path) -> None:
    frames = [framer.frame("biden.jpg", dx=3 * i, dy=(i % 2), face=90 + i, gain=1.0 + 0.1 * ((i % 3) - 1))
              for i in range(12)]
    res = encoder.encode_video(write_video(tmp_path / "drift.mp4", frames), frames_per_batch=4)
    assert len(res) == 12 and res.shot.unique().tolist() == [0] and res.track.unique().tolist() == [0]


def needs_identity(encoder: FaceEncoder) -> None:
    if encoder.heads.identity is None:
        pytest.skip("the weights have no identity head")


def test_identity_alone_keeps_two_people_apart_when_no_cut_is_seen(encoder: FaceEncoder, framer: Framer,
                                                                   tmp_path: Path) -> None:
    needs_identity(encoder)
    # two people the identity head tells apart well (at the verification threshold it passes about one
    # pair of two people in five: the cut detector is the first guard, identity the second)
    path = shot_clip(framer, tmp_path / "obama_alex.mp4", ["obama2.jpg", "alex-lacamoire.png"])
    res = encoder.encode_video(path, cut_threshold=None)  # the cut is not looked for: identity must split
    assert res.shot.unique().tolist() == [0]
    first, second = set(res.track[:8].tolist()), set(res.track[8:].tolist())
    assert len(first) == 1 and len(second) == 1 and not first & second
    emb = res.identity_embedding
    assert emb is not None and emb.shape[0] == 16 and "identity_embedding" in res.numpy()
    assert emb.norm(dim=1).numpy() == pytest.approx(1.0, abs=1e-4)
    # box overlap alone joins them (the failure of issue 35)
    plain = encoder.encode_video(path, cut_threshold=None, min_similarity=-1.0)
    assert plain.track.unique().tolist() == [0]


def test_a_face_hidden_then_back_elsewhere_rejoins_its_track(encoder: FaceEncoder, framer: Framer,
                                                             tmp_path: Path) -> None:
    needs_identity(encoder)
    background = framer.frame("obama-1080p.jpg", face=30, cx=40, cy=30)  # a room, its face out of view
    background = np.asarray(Image.fromarray(background).filter(ImageFilter.GaussianBlur(6)))
    face = framer.frame("biden.jpg", w=78, h=93, face=48, cx=39, cy=43)

    def with_face(x: int, y: int) -> np.ndarray:
        out = background.copy()
        out[y:y + face.shape[0], x:x + face.shape[1]] = face
        return out

    frames = ([with_face(30 + 2 * i, 60) for i in range(5)] + [background] * 3
              + [with_face(200 + 2 * i, 70) for i in range(5)])
    res = encoder.encode_video(write_video(tmp_path / "hide.mp4", frames))
    assert res.shot.unique().tolist() == [0] and len(res) == 10
    assert res.track.unique().tolist() == [0]  # one person, one shot, one id


def test_cli_writes_shots_start_time_and_identity(encoder: FaceEncoder, framer: Framer, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from latentface_sdk.cli import main

    path = shot_clip(framer, tmp_path / "obama_biden.mp4", ["obama2.jpg", "biden.jpg"], per_shot=4,
                     first_pts=5)
    out = tmp_path / "rows.npz"
    assert main(["video", str(path), "-o", str(out), "--track-means", "--no-progress", "--device",
                 "cpu"]) == 0
    assert "2 track(s) and 2 shot(s)" in capsys.readouterr().out
    with np.load(out) as z:
        assert z["shot"].tolist() == [0] * 4 + [1] * 4 and float(z["start_time"]) == pytest.approx(0.5)
        assert z["time"][0] == 0.0 and len(set(z["track"][:4])) == 1 and not set(z["track"][:4]) & set(
            z["track"][4:])
        if encoder.heads.identity is not None:
            assert z["identity_embedding"].shape == (8, encoder.config.heads.identity_dim)
    with np.load(tmp_path / "rows.tracks.npz") as z:
        assert z["shot"].tolist() == [0, 1] and z["faces"].tolist() == [4, 4]
    assert main(["video", str(path), "-o", str(out), "--no-cuts", "--no-progress", "--device", "cpu"]) == 0
    with np.load(out) as z:
        assert set(z["shot"].tolist()) == {0}
    with pytest.raises(SystemExit):  # one or the other
        main(["video", str(path), "-o", str(out), "--no-cuts", "--cut-threshold", "2"])


def test_options_are_checked_and_weights_without_identity_link_by_boxes(
        encoder: FaceEncoder, enc: FaceEncoder, tmp_path: Path) -> None:
    path = write_video(tmp_path / "grey.mp4", [np.full((48, 64, 3), 100, np.uint8)] * 3)
    for bad in (1.5, "high", True):
        with pytest.raises(ValueError, match="min_similarity must be"):
            encoder.encode_video(path, min_similarity=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cut_threshold must be"):
        encoder.encode_video(path, cut_threshold=-1.0)
    assert enc.heads.identity is None  # the tiny test model has no identity head
    with pytest.raises(ConfigError, match="identity head"):
        enc.encode_video(path, min_similarity=0.5)
    empty = enc.encode_video(path)  # boxes alone; no face here, no rows
    assert len(empty) == 0 and empty.identity_embedding is None and "identity_embedding" not in empty.numpy()
