"""Faces in video files: frames decoded by PyAV (streamed), sampled, encoded in batches, linked into tracks.

``pip install 'latentface-sdk[video]'`` (PyAV, which ships its own FFmpeg). The entry point is
:meth:`latentface_sdk.FaceEncoder.encode_video` (and ``latentface video clip.mp4 -o rows.npz``); this
module holds its parts:

* :func:`read_frames` decodes one video file frame by frame (never the whole file in memory), keeps every
  ``every``-th frame or ``fps`` frames per second, turns each upright (phone videos carry their rotation
  as a display matrix) and yields :class:`VideoFrame` (index, time in seconds, RGB array);
* :mod:`latentface_sdk.shots` finds the cuts (every decoded frame against the one before it), so that
  each frame carries its shot;
* :class:`FaceTracker` links the faces of consecutive sampled frames into tracks by box overlap and
  identity embedding (greedy matching), and ends every track at a cut;
* :class:`VideoEncoding` is the typed result: one row per face per sampled frame with its frame index,
  time (from the first frame), shot, track id, identity embedding and the same latents as
  :meth:`~latentface_sdk.FaceEncoder.encode`;
* :class:`VideoSettings` checks ``encode_video``'s options, :func:`frame_groups` yields the sampled frames
  a group at a time and :class:`VideoParts` turns a group and the encoder's rows for it into a part.
  The encoder drives the loop (frames -> its pipeline -> identity from the latents -> a part); nothing
  here calls back into it.

A file that stops decoding part way (truncated, corrupt) or is no video at all raises
:class:`VideoDecodeError`, which names the file and the frame and carries the rows decoded before it
(``partial``). Frames without a face give no row: a video without faces gives an empty result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ._extras import install_hint
from .errors import DataError
from .results import Disentangled, Encoding
from .shots import CUT_THRESHOLD, ShotDetector

__all__ = ["FaceTracker", "IoUTracker", "VideoDecodeError", "VideoEncoding", "VideoFrame", "VideoParts",
           "VideoSettings", "box_iou", "concat_video", "empty_video", "frame_count", "frame_groups",
           "read_frames", "sample_times", "track_means", "upright"]

VIDEO_EXTRA = install_hint("video")
#: Side of the square thumbnail (area-averaged by FFmpeg) each decoded frame's shot signature is taken from:
#: the signature's 24 x 24 grid itself.
THUMBNAIL = 24


class VideoDecodeError(DataError):
    """A video file that cannot be opened or stops decoding part way.

    ``path``: the file; ``frame``: the index of the first frame that could not be read (``None`` when the
    file could not be opened at all); ``partial``: the rows of the frames read before it, when the error
    came from :meth:`~latentface_sdk.FaceEncoder.encode_video` (else ``None``).
    """

    def __init__(self, path: str, frame: int | None, reason: str) -> None:
        where = "cannot be opened as a video" if frame is None else f"stopped decoding at frame {frame}"
        super().__init__(f"{path}: {where}: {reason}")
        self.path = path
        self.frame = frame
        self.reason = reason
        self.partial: VideoEncoding | None = None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded, upright frame: its index in the video (from 0), its time in seconds from the first
    frame, RGB uint8 (H, W, 3), its shot (:mod:`latentface_sdk.shots`: 0 until the first cut) and the
    stream time of the video's first frame (``start_time``: ``time + start_time`` is the frame's time in
    the stream, as FFmpeg reports it)."""

    index: int
    time: float
    image: np.ndarray
    shot: int = 0
    start_time: float = 0.0


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError(f"reading video needs PyAV: {VIDEO_EXTRA}") from exc
    return av


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as it is meant to be seen, from its display rotation (PyAV's ``VideoFrame.rotation``:
    degrees the stored picture is turned counter-clockwise for display; a portrait phone video stores
    landscape pictures with -90). Quarter turns only; other angles round to the nearest quarter."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def sample_times(every: int | None, fps: float | None) -> Callable[[int, float], bool]:
    """A predicate ``keep(index, time)``: every ``every``-th frame, or the first frame at or after each
    tick of ``fps`` per second (the video's own frames; none is invented). Neither given: every frame."""
    if every is not None and fps is not None:
        raise ValueError("give every or fps, not both")
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (got {every!r})")
        return lambda index, _time: index % every == 0
    if fps is not None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number (got {fps!r})")
        step = 1.0 / float(fps)
        next_tick = [0.0]

        def keep(_index: int, time: float) -> bool:
            if time + 1e-6 < next_tick[0]:
                return False
            next_tick[0] = (math.floor(time / step + 1e-6) + 1) * step
            return True

        return keep
    return lambda _index, _time: True


