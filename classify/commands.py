"""Library entry points behind ``classify fit``, ``cv`` and ``lr-find`` (the CLI only calls these)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import AUTO_ARCH, TrainConfig, ignored_settings
from .data.imageset import ImageSet, load_image_set
from .errors import ClassifyError
from .runfolder import lock_run_dir, new_run_dir

if TYPE_CHECKING:
    from .training.cv import CVConfig

log = logging.getLogger(__name__)


def run_dir_for(cfg: TrainConfig) -> Path:
    """``cfg.out``, or a fresh folder under ``runs/``."""
    return Path(cfg.out) if cfg.out else new_run_dir(Path("runs"), arch=cfg.arch)


def clips_per_class(ds: ImageSet) -> float:
    """Clips in the median class (every label of a multi-label clip counts)."""
    from .scoring.metrics import class_counts

    counts = class_counts(list(ds.clip_table()["labels"]), ds.classes)
    return float(np.median(counts.to_numpy())) if len(counts) else 0.0


def choose_arch(ds: ImageSet, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``arch="auto"`` decided from the images (logged): the AudioSet backbone
    ``efficientat_mn04`` for images of its own front-end (spec2img's default preset), else
    ``efficientnet_lite0`` (ImageNet weights shipped with the package; any image settings)."""
    if cfg.arch != AUTO_ARCH:
        return cfg
    from .models.backbones.embed_head import check_front_end

    try:
        check_front_end(ds.cfg)
        arch = "efficientat_mn04" if ds.cfg.mode == "grey" else "efficientnet_lite0"
    except ClassifyError:
        arch = "efficientnet_lite0"
    why = ("images of its own front-end (spec2img --preset efficientat)" if arch == "efficientat_mn04"
           else f"images of the {ds.cfg.preset!r} preset, not the AudioSet front-end")
    log.info("backbone: %s (%s); --arch overrides", arch, why)
    return cfg.replace(arch=arch)


def choose_mode(ds: ImageSet, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``arch`` (:func:`choose_arch`) and ``head_only`` decided where the data settles it
    (:func:`classify.training.mode.shortcut`; None is left for :func:`classify.training.mode.fit` to
    choose on an inner split of each fit's training part); logged, with a warning naming the
    settings a decided mode ignores."""
    from .training.mode import shortcut

    cfg = choose_arch(ds, cfg)
    if cfg.head_only is None:
        cfg = cfg.replace(head_only=shortcut(cfg, clips_per_class(ds)))
    ignored = ignored_settings(cfg)
    if ignored:
        mode, other = ("--head-only", "--fine-tune") if cfg.head_only else ("fine-tuning", "--head-only")
        log.warning("%s ignores %s (%s only); pass %s to use %s", mode, ", ".join(ignored), other, other,
                    "them" if len(ignored) > 1 else "it")
    return cfg


def fit(cfg: TrainConfig) -> Path:
    """Train on ``cfg.images`` (fine-tune, or ``head_only``) and write a run folder; returns its path."""
    ds = load_image_set(Path(cfg.images), relabel=cfg.relabel, drop=cfg.drop)
    cfg = choose_mode(ds, cfg)
    run_dir = run_dir_for(cfg)
    created = not run_dir.exists()
    lock = lock_run_dir(run_dir)  # a second fit into the same --out stops with one line
    try:
        fit_function(cfg)(ds, cfg.replace(out=str(run_dir)), run_dir)
        build_report_quietly(run_dir)
    except BaseException:
        lock.release()
        if created:
            remove_if_empty(run_dir)  # a failed start leaves no empty run folder behind
        raise
    lock.release()
    return run_dir


def cv(cfg: CVConfig) -> Path:
    """Cross-validate on ``cfg.train.images`` (see :mod:`classify.training.cv`); the report is
    built beside the finished run; returns the cv run folder."""
    from .training.cv import run_cv

    ds = load_image_set(Path(cfg.train.images), relabel=cfg.train.relabel, drop=cfg.train.drop)
    cfg = dataclasses.replace(cfg, train=choose_mode(ds, cfg.train))
    return run_cv(ds, cfg, fit_function(cfg.train), finish=build_report_quietly)


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing but its lock file is in it."""
    from spec2img.lock import LOCK_NAME

    try:
        if {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def build_report_quietly(run_dir: Path) -> None:
    """The HTML report of a finished fit or cv run; a report failure never loses the run."""
    from .report import build_report

    try:
        build_report(run_dir)
    except Exception as exc:  # never lose a finished run to a report failure
        log.warning("report not built (%s: %s); run classify report %s", type(exc).__name__, exc, run_dir)


def fit_function(cfg: TrainConfig):
    """``classify.training.headonly.fit`` for ``--head-only`` (no fastai), ``classify.training.train.fit``
    for ``--fine-tune``, ``classify.training.mode.fit`` (both scored on an inner split) when undecided."""
    if cfg.head_only is None:
        from .training import mode

        return mode.fit
    if cfg.head_only:
        from .training import headonly

        return headonly.fit
    from .training import train  # fastai is imported only when training

    return train.fit


def lr_find(cfg: TrainConfig) -> float:
    """Run fastai's lr_find on ``cfg.images``; writes lr_find.json/png into the run folder."""
    if cfg.head_only:
        raise ClassifyError("--head-only fits a logistic regression and has no learning rate to find")
    from .training import train

    ds = load_image_set(Path(cfg.images))
    cfg = choose_arch(ds, cfg)
    run_dir = run_dir_for(cfg)
    return train.lr_find(ds, cfg.replace(out=str(run_dir)), run_dir)
