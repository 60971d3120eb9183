"""Shot cuts in a video: where the picture changes at once (an edit), so that no face track crosses one.

A frame is summarised by a small :class:`FrameSignature` of a 24 x 24 grid of block colours: its
brightness layout (the blocks' luma, standardised to zero mean and unit spread, so that a light that
brightens, dims or tints the whole picture changes it little) and its colours (a 4 x 4 x 4 RGB histogram
of the blocks). Two frames differ by

* ``layout``: the mean absolute difference of the two layouts, the smallest over shifts of up to 2 cells
  (8% of the picture) each way, so that a pan or a shaking camera is not a cut;
* ``colour``: half the L1 distance of the histograms (0: the same colours, 1: none in common);

and :func:`frame_change` folds them into one score, ``max(layout / 0.5, min(layout / 0.3, colour / 0.2))``:
a cut where the layout changed a lot, or changed moderately while the colours changed too. A cut is a
score of at least :data:`CUT_THRESHOLD` (1.0).

The constants were chosen by measurement (``experiments/video_tracks.py cuts``; docs/video-and-3d.md,
"Shots and tracks"): of 2,345 hard cuts between framed stills (the shared photos and 60 CelebA faces) the
rule finds 99.7%, and of 13,280 frame pairs 1, 3, 6 and 10 frames apart within 52 shots without a cut
(pans, zooms, a shaking camera, flickering and tinted light, a face moving over a still background,
three real clips) it calls none a cut (the largest score 0.89, a hand-held shake).

:func:`shot_indices` is the pure form (a shot index per frame of a sequence); :class:`ShotDetector` the
streaming one that :func:`latentface_sdk.video.read_frames` runs on every decoded frame (not only the
sampled ones, so that sampling every N-th frame neither hides a cut nor compares frames far apart).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = ["CUT_THRESHOLD", "FrameSignature", "ShotDetector", "colour_change", "frame_change",
           "frame_signature", "is_cut", "layout_change", "shot_indices"]

#: A frame change score (:func:`frame_change`) at or above which two frames are on two sides of a cut.
CUT_THRESHOLD = 1.0
#: Layout change that is a cut on its own, and the smaller one that is a cut when the colours change too.
LAYOUT_CUT, LAYOUT_WITH_COLOUR = 0.5, 0.3
#: Colour change (histogram distance) that, with a layout change of :data:`LAYOUT_WITH_COLOUR`, is a cut.
COLOUR_CUT = 0.2
GRID, MAX_SHIFT, COLOUR_BINS = 24, 2, 4
_LUMA = np.array([0.299, 0.587, 0.114])


class FrameSignature(NamedTuple):
    """What a frame is compared by: ``layout`` (24, 24) standardised luma block means, ``colour`` (64,)
    histogram of the 24 x 24 block colours (4 levels per channel), summing to 1."""

    layout: np.ndarray
    colour: np.ndarray


def _block_means(image: np.ndarray, grid: int) -> np.ndarray:
    """Mean of each cell of a ``grid`` x ``grid`` partition of an (H, W, C) image, in [0, 1]."""
    h, w = image.shape[:2]
    if h < grid or w < grid:  # a tiny frame: repeat pixels up to the grid (a signature still exists)
        image = np.repeat(np.repeat(image, -(-grid // h), axis=0), -(-grid // w), axis=1)
        h, w = image.shape[:2]
    if h % grid == 0 and w % grid == 0:  # equal cells (the video reader's 96 x 96 thumbnails): faster
        rows = image.astype(np.float32).reshape(grid, h // grid, w, image.shape[2]).sum(axis=1)
        cells = rows.reshape(grid, grid, w // grid, image.shape[2]).sum(axis=2)
        return cells.astype(np.float64) / ((h // grid) * (w // grid) * 255.0)
    ys = (np.arange(grid) * h) // grid
    xs = (np.arange(grid) * w) // grid
    sums = np.add.reduceat(np.add.reduceat(image.astype(np.float64), ys, axis=0), xs, axis=1)
    counts = np.outer(np.diff(np.append(ys, h)), np.diff(np.append(xs, w)))
    return sums / counts[..., None] / 255.0


def frame_signature(image: np.ndarray) -> FrameSignature:
    """The :class:`FrameSignature` of an RGB (H, W, 3) uint8 frame (grey (H, W) is taken as RGB)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    cells = _block_means(image[..., :3], GRID)
    luma = cells @ _LUMA
    layout = (luma - luma.mean()) / (luma.std() + 0.02)  # a flat (black) frame stays near 0
    q = np.minimum((cells * COLOUR_BINS).astype(np.int64), COLOUR_BINS - 1)
    codes = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    colour = np.bincount(codes.ravel(), minlength=COLOUR_BINS**3) / codes.size
    return FrameSignature(layout, colour)


def layout_change(a: FrameSignature, b: FrameSignature, max_shift: int = MAX_SHIFT) -> float:
    """Mean absolute difference of two layouts, the smallest over shifts of up to ``max_shift`` cells."""
    g = a.layout.shape[0]
    best = np.inf
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            pa = a.layout[max(0, dy):g + min(0, dy), max(0, dx):g + min(0, dx)]
            pb = b.layout[max(0, -dy):g + min(0, -dy), max(0, -dx):g + min(0, -dx)]
            best = min(best, float(np.abs(pa - pb).mean()))
    return best


def colour_change(a: FrameSignature, b: FrameSignature) -> float:
    """Half the L1 distance of two colour histograms: 0 (same colours) to 1 (no colour in common)."""
    return 0.5 * float(np.abs(a.colour - b.colour).sum())


def _score(layout: float, colour: float) -> float:
    return max(layout / LAYOUT_CUT, min(layout / LAYOUT_WITH_COLOUR, colour / COLOUR_CUT))


def frame_change(a: FrameSignature, b: FrameSignature) -> float:
    """How much the picture changed between two frames: a cut at :data:`CUT_THRESHOLD` (1.0) or more."""
    return _score(layout_change(a, b), colour_change(a, b))


def is_cut(a: FrameSignature, b: FrameSignature, threshold: float = CUT_THRESHOLD) -> bool:
    """``frame_change(a, b) >= threshold``, skipping the shifted comparisons when the unshifted layout
    change already rules a cut out (the score only falls with the shifts): most frame pairs of a shot."""
    colour = colour_change(a, b)
    if _score(layout_change(a, b, max_shift=0), colour) < threshold:
        return False
    return _score(layout_change(a, b), colour) >= threshold


@dataclass
class ShotDetector:
    """Streaming cut detection: :meth:`update` takes the frames in order and returns each one's shot
    index (0 until the first cut, then 1, ...). ``threshold``: the :func:`frame_change` of a cut; ``None``
    never cuts (one shot)."""

    threshold: float | None = CUT_THRESHOLD
    shot: int = 0
    _last: FrameSignature | None = field(default=None, repr=False)

    def update(self, image: np.ndarray) -> int:
        """The shot index of the next frame (an RGB array)."""
        if self.threshold is None:
            return self.shot
        sig = frame_signature(image)
        if self._last is not None and is_cut(self._last, sig, self.threshold):
            self.shot += 1
        self._last = sig
        return self.shot


def shot_indices(images: Iterable[np.ndarray], threshold: float | None = CUT_THRESHOLD) -> np.ndarray:
    """The shot index (int64, from 0) of each frame of a sequence: a new shot after each cut, a frame whose
    :func:`frame_change` from the frame before is at least ``threshold``."""
    detector = ShotDetector(threshold)
    return np.asarray([detector.update(im) for im in images], dtype=np.int64)
