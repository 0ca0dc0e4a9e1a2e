"""Build tiny spec2img-style image folders (PNGs + manifest.csv + spectrogram.json) for tests.

Written directly per the IMAGES_DIR contract in ARCHITECTURE.md so classify tests do not depend
on ``spec2img.convert``. Class ``k`` is a tone at ``TONES[k]`` Hz in noise, so a tiny network
separates the classes in a few epochs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from spec2img.config import SpectrogramConfig
from spec2img.features import feature_planes
from spec2img.image import render
from spec2img.io import encode_png, write_atomic

TONES = (300.0, 700.0, 1300.0, 2000.0, 2900.0, 3500.0)
SMALL_CFG = dict(sr=8000, n_fft=256, hop_length=128, n_mels=32)


def clip(freqs, *, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.05 * rng.standard_normal(t.size)
    start = rng.uniform(0, seconds / 3)
    on = (t >= start) & (t < start + seconds / 2)
    for f in freqs:
        y += 0.5 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) * on
    return y.astype(np.float32)


def make_image_set(
    folder: Path,
    *,
    n_classes: int = 3,
    per_class: int = 8,
    groups_per_class: int = 4,
    seconds: float = 1.0,
    multi_label: bool = False,
    verified: bool = False,
    folds: int | None = None,
    single_group_class: bool = False,
    seed: int = 0,
    **cfg_overrides,
) -> Path:
    """Write ``n_classes * per_class`` clips' images under ``folder``; return ``folder``.

    ``groups_per_class``: clips of a class are spread over that many source recordings.
    ``single_group_class``: the last class's clips all come from one recording.
    ``multi_label``: every third clip also carries the next class's label (and tone).
    ``verified``: a ``manually_verified`` column, every fourth clip unverified.
    ``folds``: a ``fold`` column 1..folds assigned per group.
    """
    folder = Path(folder)
    cfg = SpectrogramConfig(**{**SMALL_CFG, **cfg_overrides})
    cfg.save(folder)
    rng = np.random.default_rng(seed)
    names = [f"class{k}" for k in range(n_classes)]
    rows = []
    for k, name in enumerate(names):
        for i in range(per_class):
            labels = [name]
            if multi_label and i % 3 == 0:
                labels.append(names[(k + 1) % n_classes])
            y = clip([TONES[names.index(lab)] for lab in labels], sr=cfg.sr, seconds=seconds, rng=rng)
            img = render(feature_planes(y, cfg), cfg)
            rel = f"{name}/{name}_{i:03d}.png"
            write_atomic(folder / rel, encode_png(img, digest=cfg.digest()))
            g = 0 if (single_group_class and k == n_classes - 1) else i % groups_per_class
            group = f"{name}_rec{g}"
            rows.append({
                "source": f"{name}/{name}_{i:03d}.wav", "images": rel, "offsets": "0.0",
                "labels": ";".join(labels),
                "fold": (g % folds) + 1 if folds else "",
                "group": group,
                "manually_verified": (0 if i % 4 == 3 else 1) if verified else "",
                "duration": seconds, "orig_sr": cfg.sr, "channels": 1, "status": "ok", "error": "",
            })
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder
