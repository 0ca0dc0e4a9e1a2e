"""Library entry points behind ``classify fit`` and ``classify lr-find`` (the CLI only calls these)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import TrainConfig
from .data import load_image_set
from .runfolder import new_run_dir

log = logging.getLogger(__name__)


def run_dir_for(cfg: TrainConfig) -> Path:
    """``cfg.out``, or a fresh folder under ``runs/``."""
    return Path(cfg.out) if cfg.out else new_run_dir(Path("runs"), arch=cfg.arch)


def fit(cfg: TrainConfig) -> Path:
    """Train on ``cfg.images`` and write a run folder; returns its path."""
    from . import train  # fastai is imported only when training

    ds = load_image_set(Path(cfg.images))
    run_dir = run_dir_for(cfg)
    train.fit(ds, cfg.replace(out=str(run_dir)), run_dir)
    return run_dir


def lr_find(cfg: TrainConfig) -> float:
    """Run fastai's lr_find on ``cfg.images``; writes lr_find.json/png into the run folder."""
    from . import train

    ds = load_image_set(Path(cfg.images))
    run_dir = run_dir_for(cfg)
    return train.lr_find(ds, cfg.replace(out=str(run_dir)), run_dir)
