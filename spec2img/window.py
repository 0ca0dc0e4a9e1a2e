"""Fitting clips to a fixed length: crops, padding and overlapping tiles (pure, in samples).

Padding rule: a clip shorter than the window is padded with silence (zeros) placed where the
crop would have taken it: after the clip for ``crop="start"``, equally on both sides for
``"center"``, at a seeded random split for ``"random"``. Tiles: windows of ``size`` every ``hop``
samples from 0; if the last tile would stop short of the end, one more tile is aligned to the
end; a clip shorter than one tile gives one tile padded like ``crop="start"``.
"""

from __future__ import annotations

import numpy as np


def crop_offset(n: int, *, size: int, crop: str, rng: np.random.Generator | None = None) -> int:
    """Start of the crop (may be negative: that many zeros are padded before the clip)."""
    slack = n - size
    if crop == "start":
        return 0
    if crop == "center":
        return slack // 2 if slack >= 0 else -((-slack) // 2)
    rng = rng or np.random.default_rng(0)
    return int(rng.integers(0, slack + 1)) if slack >= 0 else -int(rng.integers(0, -slack + 1))


def take(y: np.ndarray, *, start: int, size: int) -> np.ndarray:
    """``y[start:start + size]`` with zeros where that range lies outside ``y``."""
    out = np.zeros(size, dtype=y.dtype)
    lo, hi = max(start, 0), min(start + size, y.size)
    if hi > lo:
        out[lo - start : hi - start] = y[lo:hi]
    return out


def tile_starts(n: int, *, size: int, hop: int) -> list[int]:
    """Starting samples of the tiles covering ``n`` samples (see module docstring)."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts
