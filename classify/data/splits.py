"""Train/validation splits that never leak a recording (pure: arrays in, arrays out).

Every function works on one entry per *clip* (a manifest row): ``strata`` [shape=(n,)] the label
used for stratification (the first label of a clip), ``groups`` [shape=(n,)] the recording a clip
was cut from (manifest ``group``). All images of one clip follow their clip, and all clips of one
group land on the same side, so neither tiles nor sibling cuts of a recording straddle a split.

A class whose clips all come from a single recording cannot be validated without leakage: it is
kept entirely in training, left out of validation, and reported in ``Split.unvalidated`` (the
caller warns). Validating it would mean testing on the very recording the model trained on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ClassifyError


@dataclass(frozen=True)
class Split:
    """``valid`` [shape=(n,), bool]: True for validation clips; ``unvalidated``: class names
    kept out of validation because all their clips share one recording."""

    valid: np.ndarray
    unvalidated: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Selection:
    """Image indices for training and validation, and what the split left out."""

    train: np.ndarray
    valid: np.ndarray
    unvalidated: tuple[str, ...] = ()
    dropped: int = 0


def single_group_classes(strata: np.ndarray, groups: np.ndarray) -> list[str]:
    """Classes (values of ``strata``) whose clips all come from one group, sorted."""
    out = []
    for c in np.unique(strata):
        if len(np.unique(groups[strata == c])) < 2:
            out.append(str(c))
    return out


def group_kfold(strata, groups, *, n_splits: int, seed: int = 0) -> np.ndarray:
    """Fold index 0..n_splits-1 per clip, stratified by ``strata`` and grouped by ``groups``.

    Clips of single-group classes get fold -1 (never validated; see module docstring).
    """
    strata, groups = np.asarray(strata).astype(str), np.asarray(groups).astype(str)
    n_groups = len(np.unique(groups))
    if n_splits < 2:
        raise ClassifyError(f"folds={n_splits} must be at least 2")
    if n_groups < n_splits:
        raise ClassifyError(
            f"only {n_groups} distinct recordings (manifest 'group'); cannot make {n_splits} "
            "grouped folds; use fewer folds"
        )
    folds = np.full(len(strata), -1, dtype=np.int64)
    lonely = set(single_group_classes(strata, groups))
    keep = np.array([s not in lonely for s in strata])
    if keep.sum() == 0:
        raise ClassifyError("every class comes from a single recording; nothing can be validated")
    idx = np.flatnonzero(keep)
    if len(np.unique(groups[idx])) < n_splits:
        raise ClassifyError(
            f"only {len(np.unique(groups[idx]))} recordings (manifest 'group') of classes that can be split; "
            f"cannot make {n_splits} grouped folds; use fewer folds"
        )
    largest = max(int((strata[idx] == c).sum()) for c in np.unique(strata[idx]))
    if largest < n_splits:
        raise ClassifyError(
            f"every class has fewer than {n_splits} clips (the largest has {largest}); cannot make "
            f"{n_splits} stratified folds; use {max(2, largest)} folds or fewer, or add clips"
        )
    from sklearn.model_selection import StratifiedGroupKFold  # here: loading a run to predict needs no sklearn

    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only k members"
        for k, (_, va) in enumerate(sgkf.split(idx, strata[idx], groups[idx])):
            folds[idx[va]] = k
    return folds


def valid_pct_split(strata, groups, *, valid_pct: float, seed: int = 0) -> Split:
    """About ``valid_pct`` of clips for validation, stratified and grouped.

    Implemented as one fold of a ``round(1 / valid_pct)``-fold grouped stratified split.
    """
    if not 0 < valid_pct < 1:
        raise ClassifyError(f"valid_pct={valid_pct} must be between 0 and 1 (e.g. 0.2)")
    n_splits = max(2, int(round(1 / valid_pct)))
    strata, groups = np.asarray(strata).astype(str), np.asarray(groups).astype(str)
    lonely = set(single_group_classes(strata, groups))  # never validated: their groups do not count
    splittable = np.array([s not in lonely for s in strata])
    n_splits = max(2, min(n_splits, len(np.unique(groups[splittable]))))
    if splittable.any():  # tiny sets: fewer, larger folds rather than a fold no class can fill
        n_splits = max(2, min(n_splits, max(int((strata[splittable] == c).sum()) for c in np.unique(strata[splittable]))))
    folds = group_kfold(strata, groups, n_splits=n_splits, seed=seed)
    return Split(valid=folds == 0, unvalidated=tuple(single_group_classes(strata, groups)))


def inner_split(strata, groups, *, inner_pct: float, seed: int = 0) -> Split:
    """An inner validation split carved from a training part (pass only its clips): about
    ``inner_pct`` of them (more when a class has fewer than ``1 / inner_pct`` clips, at most
    half), grouped and stratified like the outer split, with a seed of its own.

    Every choice made from data (best checkpoint, early stop, multi-label threshold, the head-only
    regularisation) is made on this split, so the outer validation fold stays unseen until it is
    scored.
    """
    strata, groups = np.asarray(strata).astype(str), np.asarray(groups).astype(str)
    if len(np.unique(groups)) < 2:
        raise ClassifyError(
            f"the training part has {len(np.unique(groups))} recording(s) (manifest 'group'); an inner "
            "validation split for early stopping / best-checkpoint / threshold choices needs at least 2; "
            "use the fixed schedule (--patience 0, no --restore-best)"
        )
    lonely = set(single_group_classes(strata, groups))
    counts = [int((strata == c).sum()) for c in np.unique(strata) if c not in lonely]
    if counts:  # small training parts: a larger share, so that every class can be in it
        inner_pct = min(0.5, max(inner_pct, 1.0 / max(2, min(counts))))
    return valid_pct_split(strata, groups, valid_pct=inner_pct, seed=seed + 7919)


def inner_selection(clip_of_image, strata, groups, train_images, *, inner_pct: float,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image indices ``(inner_train, inner_valid)`` carved out of ``train_images`` by
    :func:`inner_split` over their clips. ``clip_of_image`` [shape=(n_images,)] maps an image to
    its clip; ``strata`` / ``groups`` are per clip. Both results are subsets of ``train_images``.
    """
    clip_of_image = np.asarray(clip_of_image)
    train_images = np.asarray(train_images)
    clips = np.unique(clip_of_image[train_images])
    split = inner_split(np.asarray(strata)[clips], np.asarray(groups)[clips], inner_pct=inner_pct, seed=seed)
    inner_clips = set(clips[split.valid].tolist())
    held = np.array([c in inner_clips for c in clip_of_image[train_images]], dtype=bool)
    return train_images[~held], train_images[held]


