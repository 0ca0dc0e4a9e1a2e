"""Library entry points behind ``classify fit`` and ``classify lr-find`` (the CLI only calls these)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import TrainConfig
from .data import load_image_set
from .errors import ClassifyError
from .runfolder import new_run_dir

log = logging.getLogger(__name__)


def run_dir_for(cfg: TrainConfig) -> Path:
    """``cfg.out``, or a fresh folder under ``runs/``."""
    return Path(cfg.out) if cfg.out else new_run_dir(Path("runs"), arch=cfg.arch)


def fit(cfg: TrainConfig) -> Path:
    """Train on ``cfg.images`` (fine-tune, or ``head_only``) and write a run folder; returns its path."""
    ds = load_image_set(Path(cfg.images))
    run_dir = run_dir_for(cfg)
    fit_function(cfg)(ds, cfg.replace(out=str(run_dir)), run_dir)
    build_report_quietly(run_dir)
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
