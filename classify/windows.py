"""Audio file -> the fixed-width uint8 windows a run's model was trained on (numpy, no torch).

Shared by the torch and the onnxruntime prediction paths, so it imports neither.

Rendering: a clip is rendered by spec2img with exactly the run's :class:`SpectrogramConfig`, as
``spec2img`` rendered the training images (one image per clip, per fixed-duration crop or per
tile, each scaled to its own maximum). Two cases would be wasteful or lossy and are streamed in
tiles instead (:func:`render_config`): a run trained on fixed-duration crops (``duration``) meets a
longer recording (every part of it should be scored, not just the centre crop), and a clip longer
than ``chunk_seconds`` (an hour of audio never sits in memory whole). Tiles overlap by one window.

Windows: each image is cut into windows of ``crop_width`` columns every ``crop_width // 2``
columns, the last one aligned to the end (as ``classify.model.window_starts``); an image narrower
than a window is centred in a zero canvas (silence at ``vmin``), exactly as the training code's
validation crops (``classify.data.CropDataset(train=False)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec2img import audio
from spec2img.config import SpectrogramConfig
from spec2img.convert import iter_images
from spec2img.window import tile_starts

CHUNK_SECONDS = 120.0


@dataclass(frozen=True)
class FileWindows:
    """All windows of one file: ``images`` uint8 ``(n, C, H, crop_width)``; ``start``/``end`` seconds."""

    images: np.ndarray
    start: np.ndarray
    end: np.ndarray
    duration: float


def window_starts(n: int, *, width: int, hop: int) -> list[int]:
    """Starts of windows of ``width`` columns covering ``n`` columns (last one end-aligned; one
    window when the image is narrower): spec2img's tile rule, in columns instead of samples."""
    return tile_starts(n, size=width, hop=hop)


def crop(img: np.ndarray, start: int, width: int, *, shift: int = 0) -> np.ndarray:
    """``img[..., start:start+width]``; narrower images centred in zeros (training's eval rule).

    ``shift`` moves the window (or, for a narrow image, the image inside its canvas) by that many
    columns, clamped to stay inside: the test-time augmentation crops.
    """
    w = img.shape[-1]
    slack = w - width
    if slack >= 0:
        s = min(max(start + shift, 0), slack)
        return img[..., s:s + width]
    pad = -slack
    left = min(max(pad // 2 + shift, 0), pad)
    out = np.zeros(img.shape[:-1] + (width,), dtype=img.dtype)
    out[..., left:left + w] = img
    return out


def tta_shifts(n: int, width: int) -> list[int]:
    """``n`` extra column shifts for TTA: +-width/8, +-width/4, ... alternating in sign."""
    step = max(1, width // 8)
    return [(1 if k % 2 == 0 else -1) * step * (k // 2 + 1) for k in range(n)]


def window_seconds(cfg: SpectrogramConfig, crop_width: int) -> float:
    """Audio seconds behind ``crop_width`` columns."""
    return (crop_width - 1) * cfg.hop_length / cfg.sr


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
    win = window_seconds(cfg, crop_width)
    hop_cols = max(1, crop_width // 2)
    # a chunk holds a whole number of window hops plus one window, so columns stay on one grid
    k = max(1, math.floor((max(chunk_seconds, 2 * win) - win) / (hop_cols * cfg.hop_length / cfg.sr)))
    tile_hop = k * hop_cols * cfg.hop_length / cfg.sr
    return cfg.replace(tile=tile_hop + win, tile_hop=tile_hop)


def file_windows(path: Path, cfg: SpectrogramConfig, crop_width: int, *, tta: int = 0,
                 chunk_seconds: float = CHUNK_SECONDS) -> FileWindows:
    """Render ``path`` and cut it into model windows (plus ``tta`` shifted copies of each, which
    follow their window: rows ``i * (tta + 1) + j``). Raises spec2img's ``AudioError``."""
    path = Path(path)
    info = audio.probe(path)
    rcfg = render_config(cfg, crop_width, info.duration, chunk_seconds=chunk_seconds)
    hop = max(1, crop_width // 2)
    shifts = [0] + tta_shifts(tta, crop_width)
    crops, starts, last = [], [], -np.inf
    for offset, img in iter_images(path, rcfg, key=path.name, info=info):
        img = img[None] if img.ndim == 2 else np.moveaxis(img[..., :3], -1, 0)
        for s in window_starts(img.shape[-1], width=crop_width, hop=hop):
            t0 = round(offset + s * cfg.hop_length / cfg.sr, 6)
            if rcfg.tile is not None and t0 <= last:  # overlapping tiles: keep the first rendering
                continue
            last = t0
            crops.extend(crop(img, s, crop_width, shift=d) for d in shifts)
            starts.append(max(t0, 0.0))
    start = np.asarray(starts, dtype=np.float64)
    end = np.minimum(start + window_seconds(cfg, crop_width), info.duration)
    return FileWindows(np.ascontiguousarray(np.stack(crops)), start, end, info.duration)
