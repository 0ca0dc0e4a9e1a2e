"""Open-set scoring ("none of these"): the unknown threshold, how it is chosen, how well it separates.

Pure numpy. The score of a clip is its highest class probability (the file probabilities
``classify predict`` computes: window probabilities averaged over the clip); a clip whose score is
below the threshold is reported as :data:`UNKNOWN`. The threshold is chosen on scores the model
did not train on (out-of-fold scores of the known classes, :mod:`classify.training.openset_fit`),
never on the clips it is then measured on.

Rules (:func:`choose_threshold`):

* known scores only: the ``target_false_reject`` quantile of the known scores (5 %: one known
  clip in twenty is called unknown); with fewer scores than that quantile needs (under 20 for
  5 %, as after a few taught examples) it cannot be estimated, and the threshold is halfway
  between chance (``1 / n_classes``) and the lowest known score, so a model taught from a handful
  of examples does not reject sounds of its own classes that are only a little unlike them;
* with background scores (recordings of "none of these", a ``_background`` class): the threshold
  maximising (known kept) - (background accepted) (Youden's J) between that quantile (background
  only ever raises the threshold) and the quantile that rejects ``max_false_reject`` of the known
  clips.
"""

from __future__ import annotations

import numpy as np

UNKNOWN = "unknown"
TARGET_FALSE_REJECT = 0.05
MAX_FALSE_REJECT = 0.2


def max_scores(probs: np.ndarray) -> np.ndarray:
    """The open-set score of each row: its highest class probability [shape=(n,)]."""
    return np.asarray(probs, dtype=np.float64).max(axis=1)


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of ``known`` (positive) against ``unknown`` scores (ties count 1/2).

    1.0: every known clip scores above every unknown one; 0.5: no separation."""
    known, unknown = np.asarray(known, float), np.asarray(unknown, float)
    if not len(known) or not len(unknown):
        return float("nan")
    allv = np.concatenate([known, unknown])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_known = ranks[:len(known)].sum()
    return float((r_known - len(known) * (len(known) + 1) / 2) / (len(known) * len(unknown)))


def false_reject_rate(known: np.ndarray, threshold: float) -> float:
    """Share of known clips whose score is below ``threshold`` (they would be called unknown)."""
    known = np.asarray(known, float)
    return float((known < threshold).mean()) if len(known) else float("nan")


def false_accept_rate(unknown: np.ndarray, threshold: float) -> float:
    """Share of unknown clips whose score reaches ``threshold`` (they would get a class)."""
    unknown = np.asarray(unknown, float)
    return float((unknown >= threshold).mean()) if len(unknown) else float("nan")


def choose_threshold(known: np.ndarray, background: np.ndarray | None = None, *,
                     target_false_reject: float = TARGET_FALSE_REJECT,
                     max_false_reject: float = MAX_FALSE_REJECT, n_classes: int | None = None) -> tuple[float, str]:
    """``(threshold, how)``: the unknown threshold from held-out scores (see the module docstring).

    Args:
        known: held-out scores of clips of the known classes [shape=(n,)], in [0, 1].
        background: held-out scores of "none of these" clips [shape=(m,)], or None.
        target_false_reject: share of known clips rejected when there is no background.
        max_false_reject: the most known clips a background-driven threshold may reject.
        n_classes: number of known classes (chance is ``1 / n_classes``), for the small-sample rule.

    Returns:
        The threshold in [0, 1] and one line saying how it was chosen.
    """
    known = np.sort(np.asarray(known, float))
    if not len(known):
        return 0.0, "no held-out scores of the known classes: threshold 0 (never unknown)"
    quantile = float(np.quantile(known, target_false_reject, method="lower"))
    few = len(known) * target_false_reject < 1 and n_classes
    if few:  # too few scores for that quantile: halfway between chance and the lowest known score
        quantile = min(quantile, (1.0 / n_classes + float(known[0])) / 2)
    if background is None or not len(background):
        if few:
            return quantile, (f"halfway between chance (1/{n_classes}) and the lowest of {len(known)} held-out "
                              f"scores of the known classes (too few for a {target_false_reject:.0%} quantile)")
        return quantile, (f"{target_false_reject:.0%} quantile of {len(known)} held-out scores of the "
                          f"known classes (about {target_false_reject:.0%} of known sounds called unknown)")
    background = np.asarray(background, float)
    cap = max(quantile, float(np.quantile(known, max_false_reject, method="lower")))
    # a threshold at a known score keeps that clip; one just above a background score rejects it
    candidates = np.unique(np.concatenate([known, np.nextafter(background, 2.0), [quantile]]))
    candidates = candidates[(candidates >= quantile) & (candidates <= cap)]
    j = [(1 - false_reject_rate(known, t)) - false_accept_rate(background, t) for t in candidates]
    best = float(candidates[int(np.argmax(j))])
    return best, (f"best (known kept - background accepted) over {len(known)} held-out known and "
                  f"{len(background)} background scores, rejecting at most {max_false_reject:.0%} of known")


def open_labels(probs: np.ndarray, classes: list[str], threshold: float | None) -> tuple[list[str], np.ndarray]:
    """``(label per row, score per row)``: the top class, or :data:`UNKNOWN` when the row's score is
    below ``threshold`` (None: never). ``probs`` [shape=(n, K)]; NaN rows give ``""``."""
    probs = np.asarray(probs, float)
    scores = probs.max(axis=1) if len(probs) else np.zeros(0)
    out = []
    for p, s in zip(probs, scores):
        if np.isnan(s):
            out.append("")
        elif threshold is not None and s < threshold:
            out.append(UNKNOWN)
        else:
            out.append(classes[int(p.argmax())])
    return out, scores
