"""The unknown threshold of a head-only model, from out-of-fold scores of its training clips.

The training clips are split into grouped, stratified folds (:func:`classify.data.splits.group_kfold`);
for each fold the logistic head (:func:`classify.training.headonly.fit_logistic`, same ``C``) is fitted
on the frozen features of the other folds and scores the fold's clips. Those out-of-fold scores of
the known classes (and of background clips, never trained on) choose the threshold
(:func:`classify.scoring.openset.choose_threshold`). The validation clips the run is scored on are
not among them: the caller passes training windows only.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ClassifyError
from ..openset_file import OpenSet
from ..scoring import openset

log = logging.getLogger(__name__)

MAX_FOLDS = 5


def clip_mean(p: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(clip ids, mean of rows per clip)``: window probabilities averaged over their clip."""
    ids, inv = np.unique(clip, return_inverse=True)
    out = np.zeros((len(ids), p.shape[1]))
    np.add.at(out, inv, p)
    return ids, out / np.bincount(inv)[:, None]


def oof_probabilities(X: np.ndarray, Y: np.ndarray, clip: np.ndarray, group: np.ndarray, *, C: float,
                      seed: int = 0, background: np.ndarray | None = None,
                      background_clip: np.ndarray | None = None, head=None) -> dict:
    """Out-of-fold clip probabilities of the training clips (and of background clips).

    Args:
        X: frozen window features [shape=(n_windows, F)]; Y: one-hot targets [shape=(n_windows, K)].
        clip / group: clip id and recording group of each window [shape=(n_windows,)].
        C: the head's inverse L2 strength; seed: folds and solver.
        background / background_clip: features and clip ids of "none of these" windows, or None.
        head: ``(fit_logistic, probabilities)`` of :mod:`classify.training.headonly` (passed in:
            headonly calls this module, so it is not imported here).

    Returns:
        ``{"probs": (n_scored_clips, K), "targets": (n_scored_clips, K), "background": (m, K) or None,
        "folds": k}``; clips of classes too small to split are not scored.
    """
    from ..data.splits import group_kfold

    fit_logistic, probabilities = head

    ids, first = np.unique(clip, return_index=True)
    strata = Y[first].argmax(1)
    counts = np.bincount(strata, minlength=Y.shape[1])
    k = int(min(MAX_FOLDS, max(2, counts[counts > 0].min() if (counts > 0).any() else 2)))
    try:
        folds = group_kfold(strata, group[first], n_splits=k, seed=seed)
    except ClassifyError as exc:
        raise ClassifyError(f"no out-of-fold scores for the unknown threshold ({exc})") from None
    fold_of = dict(zip(ids, folds))
    wf = np.array([fold_of[c] for c in clip])
    probs, targets, bg = [], [], []
    for f in range(k):
        held = wf == f
        train = (wf != f)
        if not held.any() or len(np.unique(Y[train].argmax(1))) < 2:
            continue
        shift, scale, W, b = fit_logistic(X[train], Y[train], multi_label=False, C=C, seed=seed)
        _, p = clip_mean(probabilities((X[held] - shift) / scale, W, b, multi_label=False), clip[held])
        _, t = clip_mean(Y[held], clip[held])
        probs.append(p)
        targets.append(t)
        if background is not None and len(background):
            bg.append(clip_mean(probabilities((background - shift) / scale, W, b, multi_label=False),
                                background_clip)[1])
    if not probs:
        raise ClassifyError("no out-of-fold scores for the unknown threshold (every fold lacked classes)")
    return {"probs": np.concatenate(probs), "targets": np.concatenate(targets),
            "background": np.mean(bg, axis=0) if bg else None, "folds": k}


def calibrate(X: np.ndarray, Y: np.ndarray, clip: np.ndarray, group: np.ndarray, *, C: float, head, seed: int = 0,
              background: np.ndarray | None = None, background_clip: np.ndarray | None = None) -> OpenSet:
    """The run's :class:`~classify.openset_file.OpenSet` from out-of-fold scores (see the module
    docstring; arguments as :func:`oof_probabilities`)."""
    oof = oof_probabilities(X, Y, clip, group, C=C, seed=seed, background=background,
                            background_clip=background_clip, head=head)
    known = openset.max_scores(oof["probs"])
    bg = openset.max_scores(oof["background"]) if oof["background"] is not None else None
    threshold, how = openset.choose_threshold(known, bg, n_classes=oof["probs"].shape[1])
    acc = float((oof["probs"].argmax(1) == oof["targets"].argmax(1)).mean())
    log.info("unknown threshold %.3f (%s)", threshold, how)
    return OpenSet(threshold=round(float(threshold), 6), method=f"out-of-fold over {oof['folds']} folds of the "
                   f"training clips; {how}", n_known=int(len(known)), n_background=0 if bg is None else int(len(bg)),
                   folds=int(oof["folds"]), oof_accuracy=round(acc, 6),
                   known_auroc_background=None if bg is None else round(openset.auroc(known, bg), 6))
