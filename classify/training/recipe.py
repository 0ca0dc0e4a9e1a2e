"""Fine-tuning recipe options on top of the fastai loop: LP-FT and weight averaging (EMA).

- **LP-FT** (``TrainConfig.lp_ft``; Kumar et al. 2022, "Fine-tuning can distort pretrained features"):
  the fine-tuned model gets the probe's linear head (:class:`~classify.models.classifier.LinearHead`,
  the arch's probe pool) and that head starts from the logistic probe fitted on the frozen body's
  window features (:func:`classify.training.headonly.fit_logistic`, features from the feature cache);
  the frozen-head phase is skipped (the head is already fitted) and the whole network is then
  fine-tuned. A random head's first gradients no longer tear the pretrained features apart.
- **EMA** (``TrainConfig.ema_epochs`` > 0): an exponential moving average of every weight and
  BatchNorm statistic over the unfrozen epochs, with a horizon of about ``ema_epochs`` epochs
  (decay ``1 - 1 / (ema_epochs * batches_per_epoch)``, warmed up as timm's ``ModelEmaV2``); at the
  end of training the averaged weights replace the model's, so they are what is scored and saved.

Plain torch (no fastai): :mod:`classify.training.train` drives these in a few lines.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def frozen_epochs(cfg) -> int:
    """Epochs of the frozen-body phase: none under LP-FT (its head is already fitted), else ``cfg.freeze_epochs``."""
    return 0 if cfg.lp_ft else cfg.freeze_epochs


def head_kwargs(cfg) -> dict:
    """Extra ``build_model`` arguments for ``cfg``: the probe's linear head under LP-FT, else none."""
    if not cfg.lp_ft:
        return {}
    from ..models.archs import get_arch

    return {"head": "linear", "pool": get_arch(cfg.arch).probe_pool}


@torch.no_grad()
def start_head_from_probe(model, ds, train_idx: np.ndarray, cfg, width: int) -> dict:
    """LP-FT's first step: fit the logistic probe on ``model``'s frozen window features of the
    training images ``train_idx`` and copy it into ``model.head`` (a ``LinearHead``). Returns a
    record for ``metrics.json`` (seconds, windows, C). ``model`` is left in eval mode."""
    import time

    from ..data.imageset import loss_weights
    from .featurecache import cached_window_features
    from .headonly import fit_logistic

    t0 = time.perf_counter()
    X, owner = cached_window_features(model, ds, np.asarray(train_idx), width=width, bs=cfg.bs)
    Y = ds.targets[train_idx][owner]
    w = loss_weights(ds, unverified_weight=cfg.unverified_weight)[train_idx][owner]
    C = cfg.head_c if cfg.head_c is not None else 1.0
    shift, scale, W, b = fit_logistic(X, Y, multi_label=ds.multi_label, C=C, seed=cfg.seed or 0,
                                      sample_weight=w if (w != 1).any() else None)
    head = model.head
    dtype = head.fc.weight.dtype
    head.shift.copy_(torch.from_numpy(shift).to(dtype))
    head.scale.copy_(torch.from_numpy(scale).to(dtype))
    head.fc.weight.copy_(torch.from_numpy(W).to(dtype))
    head.fc.bias.copy_(torch.from_numpy(b).to(dtype))
    seconds = time.perf_counter() - t0
    log.info("LP-FT: head started from the logistic probe (C=%g) on %d training windows (%.1f s)",
             C, len(X), seconds)
    return {"lp_ft_probe_seconds": seconds, "lp_ft_windows": len(X), "lp_ft_c": C}


class WeightAverage:
    """Exponential moving average of ``model``'s state (parameters and buffers) over training steps;
    :meth:`finish` puts the average into the model. Plain torch: train.py drives it from a fastai
    callback (``start`` before the unfrozen fit, ``update`` after each optimiser step, ``finish`` after).

    ``epochs``: the averaging horizon in epochs (decay per step ``1 - 1 / (epochs * n_batches)``,
    warmed up as ``min(decay, (1 + step) / (10 + step))``). Integer buffers are copied, not averaged.
    """

    def __init__(self, model: nn.Module, epochs: float):
        self.model, self.epochs = model, float(epochs)
        self.shadow: dict[str, torch.Tensor] | None = None
        self.steps, self.decay = 0, 0.0

    def start(self, n_batches: int) -> None:
        self.decay = 1.0 - 1.0 / max(1.0, self.epochs * max(1, n_batches))
        self.shadow = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        if self.shadow is None:
            return
        self.steps += 1
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        for k, v in self.model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(v)

    def finish(self) -> None:
        if self.shadow is None or self.steps == 0:
            return
        self.model.load_state_dict(self.shadow)
        log.info("EMA: averaged weights (horizon %.3g epochs, decay %.5f, %d steps) replace the last epoch's",
                 self.epochs, self.decay, self.steps)
        self.shadow = None
