"""Windows: the one home for cutting clips and images into fixed-length pieces (pure numpy).

Every place that cuts windows calls this module: spec2img's crops and tiles (in samples), training
crops, validation, head-only features and prediction (in image columns), ``classify tag`` (in
samples) and the report's time windows (in seconds).

Units. ``samples = round(seconds * sr)``. An image has one column per STFT hop: a window of ``w``
columns spans ``(w - 1) * hop_length / sr`` seconds (first to last frame centre), and
``seconds_to_columns`` is its inverse, rounded up. *Window seconds* always means the length of
audio one window covers: spec2img's ``tile`` / ``duration``, ``classify tag``'s window, or
``columns_to_seconds(crop_width)`` for a model window.

Start rule (:func:`tile_starts`): windows of ``size`` every ``hop`` from 0; if the last one would
stop short of the end, one more is aligned to the end. A clip shorter than one window gives one
window, placed by ``pad`` with the padding rule below.

Padding rule (:func:`crop_offset`, :func:`take`): a start may be negative (that many zeros come
before the clip) and a window may run past the end (zeros after). A clip shorter than the window
is padded where the crop would have taken it: after the clip for ``"start"``, equally on both
sides for ``"center"`` (the extra zero after), at a seeded random split for ``"random"``.
spec2img pads its tiles like ``"start"``; the classify windows (validation, prediction, head-only
features) centre a narrow image, as training's validation crops do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

CROPS = ("start", "center", "random")


class IntegerSource(Protocol):
    """Anything with numpy's ``Generator.integers(low, high)`` (``high`` exclusive)."""

    def integers(self, low: int, high: int) -> int: ...


# ----------------------------------------------------------------------------- unit conversions
def seconds_to_samples(seconds: float, *, sr: float) -> int:
    """Samples in ``seconds`` at ``sr`` Hz, rounded to the nearest sample."""
    return int(round(seconds * sr))


def seconds_to_columns(seconds: float, *, sr: float, hop_length: int) -> int:
    """Image columns (STFT frames) a window of ``seconds`` needs: ``ceil(seconds * sr / hop_length) + 1``."""
    return int(math.ceil(seconds * sr / hop_length)) + 1


def columns_to_seconds(columns: int | np.ndarray, *, sr: float, hop_length: int) -> float | np.ndarray:
    """Seconds of audio a window of ``columns`` columns spans: ``(columns - 1) * hop_length / sr``."""
    return (columns - 1) * hop_length / sr


def column_offset_seconds(column: int | np.ndarray, *, sr: float, hop_length: int) -> float | np.ndarray:
    """Time of column ``column`` (its frame centre) from the image's first column, in seconds."""
    return column * hop_length / sr


# ----------------------------------------------------------------------------- one window
def crop_offset(n: int, *, size: int, crop: str, rng: IntegerSource | None = None) -> int:
    """Start of a ``size`` window cut from ``n`` samples/columns by ``crop`` (one of :data:`CROPS`).

    Negative when ``n < size``: that many zeros are padded before the clip (see the module
    docstring). ``"random"`` draws from ``rng`` (default ``np.random.default_rng(0)``).
    """
    slack = n - size
    if crop == "start":
        return 0
    if crop == "center":
        return slack // 2 if slack >= 0 else -((-slack) // 2)
    if crop != "random":
        raise ValueError(f"crop={crop!r}: choose one of {CROPS}")
    rng = rng or np.random.default_rng(0)
    return int(rng.integers(0, slack + 1)) if slack >= 0 else -int(rng.integers(0, -slack + 1))


def take(y: np.ndarray, *, start: int, size: int) -> np.ndarray:
    """``y[..., start:start + size]`` along the last axis, with zeros where that range lies outside ``y``."""
    n = y.shape[-1]
    if start >= 0 and start + size <= n:
        return y[..., start:start + size]
    out = np.zeros(y.shape[:-1] + (size,), dtype=y.dtype)
    lo, hi = max(start, 0), min(start + size, n)
    if hi > lo:
        out[..., lo - start:hi - start] = y[..., lo:hi]
    return out


def shift_start(start: int, shift: int, *, n: int, size: int) -> int:
    """``start`` moved by ``shift`` columns and kept inside (test-time augmentation crops).

    A window inside a longer clip moves by ``shift`` within ``[0, n - size]``; a clip narrower
    than the window moves by ``shift`` inside its zero canvas (``start`` decreases), staying whole.
    """
    slack = n - size
    if slack >= 0:
        return min(max(start + shift, 0), slack)
    return -min(max(-start + shift, 0), -slack)


# ----------------------------------------------------------------------------- many windows
def tile_starts(n: int, *, size: int, hop: int, pad: str = "start") -> list[int]:
    """Starts of the windows covering ``n`` samples/columns (the start rule of the module docstring).

    ``pad`` places the single window of a clip shorter than ``size`` (``"start"`` or ``"center"``).
    """
    if size < 1 or hop < 1:
        raise ValueError(f"size={size} and hop={hop} must be >= 1")
    if n <= size:
        return [crop_offset(n, size=size, crop=pad)]
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def default_hop(size: int) -> int:
    """Half a window, at least 1: the hop of classify's model windows."""
    return max(1, size // 2)


@dataclass(frozen=True)
class Windows:
    """Windows cut from several clips: window ``i`` is ``take(clip[owner[i]], start=starts[i], size=size)``.

    ``starts`` int64 ``(n,)`` (may be negative, see :func:`take`); ``owner`` int64 ``(n,)``, the
    index of each window's clip, non-decreasing; ``size`` in the clips' units.
    """

    starts: np.ndarray
    owner: np.ndarray
    size: int

    def __len__(self) -> int:
        return len(self.starts)

    def offsets(self, unit_seconds: float) -> np.ndarray:
        """Seconds from each window's clip start to the window's first unit of audio ``(n,)``."""
        return np.maximum(self.starts, 0) * unit_seconds

    def counts(self, n_clips: int) -> np.ndarray:
        """Windows per clip ``(n_clips,)``."""
        return np.bincount(self.owner, minlength=n_clips)

    def cut(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The windows of ``clips`` (arrays ``(..., n_i)``), each ``(..., size)``."""
        return [take(clips[o], start=int(s), size=self.size) for s, o in zip(self.starts, self.owner)]


def plan_windows(lengths: Sequence[int], *, size: int, hop: int | None = None,
                 pad: str = "center") -> Windows:
    """:class:`Windows` covering clips of ``lengths`` samples/columns by :func:`tile_starts`.

    ``hop`` defaults to :func:`default_hop`; ``pad="center"`` (classify's model windows) centres
    a clip narrower than ``size``.
    """
    hop = default_hop(size) if hop is None else hop
    starts, owner = [], []
    for i, n in enumerate(lengths):
        s = tile_starts(int(n), size=size, hop=hop, pad=pad)
        starts.extend(s)
        owner.extend([i] * len(s))
    return Windows(np.asarray(starts, dtype=np.int64), np.asarray(owner, dtype=np.int64), int(size))


def image_seconds(*, tile: float | None, duration: float | None) -> float | None:
    """Window seconds of a spec2img image: ``tile`` if tiled, else the crop ``duration``, else None
    (images keep the clip's length)."""
    if tile:
        return float(tile)
    return float(duration) if duration else None