def read_frames(path: str | os.PathLike[str], *, every: int | None = None, fps: float | None = None,
                on_frame: Callable[[int], None] | None = None,
                cut_threshold: float | None = CUT_THRESHOLD) -> Iterator[VideoFrame]:
    """Decode ``path`` frame by frame and yield the sampled frames, upright, as RGB arrays.

    ``every``: keep every N-th frame; ``fps``: keep about this many frames per second (see
    :func:`sample_times`); neither: every frame. Times count from the first frame (``VideoFrame.time``
    is 0 there; the stream's own start offset is ``VideoFrame.start_time``). Every decoded frame, sampled
    or not, goes through a :class:`~latentface_sdk.shots.ShotDetector` (a 24 x 24 thumbnail; a cut is a
    :func:`~latentface_sdk.shots.frame_change` of at least ``cut_threshold``, ``None``: no cuts), so each
    frame carries its ``shot``. ``on_frame(n)`` is called with the number of frames decoded so far (for a
    progress bar). Raises :class:`VideoDecodeError` naming the file and the frame when the file is no
    video or stops decoding part way (the frames before it have been yielded).
    """
    av = _av()
    name = os.fspath(path)
    keep = sample_times(every, fps)
    if cut_threshold is not None and not (isinstance(cut_threshold, (int, float))
                                          and not isinstance(cut_threshold, bool) and cut_threshold > 0):
        raise ValueError(f"cut_threshold must be a positive number or None (got {cut_threshold!r})")
    shots = ShotDetector(cut_threshold)
    thumbnails = av.video.reformatter.VideoReformatter()  # one scaler for every frame: 3x faster
    if not Path(name).is_file():
        raise VideoDecodeError(name, None, "no such file")
    try:
        container = av.open(name)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(name, None, str(exc) or type(exc).__name__) from exc
    with container:
        if not container.streams.video:
            raise VideoDecodeError(name, None, "the file holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        index = 0
        start: float | None = None
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (av.FFmpegError, ValueError, OSError) as exc:
                raise VideoDecodeError(name, index, str(exc) or type(exc).__name__) from exc
            if frame.time is not None:
                t = float(frame.time)
            else:
                t = index / rate if rate else float(index)
            if start is None:
                start = t if frame.time is not None else 0.0
            t -= start
            shot = shots.shot
            if cut_threshold is not None:
                thumb = thumbnails.reformat(frame, width=THUMBNAIL, height=THUMBNAIL, format="rgb24",
                                            interpolation="AREA").to_ndarray()
                shot = shots.update(thumb)
            if keep(index, t):
                image = frame.to_ndarray(format="rgb24")
                yield VideoFrame(index, t, upright(image, float(getattr(frame, "rotation", 0) or 0)), shot,
                                 start)
            index += 1
            if on_frame is not None:
                on_frame(index)
        declared = int(stream.frames or 0)
        if declared and index < declared * 0.9:  # the container promised more frames than it held
            raise VideoDecodeError(name, index, f"the file ends after {index} of its {declared} frames "
                                   "(truncated?)")
        duration = container.duration / 1e6 if container.duration else 0.0  # in AV_TIME_BASE units
        if not declared and rate and duration > 1.0 and index / rate < 0.9 * duration:
            raise VideoDecodeError(name, index,
                                   f"the file ends at {index / rate:.2f} s of its {duration:.2f} s "
                                   "(truncated?)")


def frame_count(path: str | os.PathLike[str]) -> int | None:
    """The number of frames the container declares (for a progress bar); ``None`` when unknown or
    unreadable."""
    try:
        with _av().open(os.fspath(path)) as container:
            streams = container.streams.video
            return int(streams[0].frames) or None if streams else None
    except Exception:  # noqa: BLE001 - the reader reports a file it cannot open, with the reason
        return None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (N, 4) and ``b`` (M, 4), ``x1, y1, x2, y2`` -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(out, nan=0.0)


def _unit_rows(x: np.ndarray | None, n: int) -> np.ndarray | None:
    """(n, D) float64 unit rows of ``x`` (NaN rows stay NaN: faces without an identity), or None."""
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(n, x.shape[-1] if x.ndim else 0)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, x / norm, np.nan)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


