"""Frozen EfficientAT embeddings of audio files or spec2img images, and the front-end check.

The AudioSet network is not trained at all: every clip (or image) becomes its 384-value
embedding once (benchmarks fit a head on them with :func:`classify.training.headonly.fit_logistic`, the
one logistic head). Inputs are either spec2img images made with the ``efficientat`` preset
(decoded back to log-mel values, exact to half a grey level, 0.01) or audio files turned into the
same log-mel in memory. :func:`check_front_end` is what ``--arch efficientat_mn04`` checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from spec2img.audio import load
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.features import log_mel, min_samples
from spec2img.image import unrender
from spec2img.io import read_png
from spec2img.window import take

from ...errors import ClassifyError
from .efficientat import EfficientATMN

# Settings that must equal the efficientat preset's for the pretrained network to see its own input.
FRONT_END_FIELDS = (
    "feature", "sr", "n_fft", "hop_length", "win_length", "window", "center", "pad_mode", "n_mels",
    "fmin", "fmax", "mel_scale", "preemphasis", "scale", "amin", "ln_offset", "ln_divisor",
)


def check_front_end(cfg: SpectrogramConfig) -> None:
    """Raise :class:`ClassifyError` unless ``cfg`` computes the features EfficientAT was trained on."""
    ref = from_preset("efficientat")
    wrong = [f"{f}={getattr(cfg, f)!r}" for f in FRONT_END_FIELDS if getattr(cfg, f) != getattr(ref, f)]
    if wrong or cfg.mode == "colormap":
        what = ", ".join(wrong) if wrong else "mode='colormap'"
        raise ClassifyError(
            f"images made with {what} do not match the AudioSet backbone's front-end; "
            "re-run spec2img with --preset efficientat"
        )


@torch.no_grad()
def embed_log_mels(model: EfficientATMN, mels: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Embeddings [shape=(n, 384)] of log-mels [each shape=(128, t_i)], batched by equal width."""
    model.eval()
    out = np.zeros((len(mels), model.embed_dim), dtype=np.float32)
    by_width: dict[int, list[int]] = {}
    for i, m in enumerate(mels):
        by_width.setdefault(m.shape[1], []).append(i)
    for idx in by_width.values():
        for b in range(0, len(idx), batch_size):
            rows = idx[b : b + batch_size]
            x = torch.from_numpy(np.stack([mels[i] for i in rows]))[:, None]
            out[rows] = model.embed(x).numpy()
    return out


def audio_log_mel(path: Path, cfg: SpectrogramConfig) -> np.ndarray:
    """Log-mel [shape=(128, t)] of a whole audio file at ``cfg.sr`` (short clips padded)."""
    y, _ = load(path, sr=cfg.sr)
    if y.size <= cfg.n_fft:
        y = take(y, start=0, size=max(cfg.n_fft + 1, min_samples(cfg)))
    return log_mel(y, cfg)


def image_log_mel(path: Path, cfg: SpectrogramConfig) -> np.ndarray:
    """Log-mel values [shape=(128, t)] decoded from a spec2img PNG (first plane, band 0 first)."""
    return unrender(read_png(path), cfg)[0]


def embed_audio(model: EfficientATMN, paths: Sequence[Path], *, batch_size: int = 32) -> np.ndarray:
    """Embeddings [shape=(n, 384)] of audio files, each taken whole through the efficientat preset."""
    cfg = from_preset("efficientat")
    return embed_log_mels(model, [audio_log_mel(Path(p), cfg) for p in paths], batch_size=batch_size)


def embed_images(
    model: EfficientATMN, paths: Sequence[Path], cfg: SpectrogramConfig, *, batch_size: int = 32
) -> np.ndarray:
    """Embeddings [shape=(n, 384)] of spec2img images made with ``cfg`` (checked to be efficientat's)."""
    check_front_end(cfg)
    return embed_log_mels(model, [image_log_mel(Path(p), cfg) for p in paths], batch_size=batch_size)


def embed_images_dir(model: EfficientATMN, images_dir: Path, *, batch_size: int = 32):
    """Embeddings of every image of a spec2img folder: ``(X [shape=(n, 384)], table)``.

    ``table`` is :func:`spec2img.manifest.image_table` (one row per image: image, source, labels,
    fold, group, ...) in the same row order as ``X``. The folder's ``spectrogram.json`` must be
    the efficientat preset's front-end (any crop, tile or duration).
    """
    from spec2img.manifest import image_table, read_manifest

    images_dir = Path(images_dir)
    cfg = SpectrogramConfig.load(images_dir)
    table = image_table(read_manifest(images_dir))
    X = embed_images(model, [images_dir / p for p in table["image"]], cfg, batch_size=batch_size)
    return X, table
