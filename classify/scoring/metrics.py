"""Pure numpy metrics. Inputs: ``probs`` [shape=(n, n_classes)] scores (any monotone scale),
``y`` [shape=(n,)] integer class indices, or ``truth`` [shape=(n, n_classes)] 0/1 for multi-label.
"""

from __future__ import annotations

import numpy as np


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first [shape=(n, k)]; ties by lower index."""
    probs = np.asarray(probs)
    k = min(k, probs.shape[1])
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(y))) if len(y) else float("nan")


def top_k_accuracy(probs: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    if not len(y):
        return float("nan")
    return float(np.mean((top_k(probs, k) == np.asarray(y)[:, None]).any(axis=1)))


def map_at_k(probs: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """Mean average precision at k with one true label per row (the Freesound 2018 metric):
    1 if the true label is ranked first, 1/2 if second, ..., 0 if not in the top k."""
    if not len(y):
        return float("nan")
    hits = top_k(probs, k) == np.asarray(y)[:, None]
    return float(np.mean((hits / np.arange(1, hits.shape[1] + 1)).sum(axis=1)))


def macro_f1(probs: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y`` or predicted."""
    pred = np.argmax(probs, axis=1)
    from sklearn.metrics import f1_score  # imported here: prediction needs this module, not sklearn

    return float(f1_score(y, pred, average="macro", zero_division=0))


def lwlrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (the Freesound 2019 metric).

    For each (clip, true label): the fraction of labels ranked at or above it that are true,
    averaged with every true label weighted equally, i.e. :func:`lwlrap_per_class` weighted by
    each class's number of positive clips.
    """
    truth = np.asarray(truth, dtype=bool)
    support = truth.sum(axis=0)
    if not support.any():
        return float("nan")
    per_class = np.nan_to_num(lwlrap_per_class(truth, scores))
    return float((per_class * support).sum() / support.sum())


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [shape=(n_classes, n_classes)]: rows true class, columns predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def single_label_summary(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The headline metrics of a single-label run."""
    return {
        "accuracy": accuracy(probs, y),
        "top3_accuracy": top_k_accuracy(probs, y, 3),
        "map3": map_at_k(probs, y, 3),
        "macro_f1": macro_f1(probs, y),
    }


def headline(probs: np.ndarray, truth: np.ndarray, *, multi_label: bool,
             threshold: float | None = None) -> dict[str, float]:
    """The headline metrics of a run: what ``classify fit``/``cv`` write and the report shows.

    ``probs`` [shape=(n, n_classes)] scores, ``truth`` [shape=(n, n_classes)] 0/1 or bool.
    Single-label: accuracy, top-3 accuracy, MAP@3, macro F1 (of the first true class) and lwlrap.
    Multi-label: lwlrap, mean AP over the classes present, micro F1 of ``probs >= threshold``
    (default 0.5) and accuracy (the top class is one of the true ones). Empty input: ``{}``.
    """
    if len(probs) == 0:
        return {}
    truth = np.asarray(truth) > 0.5
    if multi_label:
        pred = probs >= (0.5 if threshold is None else threshold)
        tp = (pred & truth).sum()
        return {"lwlrap": lwlrap(truth, probs),
                "mean_ap": float(np.nanmean(per_class_multi_label(truth, probs)["ap"])),
                "micro_f1": float(2 * tp / max(1, pred.sum() + truth.sum())),
                "accuracy": float(np.mean(truth[np.arange(len(probs)), probs.argmax(1)]))}
    return {**single_label_summary(probs, truth.argmax(1)), "lwlrap": lwlrap(truth, probs)}


def per_class_prf(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support, each [shape=(n_classes,)].

    ``y`` and ``pred`` are integer class indices [shape=(n,)]. A class never predicted has
    precision 0; a class absent from ``y`` has recall 0 and support 0 (sklearn's zero_division=0).
    """
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        np.asarray(y), np.asarray(pred), labels=np.arange(n_classes), zero_division=0
    )
    return {"precision": p, "recall": r, "f1": f, "support": s.astype(np.int64)}


def per_class_multi_label(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Multi-label per-class metrics, each [shape=(n_classes,)]: precision, recall and F1 of
    ``scores >= threshold``, support (clips carrying the label), average precision of the
    ranking of clips by score (NaN for a label no clip carries) and the per-class lwlrap."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    p, r, f, s = precision_recall_fscore_support(
        truth.astype(int), (scores >= threshold).astype(int), average=None, zero_division=0
    )
    ap = np.full(truth.shape[1], np.nan)
    for c in range(truth.shape[1]):
        if truth[:, c].any():
            ap[c] = average_precision_score(truth[:, c], scores[:, c])
    return {"precision": p, "recall": r, "f1": f, "support": s.astype(np.int64), "ap": ap,
            "lwlrap": lwlrap_per_class(truth, scores)}


def lwlrap_per_class(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class label-ranking average precision [shape=(n_classes,)], NaN where no clip carries
    the class; their support-weighted mean is :func:`lwlrap`."""
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    sums = np.zeros(truth.shape[1])
    for t, s in zip(truth, scores):
        pos = np.flatnonzero(t)
        if pos.size == 0:
            continue
        order = np.argsort(-s, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(1, len(s) + 1)
        hits_at = np.cumsum(t[order])
        sums[pos] += hits_at[rank[pos] - 1] / rank[pos]
    support = truth.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, sums / np.maximum(support, 1), np.nan)


def class_counts(label_lists: list[list[str]], classes: list[str] | None = None):
    """Clips per label [pandas Series, label -> count], most first; a multi-label clip counts once
    for each of its labels. With ``classes``, every class appears (0 when absent)."""
    import pandas as pd

    s = pd.Series([lab for labs in label_lists for lab in labs], dtype=object).value_counts()
    if classes is not None:
        s = s.reindex(sorted(set(classes) | set(s.index)), fill_value=0).sort_values(ascending=False, kind="stable")
    return s
