"""``classify tag``: the 527 AudioSet tags of audio files, straight from the pretrained EfficientAT model.

No training: each file is read at 32 kHz, cut into 10 s windows (AudioSet's clip length; the
last window aligned to the end of the file, a shorter file taken whole), turned into the
``efficientat`` preset's log-mel in memory, and the windows' sigmoid probabilities are averaged.
"""

from __future__ import annotations

import csv
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spec2img.audio import load, probe
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.errors import AudioError, Spec2ImgError
from spec2img.features import log_mel, min_samples
from spec2img.window import seconds_to_samples, take, tile_starts

from ..errors import ClassifyError
from ..models.assets import asset_path
from ..models.backbones.efficientat import EfficientATMN, pretrained_mn04

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0
COLUMNS = ["source", "rank", "label", "probability", "index", "mid"]


@lru_cache(maxsize=1)
def audioset_labels() -> pd.DataFrame:
    """The 527 AudioSet classes in logit order: columns ``index, mid, display_name``."""
    path = asset_path("audioset_labels")
    if path is None:
        raise ClassifyError("the AudioSet label list is not installed (assets/audioset); reinstall the package")
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
    return pd.DataFrame(rows[1:], columns=rows[0]).astype({"index": int})


def clip_windows(path: Path, cfg: SpectrogramConfig, *, seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Log-mel windows [each shape=(n_mels, t)] covering the file at ``path``.

    Windows of ``seconds`` every ``seconds`` by :func:`spec2img.window.tile_starts` (the last
    aligned to the end); a file shorter than one window is one window of its own length
    (zero-padded only when shorter than one FFT frame).
    """
    info = probe(path)
    size = seconds_to_samples(seconds, sr=info.samplerate)
    mels = []
    for start in tile_starts(info.frames, size=size, hop=size):
        y, _ = load(path, sr=cfg.sr, offset=start / info.samplerate, duration=seconds, check=False)
        if not np.isfinite(y).all():
            raise AudioError(f"{path}: holds NaN or infinite samples; re-export it as integer PCM")
        if y.size <= cfg.n_fft:  # pad clicks shorter than one FFT frame with silence after them
            y = take(y, start=0, size=max(cfg.n_fft + 1, min_samples(cfg)))
        mels.append(log_mel(y, cfg))
    return mels


@torch.no_grad()
def clip_probabilities(model: EfficientATMN, mels: list[np.ndarray], *, batch_size: int = 16) -> np.ndarray:
    """Mean sigmoid probabilities [shape=(n_classes,)] over log-mel windows of one clip."""
    total = None
    for b in range(0, len(mels), batch_size):
        chunk = mels[b : b + batch_size]
        width = max(m.shape[1] for m in chunk)
        # Windows of one file share a length, except a clip's single window: no padding in practice.
        x = np.stack([np.pad(m, ((0, 0), (0, width - m.shape[1])), mode="edge") for m in chunk])
        p = torch.sigmoid(model(torch.from_numpy(x)[:, None])).sum(0)
        total = p if total is None else total + p
    return (total / len(mels)).numpy()


def top_tags(probs: np.ndarray, *, top_k: int) -> pd.DataFrame:
    """The ``top_k`` most probable AudioSet tags: ``rank, label, probability, index, mid``."""
    labels = audioset_labels()
    order = np.argsort(-probs, kind="stable")[:top_k]
    return pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "label": labels["display_name"].to_numpy()[order],
        "probability": probs[order].astype(float),
        "index": order,
        "mid": labels["mid"].to_numpy()[order],
    })


def tag(
    paths: list[Path],
    *,
    top_k: int = 5,
    weights: Path | None = None,
    window: float = WINDOW_SECONDS,
    model: EfficientATMN | None = None,
) -> pd.DataFrame:
    """AudioSet tags of audio files: one row per (file, rank), columns :data:`COLUMNS`.

    Args:
        paths: audio files (any format spec2img reads).
        top_k: tags kept per file (1..527).
        weights: EfficientAT checkpoint (``--weights``); else env var, torch cache, download.
        window: analysis window in seconds.
        model: an already loaded :class:`EfficientATMN` (skips weight resolution).

    Files that cannot be read (never opened when they are FIFOs, folders or missing) are skipped
    with a warning and listed in ``df.attrs["skipped"]`` as ``(path, reason)``; if none can be read
    the first error is raised.
    """
    if not 1 <= top_k <= 527:
        raise ClassifyError(f"top_k={top_k} must be between 1 and 527")
    if window <= 0:
        raise ClassifyError(f"window={window} must be > 0 seconds")
    cfg = from_preset("efficientat")
    model = model if model is not None else pretrained_mn04(weights)
    model.eval()
    tables, first_error, skipped = [], None, []
    for path in paths:
        try:
            mels = clip_windows(Path(path), cfg, seconds=window)
        except Spec2ImgError as exc:
            log.warning("skipped %s", exc)
            first_error = first_error or exc
            skipped.append((str(path), str(exc)))
            continue
        table = top_tags(clip_probabilities(model, mels), top_k=top_k)
        table.insert(0, "source", str(path))
        tables.append(table)
    if not tables:
        if first_error is not None:
            raise first_error
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(tables, ignore_index=True)[COLUMNS]
    out.attrs["skipped"] = skipped
    return out


def format_tags(df: pd.DataFrame) -> list[str]:
    """One line per file: ``source: Tag 0.76; Other tag 0.12; ...``."""
    return [
        f"{source}: " + "; ".join(f"{r.label} {r.probability:.2f}" for r in rows.itertuples())
        for source, rows in df.groupby("source", sort=False)
    ]


def write_tags(df: pd.DataFrame, path: Path) -> Path:
    """Write :func:`tag`'s table as CSV, atomically."""
    from spec2img.io import sheet_table, write_atomic

    write_atomic(Path(path), sheet_table(df).to_csv(index=False, float_format="%.4f").encode())
    return Path(path)
