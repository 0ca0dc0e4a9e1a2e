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
    per_fold, oof, flagged = {}, [], {}
    from spec2img.progress import Progress

    folds_bar = Progress(len(fold_ids), unit="fold", desc="cv", every=0.0, min_items=1, logger=log)
    for k in fold_ids:
        run_dir = out / f"fold_{k}"
        log.info("fold %d of %d", fold_ids.index(k) + 1, len(fold_ids))
        missing, drop = unscorable(ds, folds, k, test)
        if missing:
            log.warning("fold %d: class(es) %s have validation clips but no training clips in this fold; "
                        "their %d clip(s) are left out of fold %d's scores", k, ", ".join(map(repr, missing)),
                        int(drop.sum()), k)
            flagged[int(k)] = {"classes": missing, "unscored_clips": int(drop.sum())}
        if not ((folds == k) & ~test & ~drop).any():
            log.warning("fold %d: nothing left to score; skipped", k)
            folds_bar.update()
            continue
        m = fit(ds, tcfg.replace(out=str(run_dir), valid_fold=None, valid_csv=None), run_dir,
                clip_valid=folds == k, exclude=test | drop)
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
    clips = ds.clip_table()  # suspect_labels.csv; the log counts unverified suspects
    write_suspect_labels(out, oof_df, ds.classes, multi_label=ds.multi_label,
                         verified=dict(zip(clips["source"], clips["manually_verified"])))
    result = {"folds": per_fold, **_mean_std(per_fold), "oof": _oof_score(oof_df, ds, per_fold)}
    head = "lwlrap" if ds.multi_label else "accuracy"
    fold_ids = list(per_fold)
    result["ensemble"] = _ensemble(ds, out, fold_ids, test) if test.any() else None
    result["headline"] = {
        "metric": head, "value": result["oof"].get(head),
        "computed_on": (f"pooled out-of-fold predictions of {len(oof_df['source'].unique())} clips: every clip "
                        "scored once, by the one fold model that never trained on it or chose anything from it"),
    }
    result["trained_in_every_fold_never_scored"] = always
    result["flagged_folds"] = flagged
    result["ensemble_note"] = ("geometric-mean fold ensemble scored on the --holdout-pct test clips" if test.any()
                               else "fold ensemble not scored: it needs held-out clips (--holdout-pct); every "
                                    "cv clip trained K-1 of its models")
    write_metrics(out, result, name="cv_metrics.json")
    log.info("cv %s (headline): out-of-fold %.4f over %d clips; fold mean %.4f +- %.4f over %d folds",
             head, result["oof"].get(head, np.nan), len(oof_df["source"].unique()),
             result["mean"].get(head, np.nan), result["std"].get(head, np.nan), len(per_fold))
    if result["ensemble"] is not None:
        log.info("fold ensemble (geometric mean) on %d held-out clips: %s %.4f (single fold models %.4f)",
                 result["ensemble"]["n_test_clips"], head, result["ensemble"]["ensemble"].get(head, np.nan),
                 result["ensemble"]["single_fold_mean"].get(head, np.nan))
    else:
        log.info("fold ensemble: not scored (only with --holdout-pct, which holds clips out of every fold)")
    if always:
        log.info("class(es) %s trained in every fold and never scored (one recording each)", ", ".join(always))


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