@dataclass
class FaceTracker:
    """Links faces across sampled frames into tracks, each meant to hold one person.

    A face continues a live track (one seen within ``max_gap`` sampled frames) when its box overlaps the
    track's last box by IoU >= ``min_iou`` and, with identities (``min_similarity`` set and an embedding
    per face), the cosine of its identity embedding to the track's mean embedding is >= ``min_similarity``;
    pairs are matched greedily, best ``IoU + cosine`` first.

    Within a shot a face that overlaps no track may re-join a track by identity although its box moved
    (a fast move, or the face lost for a few frames): the track was last seen up to ``rejoin_gap``
    sampled frames before, the face's cosine to it is >= ``rejoin_similarity`` (default:
    ``min_similarity``) and its box centre is within ``rejoin_reach`` face widths per sampled frame since
    then of the track's last box. The reach matters: the identity embedding tells two people apart across
    photos far better than within one shot, where light and camera are shared (docs/video-and-3d.md), so
    a face on the other side of the picture is not taken for the lost one. Any other face starts a new
    track. A new ``shot`` (:mod:`latentface_sdk.shots`) ends every track: no track crosses a cut. Track
    ids count from 0 in order of appearance.

    Without identities (``min_similarity=None``, or :meth:`update` given no embeddings) it is the plain
    IoU tracker; a face whose embedding is NaN (no identity) is linked by its box alone.
    """

    min_iou: float = 0.3
    max_gap: int = 2
    min_similarity: float | None = None
    rejoin_gap: int = 10
    rejoin_similarity: float | None = None
    rejoin_reach: float = 1.0
    _boxes: dict[int, np.ndarray] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)
    _sums: dict[int, np.ndarray] = field(default_factory=dict)
    _shot: int | None = None
    _next: int = 0

    def _mean(self, track: int) -> np.ndarray | None:
        total = self._sums.get(track)
        if total is None:
            return None
        norm = float(np.linalg.norm(total))
        return total / norm if norm > 0 else None

    def _cosines(self, tracks: list[int], emb: np.ndarray | None, n: int) -> np.ndarray:
        """(T, n) cosine of each face to each track's mean embedding; NaN where either has none."""
        out = np.full((len(tracks), n), np.nan)
        if emb is None:
            return out
        for i, t in enumerate(tracks):
            mean = self._mean(t)
            if mean is not None and mean.shape[0] == emb.shape[1]:
                out[i] = emb @ mean
        return out

    def update(self, sample: int, boxes: np.ndarray, embeddings: np.ndarray | None = None,
               shot: int | None = None) -> np.ndarray:
        """Track ids (K,) of the faces of sampled frame number ``sample`` (0, 1, 2, ...): boxes (K, 4),
        unit identity embeddings (K, D) (NaN rows: unknown), the frame's shot index."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        if shot is not None and shot != self._shot:
            if self._shot is not None:  # a cut: every track ends here
                self._boxes.clear()
                self._seen.clear()
                self._sums.clear()
            self._shot = shot
        use_id = self.min_similarity is not None and embeddings is not None
        emb = _unit_rows(embeddings, n) if use_id else None
        ids = np.full(n, -1, dtype=np.int64)
        used: set[int] = set()
        live = [t for t, s in self._seen.items() if s < sample and sample - s <= self.max_gap + 1]
        if live and n:
            iou = box_iou(np.stack([self._boxes[t] for t in live]), boxes)
            cos = self._cosines(live, emb, n)
            known = ~np.isnan(cos)
            ok = iou >= self.min_iou
            if use_id:
                assert self.min_similarity is not None
                ok &= ~known | (np.nan_to_num(cos, nan=1.0) >= self.min_similarity)
            score = np.where(ok, iou + np.nan_to_num(cos, nan=0.0), -np.inf)
            self._assign(score, live, ids, used)
        rejoin = self.min_similarity if self.rejoin_similarity is None else self.rejoin_similarity
        if emb is not None and rejoin is not None and (ids < 0).any():
            old = [t for t, s in self._seen.items()
                   if s < sample and sample - s <= self.rejoin_gap + 1 and t not in used]
            if old:
                cos = self._cosines(old, emb, n)
                cos[:, ids >= 0] = np.nan
                last = np.stack([self._boxes[t] for t in old])
                gap = sample - np.asarray([self._seen[t] for t in old], dtype=np.float64)
                dist = np.linalg.norm(_centres(last)[:, None, :] - _centres(boxes)[None, :, :], axis=2)
                width = np.maximum((last[:, 2] - last[:, 0])[:, None], (boxes[:, 2] - boxes[:, 0])[None, :])
                near = dist <= self.rejoin_reach * gap[:, None] * width
                score = np.where(near & (np.nan_to_num(cos, nan=-np.inf) >= rejoin), cos, -np.inf)
                self._assign(score, old, ids, used)
        for i in range(n):
            if ids[i] < 0:
                ids[i] = self._next
                self._next += 1
            t = int(ids[i])
            self._boxes[t] = boxes[i]
            self._seen[t] = sample
            if emb is not None and np.isfinite(emb[i]).all():
                self._sums[t] = self._sums.get(t, 0.0) + emb[i]
        horizon = max(self.max_gap, self.rejoin_gap) + 1
        for t in [t for t, s in self._seen.items() if sample - s > horizon]:  # past re-joining: forget
            del self._seen[t], self._boxes[t]
            self._sums.pop(t, None)
        return ids

    @staticmethod
    def _assign(score: np.ndarray, tracks: list[int], ids: np.ndarray, used: set[int]) -> None:
        """Greedy matching, best score first, of pairs with a finite score (tracks x faces)."""
        order = np.dstack(np.unravel_index(np.argsort(-score, axis=None, kind="stable"), score.shape))[0]
        for ti, bi in order:
            if not np.isfinite(score[ti, bi]):
                break
            if tracks[ti] in used or ids[bi] >= 0:
                continue
            used.add(tracks[ti])
            ids[bi] = tracks[ti]


#: The tracker's former name (box overlap alone is ``FaceTracker()`` without identities).
IoUTracker = FaceTracker


@dataclass(frozen=True, repr=False)
class VideoEncoding:
    """One row per face per sampled frame of one video.

    Attributes:
        path: the video file.
        frame: ``(N,)`` int64, the frame index of each row (from 0, in decode order).
        time: ``(N,)`` float64, the frame's time in seconds from the video's first frame (0.0 there).
        track: ``(N,)`` int64, the track id: one person within one shot (:class:`FaceTracker`); a track
            never continues across a cut, so the same person in two shots has two track ids.
        encoding: the rows' :class:`~latentface_sdk.Encoding` (latents, boxes in the upright frame's
            pixels, scores); its ``names`` are ``"<path>#<frame>"`` and ``source`` the frame index.
        disentangled: with ``features="disentangle"``, the rows' :class:`~latentface_sdk.Disentangled`.
        frames_decoded: frames read from the file; ``frames_sampled``: frames encoded.
        shot: ``(N,)`` int64, the shot of each row's frame (0 until the first cut, then 1, ...;
            :mod:`latentface_sdk.shots`).
        identity_embedding: ``(N, D)`` float32 unit identity embeddings the tracks were linked with
            (:meth:`~latentface_sdk.FaceEncoder.identity_from_latents`; cosine ``a @ b`` compares two
            rows, e.g. two tracks' faces across shots), or ``None`` when the model has no identity head.
        start_time: the stream time in seconds of the video's first frame (the offset FFmpeg reports and
            ``time`` is measured from; ``time + start_time`` is the stream time).
    """

    path: str
    frame: Tensor
    time: Tensor
    track: Tensor
    encoding: Encoding
    disentangled: Disentangled | None = None
    frames_decoded: int = 0
    frames_sampled: int = 0
    shot: Tensor = None  # type: ignore[assignment]  # zeros when not given (__post_init__)
    identity_embedding: Tensor | None = None
    start_time: float = 0.0

    def __post_init__(self) -> None:
        if self.shot is None:
            object.__setattr__(self, "shot", torch.zeros(len(self), dtype=torch.int64))

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def __repr__(self) -> str:
        tracks = int(self.track.unique().numel()) if len(self) else 0
        shots = int(self.shot.unique().numel()) if len(self) else 0
        return (f"VideoEncoding(path={self.path!r}, faces={len(self)}, tracks={tracks}, shots={shots}, "
                f"frames_sampled={self.frames_sampled}, frames_decoded={self.frames_decoded})")

    def numpy(self) -> dict[str, np.ndarray]:
        """Every per-row field as numpy arrays (the :meth:`Encoding.numpy` keys plus ``frame``, ``time``,
        ``track``, ``shot``, ``identity`` when the model has an identity head, and the disentangled parts
        with ``features="disentangle"``)."""
        out = (self.disentangled or self.encoding).numpy()
        out.update(frame=self.frame.numpy().astype(np.int64), time=self.time.numpy().astype(np.float64),
                   track=self.track.numpy().astype(np.int64), shot=self.shot.numpy().astype(np.int64))
        if self.identity_embedding is not None:
            out["identity_embedding"] = self.identity_embedding.numpy().astype(np.float32)
        return out

    def track_means(self) -> dict[str, np.ndarray]:
        """One row per track: ``track``, ``shot``, ``faces`` (rows), ``start``/``end`` (seconds) and the mean
        of each float feature of :meth:`numpy` over the track's rows (the mean pose of a track is its mean
        head pose; its ``identity_embedding`` is the unit mean embedding)."""
        return track_means(self.numpy())


def track_means(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per track of video rows (:meth:`VideoEncoding.numpy`'s columns): ``track``, ``faces``,
    ``start``/``end`` in seconds, ``shot`` (when the rows have one) and the mean of every 2-D float column
    but ``boxes`` (``identity_embedding`` scaled back to unit length)."""
    ids = np.unique(arrays["track"])
    rows = [arrays["track"] == t for t in ids]
    out: dict[str, np.ndarray] = {"track": ids,
                                  "faces": np.asarray([int(r.sum()) for r in rows], dtype=np.int64),
                                  "start": np.asarray([arrays["time"][r].min() for r in rows],
                                                      dtype=np.float64),
                                  "end": np.asarray([arrays["time"][r].max() for r in rows],
                                                    dtype=np.float64)}
    if "shot" in arrays:
        out["shot"] = np.asarray([int(arrays["shot"][r].min()) for r in rows], dtype=np.int64)
    for key, value in arrays.items():
        if key == "boxes" or value.dtype.kind != "f" or value.ndim != 2:
            continue
        out[key] = (np.stack([value[r].mean(axis=0) for r in rows]) if rows
                    else np.zeros((0, value.shape[1]), value.dtype))
    if "identity_embedding" in out and len(ids):
        norm = np.linalg.norm(out["identity_embedding"], axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["identity_embedding"] = (out["identity_embedding"] / norm).astype(np.float32)
    return out


def _cat(values: Sequence[Any]) -> Any:
    first = values[0]
    if isinstance(first, Tensor):
        return torch.cat(list(values))
    if isinstance(first, list):
        return [x for v in values for x in v]
    if first is None:
        return None
    if isinstance(first, (Encoding, Disentangled)):
        return type(first)(**{k: _cat([getattr(v, k) for v in values]) for k in vars(first)})
    return first


def _take(result: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` (int indices) of an Encoding/Disentangled (lists and nested results alike)."""
    idx = torch.as_tensor(rows, dtype=torch.long)
    fields: dict[str, Any] = {}
    for k, v in vars(result).items():
        if isinstance(v, Tensor):
            fields[k] = v[idx]
        elif isinstance(v, list):
            fields[k] = [v[int(i)] for i in rows]
        elif isinstance(v, (Encoding, Disentangled)):
            fields[k] = _take(v, rows)
        else:
            fields[k] = v
    return type(result)(**fields)


def concat_video(parts: Sequence[VideoEncoding]) -> VideoEncoding:
    """Consecutive parts of one video's rows as one :class:`VideoEncoding`."""
    last = parts[-1]
    return VideoEncoding(
        path=last.path,
        frame=torch.cat([p.frame for p in parts]),
        time=torch.cat([p.time for p in parts]),
        track=torch.cat([p.track for p in parts]),
        encoding=_cat([p.encoding for p in parts]),
        disentangled=_cat([p.disentangled for p in parts]),
        frames_decoded=last.frames_decoded,
        frames_sampled=last.frames_sampled,
        shot=torch.cat([p.shot for p in parts]),
        identity_embedding=_cat([p.identity_embedding for p in parts]),
        start_time=parts[0].start_time,
    )


@dataclass(frozen=True)
class VideoSettings:
    """The checked options of :meth:`~latentface_sdk.FaceEncoder.encode_video` (see there); an unknown
    option is a ``TypeError``, a bad value a ``ValueError``."""

    every: int | None = None
    fps: float | None = None
    features: Literal["encode", "disentangle"] = "encode"
    faces: Literal["largest", "all"] = "all"
    frames_per_batch: int = 32
    batch_size: int = 64
    min_iou: float = 0.3
    max_gap: int = 2
    min_similarity: float | None = None
    cut_threshold: float | None = CUT_THRESHOLD
    seed: int | None = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.features not in ("encode", "disentangle"):
            raise ValueError(f"features must be 'encode' or 'disentangle' (got {self.features!r})")
        per = self.frames_per_batch
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise ValueError(f"frames_per_batch must be a positive int (got {per!r})")
        similarity = self.min_similarity
        if similarity is not None and (isinstance(similarity, bool)
                                       or not isinstance(similarity, (int, float))
                                       or not -1.0 <= float(similarity) <= 1.0):
            raise ValueError(f"min_similarity must be a cosine in [-1, 1] or None (got {similarity!r})")


def frame_groups(path: str | os.PathLike[str], *, every: int | None = None, fps: float | None = None,
                 frames_per_batch: int = 32, on_frame: Callable[[int], None] | None = None,
                 cut_threshold: float | None = CUT_THRESHOLD) -> Iterator[tuple[list[VideoFrame], int]]:
    """The sampled frames of ``path`` (:func:`read_frames`) in groups of ``frames_per_batch``, each with
    the number of frames decoded so far. A decoding error is raised after the group of the frames read
    before it has been yielded."""
    decoded = [0]

    def count(n: int) -> None:
        decoded[0] = n
        if on_frame is not None:
            on_frame(n)

    group: list[VideoFrame] = []
    try:
        for frame in read_frames(path, every=every, fps=fps, on_frame=count, cut_threshold=cut_threshold):
            group.append(frame)
            if len(group) >= frames_per_batch:
                yield group, decoded[0]
                group = []
    except VideoDecodeError:
        if group:
            yield group, decoded[0]
        raise
    if group:
        yield group, decoded[0]


class VideoParts:
    """Turns groups of sampled frames and their encoder rows into :class:`VideoEncoding` parts: rows
    without a face dropped, track ids linked across groups by ``tracker`` (which ends every track at a
    shot cut), frame index, time and shot per row."""

    def __init__(self, path: str, tracker: FaceTracker | None = None) -> None:
        self.path = path
        self.tracker = tracker or FaceTracker()
        self.sampled = 0

    def add(self, frames: Sequence[VideoFrame], result: Encoding | Disentangled, identity: Tensor | None,
            decoded: int) -> VideoEncoding:
        """The part of ``frames`` (in order), whose faces are the rows of ``result`` (``source``: the
        frame's position in ``frames``); ``identity``: the rows' unit identity embeddings ``(N, D)`` (NaN
        where not ok) that the tracker links faces with and the rows keep, or None; ``decoded``: frames
        decoded so far."""
        enc = result if isinstance(result, Encoding) else result.encoding
        source = enc.source.numpy()
        ok = enc.ok.numpy().astype(bool)
        boxes = enc.boxes.numpy()
        emb = identity.float().cpu().numpy() if identity is not None else None
        tracks = np.full(len(enc), -1, dtype=np.int64)
        for j, frame in enumerate(frames):  # frames in order, so tracks follow time
            rows = np.flatnonzero((source == j) & ok)
            tracks[rows] = self.tracker.update(self.sampled + j, boxes[rows],
                                               None if emb is None else emb[rows], frame.shot)
        self.sampled += len(frames)
        keep = np.flatnonzero(ok)
        kept = _take(result, keep)
        kept_enc = kept if isinstance(kept, Encoding) else kept.encoding
        picked = [frames[int(s)] for s in source[keep]]
        index = np.asarray([f.index for f in picked], dtype=np.int64)
        kept_enc = _replace_rows(kept_enc, [f"{self.path}#{f}" for f in index], torch.as_tensor(index))
        return VideoEncoding(
            path=self.path, frame=torch.as_tensor(index),
            time=torch.as_tensor(np.asarray([f.time for f in picked], dtype=np.float64)),
            track=torch.as_tensor(tracks[keep]), encoding=kept_enc,
            disentangled=None if isinstance(kept, Encoding) else _with_encoding(kept, kept_enc),
            frames_decoded=decoded, frames_sampled=self.sampled,
            shot=torch.as_tensor(np.asarray([f.shot for f in picked], dtype=np.int64)),
            identity_embedding=(None if identity is None
                                else identity.float().cpu()[torch.as_tensor(keep, dtype=torch.long)]),
            start_time=frames[0].start_time,
        )


def _replace_rows(enc: Encoding, names: list[str], source: Tensor) -> Encoding:
    fields = dict(vars(enc))
    fields.update(names=names, source=source.to(torch.int64))
    return Encoding(**fields)


def _with_encoding(result: Disentangled, enc: Encoding) -> Disentangled:
    fields = dict(vars(result))
    fields["encoding"] = enc
    return Disentangled(**fields)


def empty_video(path: str, features: str, latent_dim: int, frames_decoded: int = 0,
                frames_sampled: int = 0, identity_dim: int = 0) -> VideoEncoding:
    """A result with no rows (a video without faces); ``identity_dim`` > 0 gives it an empty ``identity``
    column of that width."""
    z = torch.zeros(0, latent_dim)
    enc = Encoding(texture=z, shape=z.clone(), pose=torch.zeros(0, 6), light=torch.zeros(0, 4),
                   boxes=torch.zeros(0, 4), scores=torch.zeros(0), ok=torch.zeros(0, dtype=torch.bool),
                   errors=[], names=[], source=torch.zeros(0, dtype=torch.int64))
    dis = None
    if features == "disentangle":
        dis = Disentangled(texture=z, shape=z.clone(), identity_texture=z.clone(), identity_shape=z.clone(),
                           expression_texture=z.clone(), expression_shape=z.clone(), encoding=enc)
    empty = torch.zeros(0, dtype=torch.int64)
    return VideoEncoding(path=path, frame=empty, time=torch.zeros(0, dtype=torch.float64),
                         track=empty.clone(), encoding=enc, disentangled=dis, frames_decoded=frames_decoded,
                         frames_sampled=frames_sampled, shot=empty.clone(),
                         identity_embedding=torch.zeros(0, identity_dim) if identity_dim > 0 else None)
