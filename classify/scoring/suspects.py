"""Suspect labels: clips whose given label disagrees with their own out-of-fold predictions.

Confident learning (Northcutt, Jiang & Chuang 2021, "Confident learning: estimating uncertainty in
dataset labels"), on the out-of-fold probabilities of a ``classify cv`` run:

1. per-class threshold ``t_j`` = the mean probability of class ``j`` over the clips labelled ``j``
   (the class's average self-confidence);
2. the *confident joint* counts, for each given label ``i``, the clips whose most probable class
   among those reaching their threshold (``p_j >= t_j``) is ``j``; its rows are rescaled to the
   number of clips labelled ``i`` (calibration), so off-diagonal cell ``(i, j)`` estimates how many
   clips labelled ``i`` really are ``j``;
3. for each off-diagonal cell, that many clips labelled ``i`` with the largest margin
   ``p_j - p_i`` are *suspect* ("prune by noise rate", cleanlab's default), except clips whose most
   probable class is their given label; the *suggested* label is the most probable other class;
4. suspects are ranked by the margin ``score = p_suggested - p_given`` (in [-1, 1]; higher = more
   suspect), worst first.

Single-label data only; clips with several windows are scored on the mean of their windows'
probabilities. Pure numpy; :func:`write_suspect_labels` is the only function that touches disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SUSPECTS_NAME = "suspect_labels.csv"
COLUMNS = ("file", "given", "suggested", "score")


@dataclass(frozen=True)
class Suspects:
    """Result of :func:`find_suspects`.

    ``rows`` [shape=(m,)] indices of the suspect rows, worst first; ``suggested`` [shape=(m,)] class
    index suggested for each; ``score`` [shape=(m,)] ``p_suggested - p_given``; ``thresholds``
    [shape=(K,)] per-class self-confidence thresholds (NaN for a class no row is labelled with).
    """

    rows: np.ndarray
    suggested: np.ndarray
    score: np.ndarray
    thresholds: np.ndarray


def class_thresholds(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """``t_j`` = mean of ``probs[given == j, j]`` [shape=(K,)]; NaN where no row is labelled ``j``."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    t = np.full(k, np.nan)
    for j in range(k):
        sel = given == j
        if sel.any():
            t[j] = probs[sel, j].mean()
    return t


def confident_joint(probs: np.ndarray, given: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Counts ``[shape=(K, K)]``: row = given label, column = the most probable class among those
    reaching their threshold (rows with no class at its threshold are not counted)."""
    k = probs.shape[1]
    above = probs >= np.where(np.isnan(thresholds), np.inf, thresholds)[None, :]
    best = np.where(above, probs, -np.inf).argmax(axis=1)
    has = above.any(axis=1)
    cj = np.zeros((k, k), dtype=np.int64)
    np.add.at(cj, (given[has], best[has]), 1)
    return cj


def find_suspects(probs: np.ndarray, given: np.ndarray) -> Suspects:
    """Confident-learning label issues of ``probs`` [shape=(n, K)] (out-of-fold) and ``given``
    [shape=(n,)] class indices; see the module docstring for the rule."""
    probs = np.asarray(probs, dtype=np.float64)
    given = np.asarray(given, dtype=np.int64)
    n, k = probs.shape
    if given.shape != (n,):
        raise ValueError(f"given has shape {given.shape}, expected ({n},)")
    t = class_thresholds(probs, given)
    cj = confident_joint(probs, given, t)
    counts = np.bincount(given, minlength=k)
    rows_cj = cj.sum(axis=1)
    calibrated = cj * np.divide(counts, rows_cj, out=np.zeros(k), where=rows_cj > 0)[:, None]
    issue = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(given == i)
        for j in range(k):
            m = int(round(calibrated[i, j])) if i != j else 0
            if m <= 0:
                continue
            margin = probs[members, j] - probs[members, i]
            issue[members[np.argsort(-margin, kind="stable")[:m]]] = True
    issue &= probs.argmax(axis=1) != given  # the model agrees with the given label: keep it
    rows = np.flatnonzero(issue)
    others = probs[rows].copy()
    others[np.arange(len(rows)), given[rows]] = -np.inf
    sugg = others.argmax(axis=1)
    score = probs[rows, sugg] - probs[rows, given[rows]]
    order = np.lexsort((rows, -score))
    return Suspects(rows[order], sugg[order], score[order], t)


def clip_probabilities(preds: pd.DataFrame, classes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Average a predictions table (``valid_predictions.csv`` / ``oof_predictions.csv`` columns:
    ``source``, ``labels``, ``p_<class>``) over each clip's windows.

    Returns ``(clips, probs)``: one row per clip (``source``, ``labels`` of its first window) in
    first-seen order, and the mean probabilities [shape=(n_clips, K)].
    """
    cols = [f"p_{c}" for c in classes]
    key = preds["source"].astype(str) if "source" in preds else preds["image"].astype(str)
    codes, uniq = pd.factorize(key)
    probs = np.zeros((len(uniq), len(classes)))
    np.add.at(probs, codes, preds[cols].to_numpy(dtype=np.float64))
    probs /= np.bincount(codes, minlength=len(uniq))[:, None]
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    clips = pd.DataFrame({"source": uniq.astype(str),
                          "labels": preds["labels"].astype(str).to_numpy()[first]})
    return clips, probs


def suspect_table(preds: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """``file, given, suggested, score`` (worst first) of a single-label predictions table, plus
    ``p_<class>`` columns (the clip's mean probabilities) for the report; empty when nothing is
    suspect. Clips whose label is not one of ``classes`` or that carry several labels are skipped."""
    clips, probs = clip_probabilities(preds, classes)
    index = {c: i for i, c in enumerate(classes)}
    given = np.array([index.get(str(v), -1) for v in clips["labels"]], dtype=np.int64)
    ok = given >= 0
    found = find_suspects(probs[ok], given[ok])
    idx = np.flatnonzero(ok)[found.rows]
    out = pd.DataFrame({
        "file": clips["source"].to_numpy()[idx],
        "given": [classes[g] for g in given[idx]],
        "suggested": [classes[s] for s in found.suggested],
        "score": np.round(found.score, 4),
    })
    return pd.concat([out, pd.DataFrame(probs[idx], columns=[f"p_{c}" for c in classes])], axis=1)


def write_suspect_labels(run_dir: Path, preds: pd.DataFrame, classes: list[str], *,
                         multi_label: bool = False, verified: dict | None = None) -> Path | None:
    """Write ``run_dir/suspect_labels.csv`` (``file, given, suggested, score``) from out-of-fold
    predictions; None (and nothing written) for multi-label runs, where the rule is not defined.
    ``verified`` ({file: 0/1/NA}, the manifest's ``manually_verified``): the log line says how many
    suspects are unverified."""
    if multi_label:
        log.info("multi-label run: no suspect labels (confident learning here is single-label)")
        return None
    from spec2img.io import sheet_table, write_atomic

    table = suspect_table(preds, classes)
    path = Path(run_dir) / SUSPECTS_NAME
    write_atomic(path, sheet_table(table[list(COLUMNS)]).to_csv(index=False).encode())
    n_clips = preds["source"].nunique() if "source" in preds else len(preds)
    unverified = ""
    if verified and any(v is not None and not pd.isna(v) for v in verified.values()):
        n_unv = sum(1 for f in table["file"] if not pd.isna(verified.get(f)) and int(verified.get(f)) == 0)
        unverified = f" ({n_unv} of them not manually verified)"
    log.info("%d of %d clips have a suspect label (out-of-fold predictions contradict it)%s: %s",
             len(table), n_clips, unverified, path)
    return path
