"""One clip, in memory: audio file -> the windows to render -> features -> uint8 images.

:func:`iter_images` decodes one window at a time (an hour-long recording in tile mode never sits
in memory whole); :func:`render_clip` collects them. No folders, no manifest: :mod:`spec2img.convert`
writes the images of a whole folder with these functions, and prediction
(:mod:`classify.prediction.windows`) renders raw audio with them exactly as the training images
were rendered.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from . import audio, features, image, window
from .config import SpectrogramConfig
from .errors import AudioError

# Longest clip rendered whole (no --tile/--duration): 10 min is a 52,000-pixel-wide image at the
# default hop and ~0.5 GB of decoded audio per worker; longer files are refused by their header.
MAX_WHOLE_SECONDS = 600.0

def clip_windows(info: audio.AudioInfo, cfg: SpectrogramConfig, *, key: str = "") -> list[tuple[int, int | None]]:
    """Windows to render for a clip, as (start, size) in samples at ``cfg.sr``.

    ``size=None`` means the whole clip. ``start`` may be negative (zeros padded before the clip,
    see :mod:`spec2img.window`). ``key`` seeds ``crop="random"`` so reruns pick the same crop.
    """
    n = int(round(info.duration * cfg.sr))
    if cfg.tile is not None:
        size = int(round(cfg.tile * cfg.sr))
        hop = max(1, int(round(cfg.hop_seconds * cfg.sr)))
        return [(s, size) for s in window.tile_starts(n, size=size, hop=hop)]
    if cfg.duration is not None:
        size = int(round(cfg.duration * cfg.sr))
        rng = np.random.default_rng([cfg.seed, zlib.crc32(key.encode())])
        return [(window.crop_offset(n, size=size, crop=cfg.crop, rng=rng), size)]
    return [(0, None)]


def load_window(path: Path, cfg: SpectrogramConfig, start: int, size: int | None, *, tiled: bool) -> np.ndarray:
    """Decode just the samples of one window (zero-padded to ``size``), mono at ``cfg.sr``."""
    if size is None:
        y, _ = audio.load(path, sr=cfg.sr)
        return y
    lo = max(start, 0)
    y, _ = audio.load(path, sr=cfg.sr, offset=lo / cfg.sr, duration=(start + size - lo) / cfg.sr, check=False)
    if tiled:
        if not np.isfinite(y).all():
            raise AudioError(f"{path}: NaN or infinite samples near {lo / cfg.sr:.2f} s; re-export it as integer PCM")
    else:
        audio.check_signal(y, path)
    return window.take(y, start=min(start, 0), size=size)


def iter_images(path: Path, cfg: SpectrogramConfig, *, key: str | None = None,
                info: audio.AudioInfo | None = None):
    """Yield ``(offset_seconds, uint8 image)`` for each window of one clip, decoding one window
    at a time (an hour-long recording in tile mode never sits in memory whole)."""
    path = Path(path)
    info = info or audio.probe(path)
    if cfg.window_seconds is None and info.duration > MAX_WHOLE_SECONDS:
        raise AudioError(
            f"{path}: {info.duration / 60:.1f} min long; rendering it whole would take about "
            f"{info.frames * info.channels * 8 / 2**30:.1f} GB of memory and one image "
            f"{cfg.frames(int(info.duration * cfg.sr))} pixels wide; pass --tile SECONDS (one image per "
            "window) or --duration SECONDS (one crop per clip)")
    for start, size in clip_windows(info, cfg, key=key if key is not None else path.name):
        y = load_window(path, cfg, start, size, tiled=cfg.tile is not None)
        try:
            planes = features.feature_planes(y, cfg)
        except AudioError as exc:
            raise AudioError(f"{path}: {exc}") from None
        yield start / cfg.sr, image.render(planes, cfg)


def render_clip(path: Path, cfg: SpectrogramConfig, *, key: str | None = None) -> list[tuple[float, np.ndarray]]:
    """Render one audio file to ``[(offset_seconds, uint8 image), ...]`` entirely in memory."""
    return list(iter_images(path, cfg, key=key))
