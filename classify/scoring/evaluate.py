"""Scores from probabilities (pure numpy): per-item loss, per-clip pooling, thresholds, ensembles.

The headline metrics themselves are :func:`classify.scoring.metrics.headline`.
"""

from __future__ import annotations

import numpy as np


def per_item_loss(probs: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """Cross-entropy of each row ``(n,)`` (mean binary cross-entropy over classes if multi-label)."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    if multi_label:
        return -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean(1)
    return -(targets * np.log(p)).sum(1)


def best_threshold(probs: np.ndarray, targets: np.ndarray) -> float:
    """The threshold in 0.05..0.95 maximising micro-F1 of ``probs >= t`` (multi-label)."""
    best, best_f1 = 0.5, -1.0
    truth = targets > 0.5
    for t in np.arange(0.05, 0.951, 0.05):
        pred = probs >= t
        tp = (pred & truth).sum()
        f1 = 2 * tp / max(1, pred.sum() + truth.sum())
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(round(t, 2)), f1
    return best


def clip_average(probs: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean probabilities per clip: returns ``(clip_ids (m,), probs (m, K))`` sorted by clip id."""
    ids, inv = np.unique(clip, return_inverse=True)
    out = np.zeros((len(ids), probs.shape[1]), dtype=np.float64)
    np.add.at(out, inv, probs)
    out /= np.bincount(inv)[:, None]
    return ids, out


def geometric_mean(prob_list: list[np.ndarray], *, normalise: bool = True, eps: float = 1e-7) -> np.ndarray:
    """Geometric mean of several models' probabilities ``(n, K)`` (the Kaggle kernels' fold
    ensemble), renormalised per row when ``normalise`` (single-label; not for sigmoid outputs)."""
    logp = np.mean([np.log(np.clip(p, eps, 1.0)) for p in prob_list], axis=0)
    g = np.exp(logp)
    return g / g.sum(1, keepdims=True) if normalise else g
