"""classify's public Python API, the functions the ``classify`` CLI itself calls:
:func:`fit`, :func:`cv`, :func:`lr_find`, :func:`load` -> :class:`~classify.run.Run`,
:func:`predict`, :func:`export`. Reach them as ``classify.fit(...)`` etc.

Keyword arguments are named like the CLI flags (``--freeze-epochs 0`` is ``freeze_epochs=0``,
``--lr auto`` is ``lr="auto"``, ``--no-augment`` is ``no_augment=True``); defaults come from the
same dataclasses (:class:`~classify.config.TrainConfig`, :class:`~classify.config.AugmentConfig`,
:class:`~classify.config.CVConfig`), see :mod:`classify.options`.

Example:
    >>> import classify
    >>> run = classify.fit("images", out="runs/first", head_only=True)   # doctest: +SKIP
    >>> run.metrics["accuracy"], run.classes                              # doctest: +SKIP
    >>> run.predict(["clip.wav"])                                         # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .options import cv_config, preflight, train_config
from .run import Run, export, load, predict

__all__ = ["Run", "cv", "export", "fit", "load", "lr_find", "predict"]


def fit(images: str | Path, *, out: str | Path | None = None, distributed: int | None = None,
        **options: Any) -> Run:
    """Train a classifier on a spec2img images folder and write a run folder, as classify fit does.

    Below ``HEAD_ONLY_BELOW`` (50) clips in the median class a pretrained backbone gets a logistic
    head on its frozen features (seconds on a CPU), else the whole network is fine-tuned with
    fastai; ``head_only=True`` / ``fine_tune=True`` decide it. The run folder holds the model,
    its settings, validation metrics and predictions, and ``report/index.html``.

    Args:
        images: a folder written by ``spec2img AUDIO_DIR IMAGES_DIR`` (or :func:`spec2img.convert`).
        out: the run folder to write (default: a new folder under ``runs/``).
        distributed: data-parallel fine-tuning on this many processes of this machine.
        **options: ``classify fit`` flags as keywords, e.g. ``arch``, ``epochs``,
            ``freeze_epochs``, ``lr`` (or ``"auto"``), ``bs``, ``seed``, ``head_only``,
            ``crop_seconds`` (s, ``"auto"`` or None), ``valid_pct``, ``valid_fold``, ``mixup``,
            ``no_augment``, ``quiet``; see :func:`classify.options.train_config`.

    Returns:
        The finished :class:`Run`.

    Raises:
        ClassifyError: a bad option, folder or setting (one line naming it).
    """
    cfg = train_config(images, out=None if out is None else str(out), **options)
    preflight(cfg)  # argument and path errors before torch loads
    from . import commands

    if distributed is not None:
        from .fit_distributed import launch

        return Run(launch(cfg, distributed))
    return Run(commands.fit(cfg))


def cv(images: str | Path, *, out: str | Path | None = None, folds: int = 5, predefined_folds: bool = False,
       holdout_pct: float = 0.0, **options: Any) -> Run:
    """Cross-validate, as classify cv does: one run per fold, the pooled out-of-fold score, the
    suspect labels and the report.

    The fold runs are ``out/fold_<k>/``; ``run.metrics["headline"]`` is the out-of-fold score.

    Args:
        images: a spec2img images folder.
        out: the cv run folder (default: a new folder under ``runs/``).
        folds: grouped, stratified folds.
        predefined_folds: use the manifest's ``fold`` column instead.
        holdout_pct: share of clips (grouped) held out of every fold to score the fold ensemble.
        **options: every :func:`fit` option.

    Returns:
        The cv :class:`Run` (``run.folds`` its fold runs).
    """
    cfg = cv_config(images, out=None if out is None else str(out), folds=folds,
                    predefined_folds=predefined_folds, holdout_pct=holdout_pct, **options)
    preflight(cfg.train)
    from . import commands

    return Run(commands.cv(cfg))


def lr_find(images: str | Path, *, out: str | Path | None = None, **options: Any) -> float:
    """Find a learning rate with fastai's lr_find on the training images, as classify lr-find does.

    Writes ``lr_find.json`` and ``lr_find.png`` into ``out`` and returns the suggested learning rate."""
    cfg = train_config(images, out=None if out is None else str(out), **options).replace(head_only=False)
    preflight(cfg)
    from . import commands

    return commands.lr_find(cfg)
