"""Feature planes to 8-bit image arrays and back. Pure functions; encoding lives in :mod:`io`.

Layout: one image row per mel band (or MFCC coefficient), one column per frame, the lowest
frequency in the bottom row. No axes, no margins, no resampling.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import SpectrogramConfig

# Delta planes are mapped symmetrically around grey 128 over +-DELTA_FRACTION of the main range.
DELTA_FRACTION = 0.1


def to_pixels(values: np.ndarray, *, vmin: float, vmax: float) -> np.ndarray:
    """``round(255 * (v - vmin) / (vmax - vmin))`` clipped to 0..255, as uint8."""
    scaled = (np.asarray(values, dtype=np.float32) - vmin) * (255.0 / (vmax - vmin))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_values(pixels, *, vmin: float, vmax: float, full_scale: float = 255.0):
    """Inverse of :func:`to_pixels`: grey level -> feature value (dB or scaled ln).

    The one pixel -> value mapping, ``vmin + p * (vmax - vmin) / full_scale``. ``pixels``: grey
    levels 0..255 (any numpy-convertible array; returns float32 numpy), or a float torch tensor
    (returned as a tensor, same device), e.g. the model's input ``pixel / 255`` with
    ``full_scale=1.0`` (:class:`classify.models.classifier.AudioClassifier` maps its input with it).
    """
    step = (vmax - vmin) / full_scale
    if hasattr(pixels, "detach"):  # a torch tensor: kept a tensor (traced into ONNX as Mul, Add)
        return vmin + pixels * step
    return (vmin + np.asarray(pixels, dtype=np.float32) * step).astype(np.float32)


def plane_ranges(cfg: SpectrogramConfig) -> list[tuple[float, float]]:
    """(vmin, vmax) for each plane the config renders."""
    main = (cfg.vmin, cfg.vmax)
    if cfg.mode != "deltas":
        return [main]
    half = DELTA_FRACTION * (cfg.vmax - cfg.vmin)
    return [main, (-half, half), (-half, half)]


@lru_cache(maxsize=4)
def _colormap_lut(name: str) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def render(planes: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Feature planes [shape=(C, n_rows, t)] -> uint8 image [shape=(n_rows, t) or (n_rows, t, 3)]."""
    pix = [to_pixels(p, vmin=lo, vmax=hi) for p, (lo, hi) in zip(planes, plane_ranges(cfg))]
    if cfg.mode == "grey":
        img = pix[0]
    elif cfg.mode == "colormap":
        img = _colormap_lut(cfg.cmap)[pix[0]]
    else:
        img = np.stack(pix, axis=-1)
    return np.ascontiguousarray(img[::-1])


def unrender(img: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Image -> feature planes [shape=(C, n_rows, t)] (not for colormap images)."""
    if cfg.mode == "colormap":
        raise ValueError("colormap images are not invertible exactly; render with mode='grey'")
    img = np.asarray(img)[::-1]
    chans = img[None] if img.ndim == 2 else np.moveaxis(img, -1, 0)
    return np.stack([to_values(c, vmin=lo, vmax=hi) for c, (lo, hi) in zip(chans, plane_ranges(cfg))])
