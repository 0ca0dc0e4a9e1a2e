"""``classify cv``: one run per fold, out-of-fold predictions, and a geometric-mean fold ensemble.

What each number means (and why):

- ``headline``: the pooled out-of-fold score (``oof``), what a cv run reports first.
- ``folds[k]``, ``mean``, ``std``: the metrics of fold ``k``'s model on its own validation fold,
  and their mean / standard deviation over the real folds. A class whose clips all come from one
  recording has no fold: it trains in every fold and is never scored
  (``trained_in_every_fold_never_scored``). With ``--predefined-folds``, classes a fold
  validates but does not train are left out of that fold's scores (``flagged_folds``).
- ``oof``: the pooled out-of-fold score: every clip scored by the one fold model that did not
  train on it. This is the honest cross-validated estimate of a single model.
- ``ensemble``: the geometric mean of all fold models' probabilities (the Kaggle kernels' fold
  ensemble). Every clip of the cv data was in the training set of ``K - 1`` of those models, so an
  ensemble score on out-of-fold data would be leaked. It is therefore scored only on a held-out
  test split (``holdout_pct`` > 0: grouped, stratified, never seen by any fold), next to the mean
  score of the single fold models on the same test clips; with no held-out split it is ``null``.
- ``coverage``: how many of the cv clips the headline scores. Below :data:`COVERAGE_WARN` of them
  (predefined folds this unbalanced: ESC-50's fold column on a subset, one fold holding nearly
  every clip) the headline, the log and the report say "over N of M clips" first, and the log
  suggests ``--folds K``.
- Unverified clips (``manually_verified`` = 0, without ``--valid-unverified``): fold ``k``'s model
  does not train on fold ``k``'s unverified clips and predicts them afterwards
  (``oof_unscored_predictions.csv``), so every clip has an out-of-fold prediction and
  ``suspect_labels.csv`` ranks the unverified clips too (the likeliest to be wrong); they stay out
  of the headline, which says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from spec2img.manifest import split_cell

from ..config import CVConfig, TrainConfig  # noqa: F401  (CVConfig: its home was here)
from ..data import splits
from ..data.imageset import ImageSet
from ..errors import ClassifyError
from ..runfolder import load_model, new_run_dir, read_table, write_json, write_metrics, write_predictions, writing_run_dir
from ..scoring.evaluate import clip_average, geometric_mean
from ..scoring.metrics import headline
from ..scoring.suspects import write_suspect_labels

log = logging.getLogger(__name__)

#: The headline covers fewer than this share of the cv clips: said first, in the log and the report.
COVERAGE_WARN = 0.9
UNSCORED_NAME = "unscored_predictions.csv"  # in fold_<k>/: fold k's unverified clips, never trained on
OOF_UNSCORED_NAME = "oof_unscored_predictions.csv"


def fold_assignment(ds: ImageSet, cfg: CVConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(fold (n_clips,), test (n_clips,) bool)``: fold label per clip (-1 = always trained on)."""
    clips = ds.clip_table()
    strata = clips["labels"].map(lambda labs: labs[0]).to_numpy().astype(str)
    groups = clips["group"].astype(str).to_numpy()
    seed = cfg.train.seed or 0
    test = np.zeros(len(clips), dtype=bool)
    if cfg.holdout_pct:
        test = splits.valid_pct_split(strata, groups, valid_pct=cfg.holdout_pct, seed=seed + 1).valid
    folds = np.full(len(clips), -1, dtype=np.int64)
    if cfg.predefined_folds:
        f = clips["fold"].to_numpy(dtype=float, na_value=np.nan)
        if np.isnan(f).all():
            raise ClassifyError("--predefined-folds needs a 'fold' column in manifest.csv; use --folds K")
        folds[~np.isnan(f)] = f[~np.isnan(f)].astype(np.int64)
    else:
        rest = ~test
        k = splits.group_kfold(strata[rest], groups[rest], n_splits=cfg.folds, seed=seed)
        folds[rest] = np.where(k >= 0, k + 1, -1)  # -1: single-recording classes, trained on in every fold
        for name in splits.single_group_classes(strata[rest], groups[rest]):
            log.warning("class %r: all its clips come from one recording; trained on in every fold, "
                        "never validated", name)
    folds[test] = -1
    return folds, test


def _single_recording_classes(ds: ImageSet, test: np.ndarray) -> list[str]:
    clips = ds.clip_table()
    strata = clips["labels"].map(lambda labs: labs[0]).to_numpy().astype(str)
    return splits.single_group_classes(strata[~test], clips["group"].astype(str).to_numpy()[~test])


