"""classify: train, inspect and apply audio classifiers on spec2img spectrogram images.

The public API (everything else is internal by convention)::

    import classify
    run = classify.fit("images", out="runs/first")      # -> classify.Run  (classify fit)
    run = classify.cv("images", folds=5)                # -> classify.Run  (classify cv)
    run = classify.load("runs/first")                   # -> classify.Run
    run.metrics, run.classes, run.config                # metrics.json, classes.json, TrainConfig
    run.predict(["a.wav", "folder/"])                   # -> pandas.DataFrame, one row per file
    run.report()                                        # -> Path of report/index.html
    run.export_onnx()                                   # -> Path of model.onnx

Documented in :mod:`classify.api` and :class:`classify.run.Run`. ``import classify`` loads
neither torch, fastai, scikit-learn nor pandas: the names below are bound on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the docs (griffe); at run time the names load on first use
    from .api import cv, fit, lr_find
    from .config import AugmentConfig, CVConfig, TrainConfig
    from .errors import ClassifyError
    from .run import Run, export, load, predict

__all__ = ["AugmentConfig", "CVConfig", "ClassifyError", "Run", "TrainConfig", "cv", "export", "fit", "load",
           "lr_find", "predict"]

_HOME = {"fit": "classify.api", "cv": "classify.api", "lr_find": "classify.api", "load": "classify.run",
         "Run": "classify.run", "predict": "classify.run", "export": "classify.run",
         "TrainConfig": "classify.config", "AugmentConfig": "classify.config", "CVConfig": "classify.config",
         "ClassifyError": "classify.errors"}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