def inner_for(ds, sel, cfg):
    """The :class:`Selection` ``(inner train, inner valid)`` carved from
    ``sel.train`` of an :class:`~classify.data.imageset.ImageSet` ``ds`` by :func:`inner_selection`
    (``cfg.inner_pct``, ``cfg.seed``); ``sel.valid`` is not touched. Early stopping, the best
    checkpoint, the multi-label threshold and the head-only ``C`` are decided on it."""
    clips = ds.clip_table()
    strata = clips["labels"].map(lambda labs: labs[0]).to_numpy().astype(str)
    groups = clips["group"].astype(str).to_numpy()
    tr, va = inner_selection(ds.table["clip"].to_numpy(), strata, groups, sel.train,
                             inner_pct=cfg.inner_pct, seed=cfg.seed or 0)
    if not len(va) or not len(tr):
        raise ClassifyError(f"the training part ({len(sel.train)} images) is too small to carve an inner "
                            f"validation split of {cfg.inner_pct:.0%}; use the fixed schedule "
                            "(--patience 0, no --restore-best) or a fixed --head-c")
    return Selection(tr, va)


def fold_split(folds, k: int) -> Split:
    """Clips whose manifest fold equals ``k`` are validation."""
    folds = np.asarray(folds, dtype=float)
    if np.isnan(folds).all():
        raise ClassifyError("--valid-fold needs a 'fold' column in manifest.csv; this one has none")
    valid = folds == k
    if not valid.any():
        present = ", ".join(str(int(f)) for f in np.unique(folds[~np.isnan(folds)]))
        raise ClassifyError(f"--valid-fold {k}: no clip has fold {k}; folds present: {present}")
    return Split(valid=valid)


def leaked_groups(valid, groups) -> list[str]:
    """Groups that have clips on both sides of a split (should be empty)."""
    valid, groups = np.asarray(valid, bool), np.asarray(groups).astype(str)
    return sorted(set(groups[valid]) & set(groups[~valid]))


def restrict_valid_to_verified(valid, verified, groups) -> tuple[np.ndarray, np.ndarray]:
    """Validate on verified clips only; returns ``(valid, train)`` masks.

    Unverified clips on the validation side move to training unless their recording also has
    validation clips (then they are dropped, to avoid leakage).
    """
    valid = np.asarray(valid, bool)
    verified = np.asarray(verified, bool)
    groups = np.asarray(groups).astype(str)
    new_valid = valid & verified
    valid_groups = set(groups[new_valid])
    movable = valid & ~verified & np.array([g not in valid_groups for g in groups])
    train = ~valid | movable
    return new_valid, train
