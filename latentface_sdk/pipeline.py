"""The path of every :class:`~latentface_sdk.FaceEncoder` call: inputs -> RGB -> faces -> 64x64 crops ->
stage-1 latents, ``batch_size`` inputs at a time, and back into one row per face (or per failed input).

* :func:`crop_inputs`: one batch of inputs converted (:mod:`latentface_sdk.images`), detected (MTCNN) and
  cropped with the model's crop policy (:func:`latentface_sdk.detection.crop_face`, the function the
  training data went through; :func:`~latentface_sdk.detection.crop_aligned` with ``detect=False``), as
  a :class:`CropBatch`: its :class:`Row` records and the crops of the rows that hold a face.
* :class:`FacePipeline`: runs the batches, encodes their crops, then the caller's typed per-batch
  ``work`` (identity sampling, rendering: :mod:`latentface_sdk.operations`), each batch under the
  thread setting of :mod:`latentface_sdk.threads`; results come back on the CPU in float32.
* :func:`assemble_encoding` and :meth:`CropBatch.scatter`: per-crop values back into one row each, NaN
  where a row failed.

The single/batch rules (a single bad input raises, a bad item of a list is a marked row) are applied
here, once, for every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import CropConfig
from .detection import FaceBox, FaceDetector, crop_aligned, crop_face, select_faces, square_box
from .errors import NoFaceError
from .images import ImageItem, convert_batches, convert_items, split_inputs
from .models.autoencoder import LatentAutoencoder, Latents
from .results import Encoding
from .threads import Threads, thread_scope

__all__ = ["CropBatch", "FacePolicy", "auto_decode_workers", "crops_to_input", "FacePipeline", "Row",
           "assemble_encoding", "crop_inputs", "encode_crops", "split_rows", "to_cpu"]

#: ``"largest"``: the largest face of each input; ``"all"``: every face, one row each.
FacePolicy: TypeAlias = Literal["largest", "all"]
T = TypeVar("T")


@dataclass
class Row:
    """One output row: a face, or an input that failed (``error`` set).

    ``method`` says how the row was made: ``"mtcnn"`` (a detected face; ``landmarks`` are MTCNN's five
    points in image pixels), ``"center"`` (the centred square), ``"noface"`` or ``"failed"`` (unreadable).
    """

    name: str
    source: int
    box: tuple[float, float, float, float] | None = None
    score: float = float("nan")
    error: str | None = None
    method: str = "mtcnn"
    landmarks: np.ndarray | None = None


@dataclass
class CropBatch:
    """The rows of a batch of inputs, the crops of its rows with a face, and (once encoded) their latents."""

    rows: list[Row]
    crop_rows: list[int]  # row index of each crop
    crops: np.ndarray  # uint8 (M, S, S, 3)
    latents: Latents | None = None  # (M, ...) float32 on the CPU after FacePipeline.run
    #: float64 (M, 4): each crop's square ``(x1, y1, x2, y2)`` in its source image's pixels
    squares: np.ndarray | None = None
    #: each crop's source RGB image (shared, not copied), kept until the batch's work has run: the photo
    #: textures of ``frontalize``/``mesh`` read it at more than the crop's resolution
    sources: list[np.ndarray] | None = None

    def scatter(self, values: Tensor | None, shape: tuple[int, ...]) -> Tensor:
        """``(len(rows), *shape)`` float32 CPU tensor: NaN, with the per-crop ``values`` in their rows."""
        out = torch.full((len(self.rows), *shape), float("nan"), dtype=torch.float32)
        if values is not None and self.crop_rows:
            out[torch.tensor(self.crop_rows, dtype=torch.long)] = values.detach().to("cpu", torch.float32)
        return out


def to_cpu(x: T) -> T:
    """A dataclass of tensors (or ``None`` fields) with every tensor detached, on the CPU, in float32."""
    values = {f.name: getattr(x, f.name) for f in fields(x)}  # type: ignore[arg-type]
    moved = {k: v.detach().to("cpu", torch.float32) if isinstance(v, Tensor) else v
             for k, v in values.items()}
    return type(x)(**moved)


def _no_face_message(name: str, crop: CropConfig) -> str:
    return (f"{name}: no face found (MTCNN: faces of at least {crop.min_face_size} px with score "
            f">= {crop.threshold}); for an image that is already a face crop, pass detect=False")


def crop_inputs(
    items: Sequence[Any], *, start: int, single: bool, detect: bool, faces: FacePolicy, crop: CropConfig,
    detect_batch: Callable[[list[np.ndarray]], list[list[FaceBox]]], max_pixels: int,
    fallback: Literal["center", "none"] = "none", converted: Sequence[ImageItem] | None = None,
) -> CropBatch:
    """Convert, detect and crop one batch of inputs (input ``k`` is named as input ``start + k``).

    ``single``: the call was for one input, which then raises instead of becoming a failed row
    (:class:`~latentface_sdk.errors.InvalidImageError`, :class:`~latentface_sdk.errors.NoFaceError`).
    ``fallback="center"``: an image without a face is centre-cropped instead (training and evaluation
    data, :func:`latentface_sdk.cropset.prepare_crops`). ``converted``: the items already converted
    (:func:`~latentface_sdk.images.convert_batches`, decoding ahead in threads); else they are converted here.
    """
    if converted is None:
        converted = convert_items(items, start=start, single=single, max_pixels=max_pixels)  # single: raises
    rgbs = {k: c.rgb for k, c in enumerate(converted) if c.rgb is not None}
    found: dict[int, list[FaceBox]] = {}
    if detect and rgbs:
        keys = list(rgbs)
        found = dict(zip(keys, detect_batch([rgbs[k] for k in keys]), strict=True))
    rows: list[Row] = []
    crops: list[np.ndarray] = []
    crop_rows: list[int] = []
    squares: list[tuple[float, float, float, float]] = []
    sources: list[np.ndarray] = []
    for k, item in enumerate(converted):
        name, source = item.name, start + k
        if item.rgb is None:
            rows.append(Row(name, source, error=str(item.error), method="failed"))
            continue
        rgb = item.rgb
        chosen = select_faces(found.get(k, []), faces) if detect else []
        if not detect or (not chosen and fallback == "center"):
            h, w = rgb.shape[:2]
            side = float(min(h, w))
            left, top = (w - side) / 2.0, (h - side) / 2.0
            crop_rows.append(len(rows))
            rows.append(Row(name, source, box=(left, top, left + side, top + side), method="center"))
            crops.append(crop_aligned(rgb, crop.size))
            squares.append((left, top, left + side, top + side))
            sources.append(rgb)
            continue
        if not chosen:
            if single:
                raise NoFaceError(_no_face_message(name, crop))
            rows.append(Row(name, source, error=_no_face_message(name, crop), method="noface"))
            continue
        for face in chosen:
            try:
                cut = crop_face(rgb, face.box, crop)
            except ValueError as exc:  # a degenerate box
                if single and len(chosen) == 1:
                    raise NoFaceError(f"{name}: {exc}") from exc
                rows.append(Row(name, source, box=face.box, score=face.score, error=f"{name}: {exc}",
                                method="noface"))
                continue
            crop_rows.append(len(rows))
            rows.append(Row(name, source, box=face.box, score=face.score, landmarks=face.landmarks))
            crops.append(cut)
            squares.append(square_box(face.box, crop.margin))
            sources.append(rgb)
    stacked = np.stack(crops) if crops else np.zeros((0, crop.size, crop.size, 3), dtype=np.uint8)
    return CropBatch(rows=rows, crop_rows=crop_rows, crops=stacked,
                     squares=np.asarray(squares, dtype=np.float64).reshape(-1, 4), sources=sources)


#: Decode threads on a GPU, where detection no longer hides decoding (``decode_workers=None`` there).
GPU_DECODE_WORKERS = 4


def auto_decode_workers(workers: int | None, device: torch.device | str) -> int:
    """``workers``, or for ``None``: :data:`GPU_DECODE_WORKERS` on CUDA, 0 elsewhere (on the 2-core CPU 2
    threads measured -5% to +7%, within the noise: the CPU path stays as it was)."""
    if workers is not None:
        return workers
    return GPU_DECODE_WORKERS if torch.device(device).type == "cuda" else 0


def crops_to_input(crops: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    """uint8 crops ``(M, S, S, 3)`` -> network input ``(M, 3, S, S)`` in ``[0, 1]``: a permuted view of
    the ``H x W x C`` pixels, so already channels-last (the layout the encoders' weights use)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2)
    return x.to(dtype) / 255.0


def encode_crops(autoencoder: LatentAutoencoder, crops: np.ndarray, batch_size: int) -> Latents:
    """Stage-1 latents of uint8 crops ``(M, S, S, 3)`` on the autoencoder's device and dtype."""
    p = next(autoencoder.parameters())
    parts: list[Latents] = []
    with torch.inference_mode():
        for s in range(0, crops.shape[0], batch_size):
            parts.append(autoencoder.encode(crops_to_input(crops[s:s + batch_size], p.device, p.dtype)))
    return concat_latents(parts)


def concat_latents(parts: Sequence[Latents]) -> Latents:
    """The rows of several :class:`Latents` as one (the only part itself when there is one)."""
    if len(parts) == 1:
        return parts[0]
    return Latents(*(torch.cat([getattr(q, f.name) for q in parts]) for f in fields(Latents)))


@dataclass
class FacePipeline:
    """Runs inputs through :func:`crop_inputs` and ``encoder`` a batch at a time.

    ``encoder(crops, batch_size)`` turns uint8 crops ``(M, S, S, 3)`` into :class:`Latents` (the PyTorch
    path: :func:`encode_crops` with the autoencoder bound; the ONNX path runs onnxruntime).
    ``detector`` is called for the (lazily built) MTCNN only when a batch needs detection; ``threads``
    is the CPU thread setting applied to every batch (:func:`latentface_sdk.threads.thread_scope`);
    ``decode_workers`` threads decode the next batches' files while a batch is detected and encoded
    (:func:`latentface_sdk.images.convert_batches`; 0: each batch is decoded when its turn comes).
    """

    crop: CropConfig
    encoder: Callable[[np.ndarray, int], Latents]
    detector: Callable[[], FaceDetector]
    threads: Threads = "auto"
    decode_workers: int = 0

    def run(
        self, images: Any, *, detect: bool, faces: FacePolicy, batch_size: int, progress: bool, desc: str,
        max_pixels: int, work: Callable[[CropBatch], T] | None = None, work_rows: int = 0,
    ) -> list[tuple[CropBatch, T | None]]:
        """Every batch with its ``work`` result: a dataclass of per-crop tensors, computed on the model's
        device under inference mode for batches with at least one face (``None`` otherwise), then moved
        to the CPU in float32 (:func:`to_cpu`), like the latents.

        ``work_rows``: ``work`` runs on the crops of consecutive batches together, at least that many at
        a time (the last group may hold fewer), and its result is split back into the batches. For work
        whose cost per call hardly grows with the rows (the RDMs read all their weights at every DDIM
        step) and whose memory is small; 0 (the default) runs it on each batch alone.
        """
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all' (got {faces!r})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
        items, single = split_inputs(images)
        done: list[tuple[CropBatch, T | None]] = []
        waiting: list[CropBatch] = []  # encoded batches whose work has not run yet

        def run_work() -> None:
            with_faces = [b for b in waiting if b.crops.shape[0]]
            results: dict[int, T] = {}
            if work is not None and with_faces:
                with torch.inference_mode():
                    result = to_cpu(work(_merge(with_faces)))
                sizes = [b.crops.shape[0] for b in with_faces]
                results = {id(b): r for b, r in zip(with_faces, split_rows(result, sizes), strict=True)}
            for b in waiting:
                b.sources = None  # the source images are not kept beyond the batch's work
                if b.latents is not None:
                    b.latents = to_cpu(b.latents)
                done.append((b, results.get(id(b))))
            waiting.clear()

        decoded = convert_batches(items, batch_size, single=single, max_pixels=max_pixels,
                                  workers=self.decode_workers)
        with thread_scope(self.threads) as refresh, closing(decoded), \
                tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
            for start, converted in decoded:
                batch = crop_inputs(items[start:start + batch_size], start=start, single=single,
                                    detect=detect, faces=faces, crop=self.crop,
                                    detect_batch=lambda r: self.detector().detect_batch(r),
                                    max_pixels=max_pixels, converted=converted)
                if batch.crops.shape[0]:
                    batch.latents = self.encoder(batch.crops, batch_size)
                waiting.append(batch)
                if sum(b.crops.shape[0] for b in waiting) >= work_rows:
                    run_work()
                bar.update(min(batch_size, len(items) - start))
                refresh()  # chosen again for the next batch: the load changes
            run_work()
        return done


def _merge(batches: Sequence[CropBatch]) -> CropBatch:
    """The crops and latents of encoded batches as one batch (for work on them; its rows are not used)."""
    if len(batches) == 1:
        return batches[0]
    parts = [b.latents for b in batches if b.latents is not None]
    assert len(parts) == len(batches)
    squares = [b.squares for b in batches]
    sources = [b.sources for b in batches]
    return CropBatch(rows=[], crop_rows=[], crops=np.concatenate([b.crops for b in batches]),
                     latents=concat_latents(parts),
                     squares=(np.concatenate([q for q in squares if q is not None])
                              if all(q is not None for q in squares) else None),
                     sources=([im for s in sources if s is not None for im in s]
                              if all(s is not None for s in sources) else None))


def split_rows(result: T, sizes: Sequence[int]) -> list[T]:
    """A dataclass of per-crop tensors (``None`` fields allowed) cut into consecutive parts of ``sizes``
    rows."""
    values = {f.name: getattr(result, f.name) for f in fields(result)}  # type: ignore[arg-type]
    cut = {k: v.split(list(sizes)) for k, v in values.items() if isinstance(v, Tensor)}
    return [type(result)(**{k: (cut[k][i] if k in cut else values[k]) for k in values})
            for i in range(len(sizes))]


def assemble_encoding(batches: Sequence[CropBatch], latent_dim: int) -> Encoding:
    """The rows of all batches as one :class:`~latentface_sdk.results.Encoding` (NaN where a row failed)."""
    widths = {"texture": (latent_dim,), "shape": (latent_dim,), "pose": (6,), "light": (4,)}
    parts: dict[str, list[Tensor]] = {k: [] for k in widths}
    boxes: list[Tensor] = []
    nan4 = (float("nan"),) * 4
    rows = [r for b in batches for r in b.rows]
    for b in batches:
        for key, out in parts.items():
            out.append(b.scatter(getattr(b.latents, key) if b.latents is not None else None, widths[key]))
        boxes.append(torch.tensor([r.box or nan4 for r in b.rows],
                                  dtype=torch.float32).reshape(len(b.rows), 4))
    ok: list[bool] = []
    for b in batches:
        good = set(b.crop_rows)
        ok.extend(i in good for i in range(len(b.rows)))
    return Encoding(
        texture=torch.cat(parts["texture"]), shape=torch.cat(parts["shape"]),
        pose=torch.cat(parts["pose"]), light=torch.cat(parts["light"]),
        boxes=torch.cat(boxes), scores=torch.tensor([r.score for r in rows], dtype=torch.float32),
        ok=torch.tensor(ok, dtype=torch.bool), errors=[r.error for r in rows], names=[r.name for r in rows],
        source=torch.tensor([r.source for r in rows], dtype=torch.long),
    )
