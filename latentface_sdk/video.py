"""Faces in video files: frames decoded by PyAV (streamed), sampled, encoded in batches, linked into tracks.

``pip install 'latentface-sdk[video]'`` (PyAV, which ships its own FFmpeg). The entry point is
:meth:`latentface_sdk.FaceEncoder.encode_video` (and ``latentface video clip.mp4 -o rows.npz``); this
module holds its parts:

* :func:`read_frames` decodes one video file frame by frame (never the whole file in memory), keeps every
  ``every``-th frame or ``fps`` frames per second, turns each upright (phone videos carry their rotation
  as a display matrix) and yields :class:`VideoFrame` (index, time in seconds, RGB array);
* :class:`IoUTracker` links the boxes of consecutive sampled frames into tracks (greedy IoU matching);
* :class:`VideoEncoding` is the typed result: one row per face per sampled frame with its frame index,
  time, track id and the same latents as :meth:`~latentface_sdk.FaceEncoder.encode`.

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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .results import Disentangled, Encoding

__all__ = ["IoUTracker", "VideoDecodeError", "VideoEncoding", "VideoFrame", "box_iou", "concat_video",
           "empty_video", "encode_frames", "frame_count", "read_frames", "sample_times", "track_means",
           "upright"]

VIDEO_EXTRA = "pip install 'latentface-sdk[video]'"


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
    """One decoded, upright frame: its index in the video (from 0), its time in seconds, RGB uint8 (H, W,
    3)."""

    index: int
    time: float
    image: np.ndarray


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
                on_frame: Callable[[int], None] | None = None) -> Iterator[VideoFrame]:
    """Decode ``path`` frame by frame and yield the sampled frames, upright, as RGB arrays.

    ``every``: keep every N-th frame; ``fps``: keep about this many frames per second (see
    :func:`sample_times`); neither: every frame. ``on_frame(n)`` is called with the number of frames
    decoded so far (for a progress bar). Raises :class:`VideoDecodeError` naming the file and the frame
    when the file is no video or stops decoding part way (the frames before it have been yielded).
    """
    av = _av()
    name = os.fspath(path)
    keep = sample_times(every, fps)
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
            if keep(index, t):
                image = frame.to_ndarray(format="rgb24")
                yield VideoFrame(index, t, upright(image, float(getattr(frame, "rotation", 0) or 0)))
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


@dataclass
class IoUTracker:
    """Links faces across sampled frames: a face continues the track whose last box overlaps it most
    (IoU >= ``min_iou``, greedy, best pairs first), if that track was seen within ``max_gap`` sampled
    frames; otherwise it starts a new track. Track ids count from 0 in order of appearance."""

    min_iou: float = 0.3
    max_gap: int = 2
    _boxes: dict[int, np.ndarray] = field(default_factory=dict)
    _seen: dict[int, int] = field(default_factory=dict)
    _next: int = 0

    def update(self, sample: int, boxes: np.ndarray) -> np.ndarray:
        """Track ids (K,) of the boxes (K, 4) of sampled frame number ``sample`` (0, 1, 2, ...)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        live = [t for t, s in self._seen.items() if sample - s <= self.max_gap + 1 and s < sample]
        if live and len(boxes):
            iou = box_iou(np.stack([self._boxes[t] for t in live]), boxes)
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
            used_t, used_b = set(), set()
            for ti, bi in order:
                if iou[ti, bi] < self.min_iou:
                    break
                if ti in used_t or bi in used_b:
                    continue
                used_t.add(int(ti))
                used_b.add(int(bi))
                ids[bi] = live[ti]
        for i in range(len(boxes)):
            if ids[i] < 0:
                ids[i] = self._next
                self._next += 1
            self._boxes[int(ids[i])] = boxes[i]
            self._seen[int(ids[i])] = sample
        return ids


@dataclass(frozen=True, repr=False)
class VideoEncoding:
    """One row per face per sampled frame of one video.

    Attributes:
        path: the video file.
        frame: ``(N,)`` int64, the frame index of each row (from 0, in decode order).
        time: ``(N,)`` float64, the frame's presentation time in seconds.
        track: ``(N,)`` int64, the track id (the same face across frames; :class:`IoUTracker`).
        encoding: the rows' :class:`~latentface_sdk.Encoding` (latents, boxes in the upright frame's
            pixels, scores); its ``names`` are ``"<path>#<frame>"`` and ``source`` the frame index.
        disentangled: with ``features="disentangle"``, the rows' :class:`~latentface_sdk.Disentangled`.
        frames_decoded: frames read from the file; ``frames_sampled``: frames encoded.
    """

    path: str
    frame: Tensor
    time: Tensor
    track: Tensor
    encoding: Encoding
    disentangled: Disentangled | None = None
    frames_decoded: int = 0
    frames_sampled: int = 0

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def __repr__(self) -> str:
        tracks = int(self.track.unique().numel()) if len(self) else 0
        return (f"VideoEncoding(path={self.path!r}, faces={len(self)}, tracks={tracks}, "
                f"frames_sampled={self.frames_sampled}, frames_decoded={self.frames_decoded})")

    def numpy(self) -> dict[str, np.ndarray]:
        """Every per-row field as numpy arrays (the :meth:`Encoding.numpy` keys plus ``frame``, ``time``,
        ``track``, and the disentangled parts with ``features="disentangle"``)."""
        out = (self.disentangled or self.encoding).numpy()
        out.update(frame=self.frame.numpy().astype(np.int64), time=self.time.numpy().astype(np.float64),
                   track=self.track.numpy().astype(np.int64))
        return out

    def track_means(self) -> dict[str, np.ndarray]:
        """One row per track: ``track``, ``faces`` (rows), ``start``/``end`` (seconds) and the mean of each
        float feature of :meth:`numpy` over the track's rows (the mean pose of a track is its mean head
        pose)."""
        return track_means(self.numpy())