def unscorable(ds: ImageSet, folds: np.ndarray, k: int, exclude: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Classes that fold ``k``'s validation clips carry but its training clips do not (a model
    cannot learn them there), and the validation clips carrying one of them (bool per clip).

    ``--predefined-folds`` can produce this (e.g. ESC-50's fold column on a subset); those clips
    are left out of fold ``k``'s scores, and the caller warns.
    """
    labels = ds.clip_table()["labels"].to_list()
    valid = (folds == k) & ~exclude
    train = (folds != k) & ~exclude
    trained = {lab for i in np.flatnonzero(train) for lab in labels[i]}
    missing = sorted({lab for i in np.flatnonzero(valid) for lab in labels[i]} - trained)
    drop = np.array([bool(valid[i] and set(labels[i]) & set(missing)) for i in range(len(labels))], dtype=bool)
    return missing, drop


def run_cv(ds: ImageSet, cfg: CVConfig, fit: Callable[..., dict], *,
           finish: Callable[[Path], None] | None = None) -> Path:
    """Train every fold of ``ds`` with ``fit`` (``classify.training.train.fit`` or
    ``headonly.fit``, as :func:`classify.commands.cv` chose); write ``fold_<k>/``,
    ``oof_predictions.csv``, ``cv_metrics.json``. ``finish(out)`` runs last, while the run folder
    is still locked (the CV entry builds the report there)."""
    tcfg = cfg.train
    out = Path(tcfg.out) if tcfg.out else new_run_dir(Path("runs"), arch=f"cv-{tcfg.arch}")
    with writing_run_dir(out):  # a second cv into --out stops; released however this ends
        _run_folds(ds, cfg, out, fit)
        if finish is not None:
            finish(out)
    return out


def _run_folds(ds: ImageSet, cfg: CVConfig, out: Path, fit: Callable[..., dict]) -> None:
    """Every fold's run folder, then ``oof_predictions.csv``, ``suspect_labels.csv``, ``cv_metrics.json``."""
    tcfg = cfg.train
    write_json(out / "cv.json", cfg.to_dict())
    folds, test = fold_assignment(ds, cfg)
    fold_ids = sorted(k for k in np.unique(folds) if k >= 0)
    if len(fold_ids) < 2:
        raise ClassifyError(f"only {len(fold_ids)} fold(s) to validate on; need at least 2")
    always = [] if cfg.predefined_folds else _single_recording_classes(ds, test)
    unverified = unverified_clips(ds, tcfg)
    per_fold, oof, flagged, unscored = {}, [], {}, []
    from spec2img.progress import Progress

    folds_bar = Progress(len(fold_ids), unit="fold", desc="cv", every=0.0, min_items=1, logger=log)
    for k in fold_ids:
        run_dir = out / f"fold_{k}"
        log.info("fold %d (%d of %d) -> %s", k, fold_ids.index(k) + 1, len(fold_ids), run_dir.name)
        missing, drop = unscorable(ds, folds, k, test)
        if missing:
            names = ", ".join(map(repr, missing[:4])) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            log.warning("fold %d: %d class(es) (%s) have validation clips but no training clips in this fold; "
                        "their %d clip(s) are left out of the scores", k, len(missing), names, int(drop.sum()))
            flagged[int(k)] = {"classes": missing, "unscored_clips": int(drop.sum())}
        hold = unverified & (folds == k) & ~test & ~drop  # predicted by this fold's model, not scored
        if not ((folds == k) & ~test & ~drop & ~hold).any():
            log.warning("fold %d: nothing left to score; skipped", k)
            folds_bar.update()
            continue
        m = fit(ds, tcfg.replace(out=str(run_dir), valid_fold=None, valid_csv=None), run_dir,
                clip_valid=folds == k, exclude=test | drop | hold)
        if hold.any():
            unscored.append(predict_unscored(ds, hold, run_dir).assign(fold=int(k)))
        if missing:
            m = {**m, "unscorable_classes": missing, "unscored_clips": int(drop.sum())}
            write_metrics(run_dir, m)
        per_fold[int(k)] = m
        pred = read_table(run_dir / "valid_predictions.csv")
        pred.insert(0, "fold", int(k))
        oof.append(pred)
        folds_bar.update()
    folds_bar.close()
    oof_df = pd.concat(oof, ignore_index=True)
    write_predictions(out, oof_df, name="oof_predictions.csv")
    ranked = oof_df
    if unscored:
        unscored_df = pd.concat(unscored, ignore_index=True)
        write_predictions(out, unscored_df, name=OOF_UNSCORED_NAME)
        ranked = pd.concat([oof_df, unscored_df], ignore_index=True)
    clips = ds.clip_table()  # suspect_labels.csv ranks unverified clips too; the log counts them
    write_suspect_labels(out, ranked, ds.classes, multi_label=ds.multi_label,
                         verified=dict(zip(clips["source"], clips["manually_verified"])))
    result = {"folds": per_fold, **_mean_std(per_fold), "oof": _oof_score(oof_df, ds, per_fold)}
    head = "lwlrap" if ds.multi_label else "accuracy"
    fold_ids = list(per_fold)
    result["ensemble"] = _ensemble(ds, out, fold_ids, test) if test.any() else None
    n_scored = int(oof_df["source"].nunique())
    cover = coverage(n_scored, int((~test).sum()), folds[~test], n_unverified=int(sum(len(u) for u in unscored)),
                     flagged=sum(f["unscored_clips"] for f in flagged.values()), predefined=cfg.predefined_folds)
    result["coverage"] = cover
    result["headline"] = {
        "metric": head, "value": result["oof"].get(head),
        "computed_on": (f"{cover['prefix']}pooled out-of-fold predictions of {n_scored} clips: every clip "
                        "scored once, by the one fold model that never trained on it or chose anything from it"
                        + cover["suffix"]),
    }
    result["trained_in_every_fold_never_scored"] = always
    result["flagged_folds"] = flagged
    result["ensemble_note"] = ("geometric-mean fold ensemble scored on the --holdout-pct test clips" if test.any()
                               else "fold ensemble not scored: it needs held-out clips (--holdout-pct); every "
                                    "cv clip trained K-1 of its models")
    write_metrics(out, result, name="cv_metrics.json")
    log.info("cv %s (headline): out-of-fold %.4f over %s clips; fold mean %.4f +- %.4f over %d folds",
             head, result["oof"].get(head, np.nan), f"{n_scored} of {cover['n_clips']}" if cover["partial"]
             else n_scored, result["mean"].get(head, np.nan), result["std"].get(head, np.nan), len(per_fold))
    if cover["partial"]:
        log.warning("%s", cover["warning"])
    if result["ensemble"] is not None:
        log.info("fold ensemble (geometric mean) on %d held-out clips: %s %.4f (single fold models %.4f)",
                 result["ensemble"]["n_test_clips"], head, result["ensemble"]["ensemble"].get(head, np.nan),
                 result["ensemble"]["single_fold_mean"].get(head, np.nan))
    else:
        log.info("fold ensemble: not scored (only with --holdout-pct, which holds clips out of every fold)")
    if always:
        log.info("class(es) %s trained in every fold and never scored (one recording each)", ", ".join(always))


def unverified_clips(ds: ImageSet, tcfg: TrainConfig) -> np.ndarray:
    """Clips (bool per clip) with ``manually_verified`` = 0 that cv does not score: every one of
    them when the manifest marks any and ``--valid-unverified`` is off, else none."""
    clips = ds.clip_table()
    if tcfg.valid_unverified or "manually_verified" not in clips:
        return np.zeros(len(clips), dtype=bool)
    v = pd.to_numeric(clips["manually_verified"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return v == 0


def predict_unscored(ds: ImageSet, hold: np.ndarray, run_dir: Path) -> pd.DataFrame:
    """Fold ``run_dir``'s model on the clips ``hold`` (bool per clip; it never trained on them),
    written as ``run_dir/unscored_predictions.csv`` (the ``valid_predictions.csv`` layout) and returned."""
    from ..models.classifier import predict_windows
    from ..runfolder import write_predictions
    from ..scoring.evaluate import per_item_loss

    idx = np.flatnonzero(hold[ds.table["clip"].to_numpy()])
    model, info = load_model(run_dir)
    probs, _ = predict_windows(model, [ds.images[i] for i in idx], width=info.model.crop_width,
                               multi_label=ds.multi_label)
    probs = probs.numpy()
    losses = per_item_loss(probs, ds.targets[idx], multi_label=ds.multi_label)
    path = write_predictions(run_dir, ds.table.iloc[idx].reset_index(drop=True), probs, losses, ds.classes,
                             threshold=info.model.threshold, name=UNSCORED_NAME)
    df = read_table(path)  # the one reader: spreadsheet-safe cells turned back
    df.insert(0, "fold", 0)
    return df


def coverage(n_scored: int, n_clips: int, folds: np.ndarray, *, n_unverified: int, flagged: int,
             predefined: bool) -> dict:
    """How much of the cv data the headline scores, and what to say when it is not most of it.

    ``n_clips``: clips in the cv (not held out); ``folds`` [shape=(n_clips,)] their fold (-1:
    trained in every fold); ``n_unverified`` / ``flagged``: clips predicted but not scored
    (unverified) / left out because their class had no training clips in their fold. ``partial``
    when ``n_scored < COVERAGE_WARN * n_clips``; ``prefix``/``suffix`` go around the headline's
    ``computed_on`` and ``warning`` is the one log line then.
    """
    sizes = {int(k): int(n) for k, n in zip(*np.unique(folds[folds >= 0], return_counts=True))}
    partial = n_scored < COVERAGE_WARN * n_clips
    out = {"n_clips": n_clips, "n_scored": n_scored, "share": n_scored / n_clips if n_clips else 0.0,
           "n_unverified_unscored": n_unverified, "n_unscorable_class": flagged, "fold_sizes": sizes,
           "partial": bool(partial), "prefix": "", "suffix": "", "warning": ""}
    if n_unverified:
        out["suffix"] = (f"; {n_unverified} unverified clip(s) have out-of-fold predictions but are not scored "
                         "(suspect_labels.csv ranks them; --valid-unverified scores them)")
    if partial:
        why = []
        if flagged:
            why.append(f"{flagged} whose class was not trained in their fold")
        if n_unverified:
            why.append(f"{n_unverified} unverified")
        rest = n_clips - n_scored - flagged - n_unverified
        if rest > 0:
            why.append(f"{rest} in no validation fold")
        fix = ("the predefined folds are unbalanced (clips per fold: "
               + ", ".join(f"{k}: {n}" for k, n in sizes.items())
               + "); classify cv --folds 5 (without --predefined-folds) scores every clip" if predefined
               else "--valid-unverified scores the unverified clips too" if n_unverified
               else "see the fold warnings above")
        out["prefix"] = f"ONLY {n_scored} of {n_clips} clips ({n_scored / max(n_clips, 1):.0%}): "
        out["warning"] = (f"the cv headline covers only {n_scored} of {n_clips} clips "
                          f"({n_clips - n_scored} unscored: {', '.join(why)}); {fix}")
    return out


def _mean_std(per_fold: dict) -> dict:
    keys = [k for k, v in next(iter(per_fold.values())).items() if isinstance(v, float)
            and k in ("accuracy", "top3_accuracy", "map3", "macro_f1", "lwlrap", "mean_ap", "micro_f1")]
    vals = {k: np.array([m[k] for m in per_fold.values()], dtype=float) for k in keys}
    return {"mean": {k: float(v.mean()) for k, v in vals.items()},
            "std": {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in vals.items()}}


def _oof_score(oof: pd.DataFrame, ds: ImageSet, per_fold: dict) -> dict:
    pcols = [f"p_{c}" for c in ds.classes]
    probs = oof[pcols].to_numpy(dtype=float)
    index = {c: i for i, c in enumerate(ds.classes)}
    targets = np.zeros_like(probs)
    for r, labs in enumerate(oof["labels"]):
        targets[r, [index[x] for x in split_cell(labs)]] = 1
    clip = pd.factorize(oof["source"])[0]
    _, cp = clip_average(probs, clip)
    _, ct = clip_average(targets, clip)
    thr = float(np.mean([m["threshold"] for m in per_fold.values()])) if ds.multi_label else None
    return headline(cp, ct, multi_label=ds.multi_label, threshold=thr)


def _ensemble(ds: ImageSet, out: Path, fold_ids: list, test: np.ndarray) -> dict:
    """Score the geometric-mean fold ensemble and each fold model on the held-out test clips."""
    from ..models.classifier import predict_windows

    idx = np.flatnonzero(test[ds.table["clip"].to_numpy()])
    images = [ds.images[i] for i in idx]
    clip = ds.table["clip"].to_numpy()[idx]
    targets = ds.targets[idx]
    _, ct = clip_average(targets, clip)
    probs_each = []
    for k in fold_ids:
        model, info = load_model(out / f"fold_{k}")
        p, _ = predict_windows(model, images, width=info.model.crop_width, multi_label=ds.multi_label)
        probs_each.append(clip_average(p.numpy(), clip)[1])
    singles = [headline(p, ct, multi_label=ds.multi_label) for p in probs_each]
    ens = geometric_mean(probs_each, normalise=not ds.multi_label)
    return {"n_test_clips": int(len(ct)),
            "ensemble": headline(ens, ct, multi_label=ds.multi_label),
            "single_fold_mean": {k: float(np.mean([s[k] for s in singles])) for k in singles[0]}}
