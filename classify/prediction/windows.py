"""Audio file -> the fixed-width uint8 windows a run's model was trained on (numpy, no torch).

Shared by the torch and the onnxruntime prediction paths, so it imports neither.

Rendering: a clip is rendered by spec2img with exactly the run's :class:`SpectrogramConfig`, as
``spec2img`` rendered the training images (one image per clip, per fixed-duration crop or per
tile, each scaled to its own maximum). Two cases would be wasteful or lossy and are streamed in
tiles instead (:func:`render_config`): a run trained on fixed-duration crops (``duration``) meets a
longer recording (every part of it should be scored, not just the centre crop), and a clip longer
than ``chunk_seconds`` (an hour of audio never sits in memory whole). Tiles overlap by one window.

Windows: each image is cut into windows of ``crop_width`` columns by :mod:`spec2img.window`'s
start rule (every ``crop_width // 2`` columns, the last one aligned to the end); an image narrower
than a window is centred in a zero canvas (silence at ``vmin``), as validation and training cut them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec2img import audio
from spec2img.config import SpectrogramConfig
from spec2img.render import iter_images
from spec2img.window import (column_offset_seconds, columns_to_seconds, default_hop, shift_start, take,
                             tile_starts)

CHUNK_SECONDS = 120.0


@dataclass(frozen=True)
class FileWindows:
    """All windows of one file: ``images`` uint8 ``(n, C, H, crop_width)``; ``start``/``end`` seconds."""

    images: np.ndarray
    start: np.ndarray
    end: np.ndarray
    duration: float


def tta_shifts(n: int, width: int) -> list[int]:
    """``n`` extra column shifts for TTA: +-width/8, +-width/4, ... alternating in sign."""
    step = max(1, width // 8)
    return [(1 if k % 2 == 0 else -1) * step * (k // 2 + 1) for k in range(n)]


def render_config(cfg: SpectrogramConfig, crop_width: int, duration: float, *,
                  chunk_seconds: float = CHUNK_SECONDS) -> SpectrogramConfig:
    """The config to render a clip of ``duration`` seconds with (see the module docstring)."""
    if cfg.tile is not None:
        return cfg
    if cfg.duration is not None:
        if duration <= cfg.duration:
            return cfg
        return cfg.replace(duration=None, tile=cfg.duration, tile_hop=cfg.duration / 2)
    if duration <= chunk_seconds:
        return cfg
    win = columns_to_seconds(crop_width, sr=cfg.sr, hop_length=cfg.hop_length)
    hop_s = column_offset_seconds(default_hop(crop_width), sr=cfg.sr, hop_length=cfg.hop_length)
    # a chunk holds a whole number of window hops plus one window, so columns stay on one grid
    k = max(1, math.floor((max(chunk_seconds, 2 * win) - win) / hop_s))
    tile_hop = k * hop_s
    return cfg.replace(tile=tile_hop + win, tile_hop=tile_hop)


def file_windows(path: Path, cfg: SpectrogramConfig, crop_width: int, *, tta: int = 0,
                 chunk_seconds: float = CHUNK_SECONDS) -> FileWindows:
    """Render ``path`` and cut it into model windows (plus ``tta`` shifted copies of each, which
    follow their window: rows ``i * (tta + 1) + j``). Raises spec2img's ``AudioError``."""
    path = Path(path)
    info = audio.probe(path)
    rcfg = render_config(cfg, crop_width, info.duration, chunk_seconds=chunk_seconds)
    hop = default_hop(crop_width)
    shifts = [0] + tta_shifts(tta, crop_width)
    crops, starts, last = [], [], -np.inf
    for offset, img in iter_images(path, rcfg, key=path.name, info=info):
        img = img[None] if img.ndim == 2 else np.moveaxis(img[..., :3], -1, 0)
        n = img.shape[-1]
        for s in tile_starts(n, size=crop_width, hop=hop, pad="center"):
            t0 = round(offset + column_offset_seconds(max(s, 0), sr=cfg.sr, hop_length=cfg.hop_length), 6)
            if rcfg.tile is not None and t0 <= last:  # overlapping tiles: keep the first rendering
                continue
            last = t0
            crops.extend(take(img, start=shift_start(s, d, n=n, size=crop_width), size=crop_width)
                         for d in shifts)
            starts.append(max(t0, 0.0))
    start = np.asarray(starts, dtype=np.float64)
    end = np.minimum(start + columns_to_seconds(crop_width, sr=cfg.sr, hop_length=cfg.hop_length),
                     info.duration)
    return FileWindows(np.ascontiguousarray(np.stack(crops)), start, end, info.duration)
