"""The fit and cv orchestration behind ``classify.fit`` / ``classify.cv`` (:mod:`classify.api`) and
so behind ``classify fit``, ``cv`` and ``lr-find``: the training config resolved once
(:func:`resolve_config`: backbone, fine-tune or head-only, cut), one fit body for a single process
and every rank of a data-parallel job (:func:`fit`), the report built beside the finished run."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import AUTO_ARCH, TrainConfig, ignored_settings
from .data.imageset import ImageSet, load_image_set
from .errors import ClassifyError
from .runfolder import new_run_dir, writing_run_dir

if TYPE_CHECKING:
    from .config import CVConfig

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


def resolve_config(ds: ImageSet, cfg: TrainConfig, *, processes: int = 1) -> TrainConfig:
    """``cfg`` resolved once for the images ``ds``, before anything trains: the backbone and the
    mode (:func:`choose_mode`), then ``cut`` and the head-only input height
    (:meth:`TrainConfig.resolved`). A data-parallel fit (``processes`` > 1) goes through the same
    choice; where it would fit a head only, it says so and fine-tunes (a logistic head is fitted on
    one process: drop --distributed for that)."""
    if processes > 1 and cfg.head_only is None:
        before = logging.root.manager.disable
        logging.disable(logging.WARNING)  # the probe's own lines would speak of a head-only fit
        try:
            probe = choose_mode(ds, cfg)
        finally:
            logging.disable(before)
        if probe.head_only:
            log.warning("--distributed %d fine-tunes the whole network; a single-process fit of this data would "
                        "fit a logistic head on the frozen backbone (--head-only, one process: drop --distributed "
                        "for it)", processes)
        cfg = cfg.replace(head_only=False)
    return choose_mode(ds, cfg).resolved()


def fit(cfg: TrainConfig) -> Path:
    """Train on ``cfg.images`` (fine-tune, or ``head_only``) and write a run folder; returns its path.

    The one fit body: a single process, or one rank of a data-parallel job (started by
    :func:`classify.fit_distributed.launch`, torchrun or accelerate launch), where rank 0 alone
    locks and writes the run folder and the report. A failed start leaves no empty run folder.
    """
    from .training import distributed

    n = distributed.world_size()
    if n > 1:
        if not cfg.out:
            raise ClassifyError("distributed fit needs --out RUN_DIR (every process must write to the same folder)")
        distributed.check_config(cfg, n)
    with distributed.process_group():
        ds = load_image_set(Path(cfg.images), relabel=cfg.relabel, drop=cfg.drop)
        cfg = resolve_config(ds, cfg, processes=n)
        run_dir = run_dir_for(cfg)
        main = distributed.is_main()
        with writing_run_dir(run_dir) if main else contextlib.nullcontext(run_dir):
            fit_function(cfg)(ds, cfg.replace(out=str(run_dir)), run_dir)
            if main:
                build_report_quietly(run_dir)
            distributed.barrier()
    return run_dir


def cv(cfg: CVConfig) -> Path:
    """Cross-validate on ``cfg.train.images`` (see :mod:`classify.training.cv`); the report is
    built beside the finished run; returns the cv run folder."""
    from .training.cv import run_cv

    ds = load_image_set(Path(cfg.train.images), relabel=cfg.train.relabel, drop=cfg.train.drop)
    cfg = dataclasses.replace(cfg, train=resolve_config(ds, cfg.train))
    return run_cv(ds, cfg, fit_function(cfg.train), finish=build_report_quietly)


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
