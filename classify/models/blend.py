""":class:`Blend`: the probe and the fine-tune as one network, their probabilities averaged.

What ``classify fit`` keeps when the average of the two modes scores best on the inner split
(:mod:`classify.training.mode`). It returns *logits*, like
:class:`~classify.models.classifier.AudioClassifier`, chosen so that what every consumer does to
logits gives the mean of the members' probabilities exactly:

- single-label: ``log(mean_m softmax(z_m))``, whose softmax is that mean (it sums to one);
- multi-label: ``logit(mean_m sigmoid(z_m))``, whose sigmoid is that mean, computed as
  ``log p - log(1 - p)`` from log-sigmoids (stable at the probe's saturated logits, ±30).

So prediction, the ONNX export, the report and the open-set threshold read a blended run folder
like any other. ``embed(x)`` is the members' embeddings side by side ``(B, hidden + F)``;
:meth:`Blend.head_logits` splits it back (what :func:`~classify.models.classifier.predict_windows`
calls). The state dict holds the members' under ``fine_tune.*`` and ``probe.*``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import AudioClassifier


def mean_probability_logits(logits: list[torch.Tensor], *, multi_label: bool) -> torch.Tensor:
    """Logits ``(B, K)`` whose softmax (sigmoid when ``multi_label``) is the mean of the softmaxes
    (sigmoids) of ``logits``, a list of ``(B, K)`` tensors."""
    z = torch.stack([t.float() for t in logits])  # (M, B, K)
    log_m = math.log(len(logits))
    if not multi_label:
        return torch.logsumexp(z.log_softmax(dim=2), dim=0) - log_m
    log_p = torch.logsumexp(F.logsigmoid(z), dim=0)  # log(sum p), the 1/M cancels
    log_q = torch.logsumexp(F.logsigmoid(-z), dim=0)  # log(sum (1 - p))
    return log_p - log_q


class Blend(nn.Module):
    """``forward(x)``: x float ``(B, C, H, W)`` in [0, 1] -> logits ``(B, n_classes)`` of the mean
    of ``fine_tune``'s and ``probe``'s probabilities (module docstring).

    Args:
        fine_tune: the fine-tuned :class:`AudioClassifier` (pool head).
        probe: the probe, an :class:`AudioClassifier` with a linear head on a frozen body.
        multi_label: sigmoid outputs (else softmax).
    """

    def __init__(self, fine_tune: AudioClassifier, probe: AudioClassifier, *, multi_label: bool):
        super().__init__()
        self.fine_tune, self.probe = fine_tune, probe
        self.multi_label = bool(multi_label)
        self.split = fine_tune.head.fc.in_features  # fine_tune's embedding width

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The blend's logits from the members' ``(B, K)`` logits."""
        return mean_probability_logits([a, b], multi_label=self.multi_label)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, hidden + F)``: the fine-tune's embedding, then the probe's (standardised pooled features)."""
        return torch.cat([self.fine_tune.embed(x).float(), self.probe.embed(x).float()], dim=1)

    def head_logits(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` from :meth:`embed`'s output (eval mode)."""
        return self.combine(self.fine_tune.head_logits(e[:, :self.split]),
                            self.probe.head_logits(e[:, self.split:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.fine_tune(x), self.probe(x))