def track_means(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per track of video rows (:meth:`VideoEncoding.numpy`'s columns): ``track``, ``faces``,
    ``start``/``end`` in seconds and the mean of every 2-D float column but ``boxes``."""
    ids = np.unique(arrays["track"])
    rows = [arrays["track"] == t for t in ids]
    out: dict[str, np.ndarray] = {"track": ids,
                                  "faces": np.asarray([int(r.sum()) for r in rows], dtype=np.int64),
                                  "start": np.asarray([arrays["time"][r].min() for r in rows],
                                                      dtype=np.float64),
                                  "end": np.asarray([arrays["time"][r].max() for r in rows],
                                                    dtype=np.float64)}
    for key, value in arrays.items():
        if key == "boxes" or value.dtype.kind != "f" or value.ndim != 2:
            continue
        out[key] = (np.stack([value[r].mean(axis=0) for r in rows]) if rows
                    else np.zeros((0, value.shape[1]), value.dtype))
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
    )


def encode_frames(
    path: str | os.PathLike[str],
    run: Callable[[list[np.ndarray]], Encoding | Disentangled],
    *,
    every: int | None = None,
    fps: float | None = None,
    frames_per_batch: int = 32,
    tracker: IoUTracker | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> Iterator[VideoEncoding]:
    """Stream ``path``: sampled frames in groups of ``frames_per_batch`` through ``run`` (an encoder
    call on a list of RGB arrays), yielding one :class:`VideoEncoding` part per group (rows without a face
    dropped, track ids linked across groups). A decoding error is raised after the part of the frames
    read before it has been yielded."""
    name = os.fspath(path)
    tracker = tracker or IoUTracker()
    state = {"decoded": 0, "sampled": 0, "samples": 0}

    def count(n: int) -> None:
        state["decoded"] = n
        if on_frame is not None:
            on_frame(n)

    def flush(batch: list[VideoFrame]) -> VideoEncoding:
        state["sampled"] += len(batch)
        result = run([f.image for f in batch])
        enc = result if isinstance(result, Encoding) else result.encoding
        source = enc.source.numpy()
        ok = enc.ok.numpy().astype(bool)
        boxes = enc.boxes.numpy()
        tracks = np.full(len(enc), -1, dtype=np.int64)
        for j in range(len(batch)):  # frames in order, so tracks follow time
            rows = np.flatnonzero((source == j) & ok)
            tracks[rows] = tracker.update(state["samples"] + j, boxes[rows])
        state["samples"] += len(batch)
        keep = np.flatnonzero(ok)
        kept = _take(result, keep)
        kept_enc = kept if isinstance(kept, Encoding) else kept.encoding
        frames = np.asarray([batch[int(s)].index for s in source[keep]], dtype=np.int64)
        times = np.asarray([batch[int(s)].time for s in source[keep]], dtype=np.float64)
        names = [f"{name}#{f}" for f in frames]
        kept_enc = _replace_rows(kept_enc, names, torch.as_tensor(frames))
        return VideoEncoding(
            path=name, frame=torch.as_tensor(frames), time=torch.as_tensor(times),
            track=torch.as_tensor(tracks[keep]), encoding=kept_enc,
            disentangled=None if isinstance(kept, Encoding) else _with_encoding(kept, kept_enc),
            frames_decoded=state["decoded"], frames_sampled=state["sampled"],
        )

    batch: list[VideoFrame] = []
    try:
        for frame in read_frames(name, every=every, fps=fps, on_frame=count):
            batch.append(frame)
            if len(batch) >= frames_per_batch:
                yield flush(batch)
                batch = []
    except VideoDecodeError:
        if batch:
            yield flush(batch)
        raise
    if batch:
        yield flush(batch)


def _replace_rows(enc: Encoding, names: list[str], source: Tensor) -> Encoding:
    fields = dict(vars(enc))
    fields.update(names=names, source=source.to(torch.int64))
    return Encoding(**fields)


def _with_encoding(result: Disentangled, enc: Encoding) -> Disentangled:
    fields = dict(vars(result))
    fields["encoding"] = enc
    return Disentangled(**fields)


def empty_video(path: str, features: str, latent_dim: int, frames_decoded: int = 0,
                frames_sampled: int = 0) -> VideoEncoding:
    """A result with no rows (a video without faces)."""
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
                         frames_sampled=frames_sampled)
