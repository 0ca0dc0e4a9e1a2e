"""Library entry points behind ``classify fit`` and ``classify lr-find`` (the CLI only calls these)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .config import HEAD_ONLY_BELOW, TrainConfig
from .data import ImageSet, load_image_set
from .errors import ClassifyError
from .runfolder import lock_run_dir, new_run_dir

log = logging.getLogger(__name__)


def run_dir_for(cfg: TrainConfig) -> Path:
    """``cfg.out``, or a fresh folder under ``runs/``."""
    return Path(cfg.out) if cfg.out else new_run_dir(Path("runs"), arch=cfg.arch)


def clips_per_class(ds: ImageSet) -> float:
    """Clips in the median class (every label of a multi-label clip counts)."""
    from .report.compute import class_counts

    counts = class_counts(list(ds.clip_table()["labels"]), ds.classes)
    return float(np.median(counts.to_numpy())) if len(counts) else 0.0


def choose_mode(ds: ImageSet, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``head_only`` decided when it is None (see :data:`HEAD_ONLY_BELOW`); logged."""
    if cfg.head_only is not None:
        return cfg
    n = clips_per_class(ds)
    pretrained = cfg.pretrained or cfg.weights is not None
    head_only = pretrained and n < HEAD_ONLY_BELOW
    if head_only:
        log.info("%.0f clips in the median class (< %d): fitting a logistic head on the frozen, pretrained "
                 "%s (--head-only); pass --fine-tune to fine-tune the whole network", n, HEAD_ONLY_BELOW, cfg.arch)
    return cfg.replace(head_only=head_only)


def fit(cfg: TrainConfig) -> Path:
    """Train on ``cfg.images`` (fine-tune, or ``head_only``) and write a run folder; returns its path."""
    ds = load_image_set(Path(cfg.images), relabel=cfg.relabel, drop=cfg.drop)
    cfg = choose_mode(ds, cfg)
    run_dir = run_dir_for(cfg)
    lock = lock_run_dir(run_dir)  # a second fit into the same --out stops with one line
    try:
        fit_function(cfg)(ds, cfg.replace(out=str(run_dir)), run_dir)
        build_report_quietly(run_dir)
    finally:
        lock.release()
    return run_dir


def build_report_quietly(run_dir: Path) -> None:
    """The HTML report of a finished fit or cv run; a report failure never loses the run."""
    from .report import build_report

    try:
        build_report(run_dir)
    except Exception as exc:  # never lose a finished run to a report failure
        log.warning("report not built (%s: %s); run classify report %s", type(exc).__name__, exc, run_dir)


def fit_function(cfg: TrainConfig):
    """``classify.headonly.fit`` for ``--head-only`` (no fastai), else ``classify.train.fit``."""
    if cfg.head_only:
        from . import headonly

        return headonly.fit
    from . import train  # fastai is imported only when training

    return train.fit


def lr_find(cfg: TrainConfig) -> float:
    """Run fastai's lr_find on ``cfg.images``; writes lr_find.json/png into the run folder."""
    if cfg.head_only:
        raise ClassifyError("--head-only fits a logistic regression and has no learning rate to find")
    from . import train

    ds = load_image_set(Path(cfg.images))
    run_dir = run_dir_for(cfg)
    return train.lr_find(ds, cfg.replace(out=str(run_dir)), run_dir)
