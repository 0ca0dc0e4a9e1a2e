"""Probe, fine-tune or their average, chosen from the data: all scored on an inner split of the training part.

``classify fit`` / ``cv`` without ``--head-only`` / ``--fine-tune``
(:func:`classify.commands.choose_mode`): a set whose median class has fewer than
:data:`~classify.config.HEAD_ONLY_BELOW` clips gets the probe directly (the shortcut: a fine-tune
rarely wins there and costs minutes), a network without pretrained weights is fine-tuned; for every
other set :func:`fit` decides, inside each fit (so every cv fold decides on its own training part):

1. an inner split is carved from the training part (:func:`classify.data.splits.inner_for`,
   ``inner_pct``, grouped and stratified), the validation fold is not touched;
2. the probe (:mod:`classify.training.headonly`, seconds; frozen features from the cache) and the
   fine-tune (:mod:`classify.training.train`) are trained on the rest and score the inner clips
   (both with the same crop width); their average (mean of the two probabilities) is scored too;
3. :func:`decide` keeps the probe unless the fine-tune or the average beats it on the inner split
   by the headline metric (accuracy, or lwlrap for multi-label) *and* by a one-sided sign test on
   the inner clips where they disagree (p < :data:`SIGNIFICANCE`): a small inner split cannot make
   a noisy difference a switch (us8k-dev, train fold 1: the fine-tune led the probe 83.2% to 77.3%
   on 119 inner clips and then scored 67.6% to the probe's 73.6% on fold 2). Of two challengers
   that qualify, the average is kept only when it scores strictly higher than the fine-tune;
4. the probe, when chosen, is refitted on the whole training part (its features are cached: about
   the cost of the logistic fit); the fine-tune, when chosen, is *reused* as trained on the inner
   training part (no second fine-tune); the average, when chosen, is both: the reused fine-tune and
   the probe refitted on the whole training part with the fine-tune's crop width, held as one
   :class:`~classify.models.blend.Blend` (``model.json`` describes the probe member under
   ``probe``; ``model.pt`` holds both). Whichever is kept is then scored on the validation fold.

Cost: one fine-tune on ``1 - inner_pct`` of the training clips (a little less than a plain
``--fine-tune``) plus two probe fits; the kept fine-tune has not trained on the inner clips. A kept
average predicts through both networks (the probe's frozen body and the fine-tune).
``metrics.json`` gets ``mode_choice`` (inner scores, the decision, what was kept, the clips it read)
and ``mode`` (``head-only``, ``fine-tune`` or ``average``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..data import splits
from ..data.imageset import ImageSet, select_for
from ..errors import ClassifyError
from ..runfolder import write_json
from ..scoring.evaluate import clip_average, per_item_loss
from ..scoring.metrics import headline

log = logging.getLogger(__name__)

MODES = ("head-only", "fine-tune")
AVERAGE = "average"  # decide()'s third answer: both kept, their probabilities averaged
WORK = "mode_choice"  # scratch folder inside the run folder, removed when the choice is made


def shortcut(cfg: TrainConfig, clips_per_class: float) -> bool | None:
    """``head_only`` decided without training: True (the probe) below :data:`HEAD_ONLY_BELOW` clips in
    the median class with pretrained weights, False (fine-tune) without pretrained weights, else None
    (:func:`fit` chooses on an inner split); logged."""
    from ..config import HEAD_ONLY_BELOW

    if not (cfg.pretrained or cfg.weights is not None):
        return False
    if clips_per_class < HEAD_ONLY_BELOW:
        log.info("%.0f clips in the median class (< %d): fitting a logistic head on the frozen, pretrained "
                 "%s (--head-only); pass --fine-tune to fine-tune the whole network", clips_per_class,
                 HEAD_ONLY_BELOW, cfg.arch)
        return True
    log.info("%.0f clips in the median class (>= %d): the probe and the fine-tune are both scored on an inner "
             "split and the better kept; --head-only / --fine-tune force one", clips_per_class, HEAD_ONLY_BELOW)
    return None


#: A fine-tune (or the average) replaces the probe only when it beats it on the inner split at this
#: significance (one-sided sign test on the inner clips where the two disagree).
SIGNIFICANCE = 0.05


def paired_wins(better: np.ndarray, worse: np.ndarray) -> tuple[int, int, float]:
    """``(wins, losses, p)``: clips where ``better`` beats ``worse`` (bool or lower-loss per clip, both
    ``(m,)``: True = the first is better there) and the reverse, and the one-sided sign-test p-value of
    that many wins out of the clips where they differ (McNemar's exact test for correct/wrong)."""
    from scipy.stats import binomtest

    wins, losses = int(np.sum(better & ~worse)), int(np.sum(worse & ~better))
    p = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    return wins, losses, float(p)


def decide(probs: dict[str, np.ndarray], targets: np.ndarray, clip: np.ndarray, *, multi_label: bool,
           images: np.ndarray) -> dict:
    """The mode to keep from inner-split probabilities ``probs[mode]`` [shape=(n_images, K)] of the
    inner images ``images`` (indices into the image set, recorded), ``targets`` [shape=(n_images, K)],
    ``clip`` (clip id per image). Scores are per clip (window and image probabilities averaged), as
    the validation fold is scored.

    The probe is the default (seconds to refit, robust on little data). The fine-tune and the average
    (mean of the two probabilities) are challengers: one replaces the probe only when it scores higher
    *and* wins on significantly more inner clips than it loses (:func:`paired_wins`, one-sided sign
    test at :data:`SIGNIFICANCE`; a clip is won when the challenger is right and the probe wrong, or,
    multi-label, when its loss on the clip is lower). Of two challengers that qualify, the average is
    kept only when it scores strictly higher than the fine-tune (a tie keeps one network). Returns
    the record that goes into ``metrics.json``."""
    name = "lwlrap" if multi_label else "accuracy"
    _, ct = clip_average(targets, clip)
    cand = dict(probs)
    cand[AVERAGE] = average_probs(probs)  # what a kept Blend predicts
    scores, losses, per_clip = {}, {}, {}
    for mode, p in cand.items():
        _, cp = clip_average(p, clip)
        scores[mode] = float(headline(cp, ct, multi_label=multi_label)[name])
        loss = per_item_loss(cp, ct, multi_label=multi_label)
        losses[mode] = float(loss.mean())
        per_clip[mode] = loss if multi_label else cp.argmax(1) == ct.argmax(1)
    tests, beats = {}, []
    for mode in ("fine-tune", AVERAGE):
        if multi_label:  # lower loss on the clip than the probe's, and the reverse
            a, b = per_clip[mode] < per_clip["head-only"], per_clip["head-only"] < per_clip[mode]
        else:
            a, b = per_clip[mode], per_clip["head-only"]
        wins, lost, pval = paired_wins(a, b)
        tests[mode] = {"wins": wins, "losses": lost, "p": pval}
        if scores[mode] > scores["head-only"] and pval < SIGNIFICANCE:
            beats.append(mode)
    if not beats:
        keep = "head-only"
    elif beats == [AVERAGE] or (len(beats) == 2 and scores[AVERAGE] > scores["fine-tune"]):
        keep = AVERAGE
    else:
        keep = "fine-tune"
    single = max(MODES, key=lambda m: (scores[m], -losses[m], m == "head-only"))
    return {"metric": name, "inner_scores": scores, "inner_log_loss": losses, "mode": keep,
            "best_single": single, "average_best": keep == AVERAGE,
            "against_probe": tests, "significance": SIGNIFICANCE,
            "inner_images": [int(i) for i in images], "inner_clips": len(ct)}


def _inner_predictions(run_dir: Path, ds: ImageSet, images: np.ndarray) -> np.ndarray:
    """Probabilities ``[shape=(len(images), K)]`` from a run folder's ``valid_predictions.csv``, in
    the order of ``images``."""
    import pandas as pd

    pred = pd.read_csv(run_dir / "valid_predictions.csv", keep_default_na=False)
    where = {im: r for r, im in enumerate(pred["image"])}
    rows = [where[ds.table["image"].iloc[i]] for i in images]
    return pred[[f"p_{c}" for c in ds.classes]].to_numpy(float)[rows]


def fit(ds: ImageSet, cfg: TrainConfig, run_dir: Path, *,
        clip_valid: np.ndarray | None = None, exclude: np.ndarray | None = None) -> dict:
    """Choose the probe, the fine-tune or their average on an inner split (module docstring), write
    the run folder of the chosen one; same signature and result as :func:`classify.training.train.fit`."""
    from . import headonly, train

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = cfg.replace(head_only=None)
    sel = select_for(ds, base, clip_valid=clip_valid, exclude=exclude)
    try:
        inner = splits.inner_for(ds, sel, base)
    except ClassifyError as exc:  # e.g. too few recordings to hold some out: the size rule's choice
        log.warning("mode: no inner split to choose on (%s); fine-tuning", exc)
        return train.fit(ds, cfg.replace(head_only=False), run_dir, clip_valid=clip_valid, exclude=exclude)
    clip_of = ds.table["clip"].to_numpy()
    inner_valid = np.zeros(ds.n_clips, bool)
    inner_valid[clip_of[inner.valid]] = True
    in_train = np.zeros(ds.n_clips, bool)
    in_train[clip_of[sel.train]] = True
    log.info("mode: probe or fine-tune, scored on an inner split of %d training images (the %d validation "
             "images are not read)", len(inner.valid), len(sel.valid))
    work = run_dir / WORK
    probs, metrics = {}, {}
    for mode in MODES:  # the probe first: seconds
        sub = cfg.replace(head_only=mode == "head-only", out=str(work / mode), valid_fold=None, valid_csv=None)
        fn = headonly.fit if sub.head_only else train.fit
        metrics[mode] = fn(ds, sub, work / mode, clip_valid=inner_valid, exclude=~in_train)
        probs[mode] = _inner_predictions(work / mode, ds, inner.valid)
    choice = decide(probs, ds.targets[inner.valid], clip_of[inner.valid], multi_label=ds.multi_label,
                    images=inner.valid)
    keep = choice["mode"]
    s = choice["inner_scores"]
    t = choice["against_probe"]
    log.info("mode: %s (inner %s: probe %.4f, fine-tune %.4f, average %.4f on %d clips; against the probe: "
             "fine-tune %d wins / %d losses, p=%.2g, average %d / %d, p=%.2g; a challenger needs p < %g)%s",
             keep, choice["metric"], s["head-only"], s["fine-tune"], s[AVERAGE], choice["inner_clips"],
             t["fine-tune"]["wins"], t["fine-tune"]["losses"], t["fine-tune"]["p"], t[AVERAGE]["wins"],
             t[AVERAGE]["losses"], t[AVERAGE]["p"], SIGNIFICANCE,
             "; keeping both, their probabilities averaged" if keep == AVERAGE else "")
    if keep == "head-only":
        choice["kept"] = "probe refitted on the whole training part (cached features)"
        result = headonly.fit(ds, cfg.replace(head_only=True), run_dir, clip_valid=clip_valid, exclude=exclude)
    elif keep == AVERAGE:
        probe_dir = work / "probe-refit"
        ft_cfg = TrainConfig.load(work / "fine-tune")  # crop_seconds resolved: the blend predicts at its width
        probe_metrics = headonly.fit(ds, cfg.replace(head_only=True, crop_seconds=ft_cfg.crop_seconds), probe_dir,
                                     clip_valid=clip_valid, exclude=exclude)
        choice["probe_head_c"] = probe_metrics.get("head_c")  # the refitted probe's C (its run folder goes)
        threshold = None
        if ds.multi_label:  # the blend's own, chosen like the fine-tune's: best micro-F1 on the inner split
            from ..scoring.evaluate import best_threshold

            threshold = best_threshold(average_probs(probs), ds.targets[inner.valid])
            choice["threshold"] = float(threshold)
        choice["kept"] = ("the average of both: the fine-tune trained on the inner training part, reused (not "
                          "retrained), and the probe refitted on the whole training part (cached features)")
        result = _reuse(ds, sel, work / "fine-tune", run_dir, metrics["fine-tune"], probe_run=probe_dir,
                        threshold=threshold)
    else:
        choice["kept"] = "the fine-tune trained on the inner training part, reused (not retrained)"
        result = _reuse(ds, sel, work / "fine-tune", run_dir, metrics["fine-tune"])
    shutil.rmtree(work, ignore_errors=True)
    choice["inner_train_images"] = len(inner.train)
    result = {**result, "mode": keep, "mode_choice": choice}
    write_json(run_dir / "metrics.json", result)
    return result


def average_probs(probs: dict[str, np.ndarray]) -> np.ndarray:
    """The average's probabilities [shape=(n_images, K)]: the mean of the probe's and the fine-tune's."""
    return (probs["head-only"] + probs["fine-tune"]) / 2


def _reuse(ds: ImageSet, sel, inner_run: Path, run_dir: Path, inner_metrics: dict, *,
           probe_run: Path | None = None, threshold: float | None = None) -> dict:
    """Score the inner run's fine-tuned model on the validation fold ``sel.valid`` and write it as the
    run folder ``run_dir`` (model, configs, history; predictions of the validation fold).

    ``probe_run``: a probe's run folder (same crop width) to keep beside the fine-tune as one
    :class:`~classify.models.blend.Blend` (the average); ``threshold`` then the blend's multi-label
    threshold (None: 0.5). Without it the fine-tune keeps its own threshold."""
    import dataclasses

    import pandas as pd

    from ..runfolder import load_model
    from .evaluate import evaluate_and_save

    model, info = load_model(inner_run)
    model_info = info.model
    if probe_run is None:
        threshold = info.model.threshold
    else:
        from ..models.blend import Blend

        probe, probe_info = load_model(probe_run)
        if probe_info.model.crop_width != model_info.crop_width:  # mode.fit gives the probe the fine-tune's
            raise RuntimeError(f"blend: probe crop width {probe_info.model.crop_width} != fine-tune's "
                               f"{model_info.crop_width}")
        model = Blend(model, probe, multi_label=ds.multi_label)
        model_info = dataclasses.replace(model_info, probe=dataclasses.replace(probe_info.model, threshold=None))
    cfg = TrainConfig.load(inner_run).replace(out=str(run_dir), head_only=False)
    history = pd.read_csv(inner_run / "history.csv").to_dict("records")
    keys = ("lr", "train_seconds", "train_images_per_second", "epochs_run", "monitor", "bf16",
            "lp_ft_probe_seconds", "lp_ft_windows", "lp_ft_c")
    extra = {k: inner_metrics[k] for k in keys if k in inner_metrics}
    proto = dict(inner_metrics.get("protocol", {}))
    n_valid_clips = len(np.unique(ds.table["clip"].to_numpy()[sel.valid]))
    proto["scored_on"] = (f"validation fold: {n_valid_clips} clips, never trained on and never used for a "
                          "choice")
    proto["curves"] = "history.csv's valid columns: the inner split (the mode choice read it)"
    if probe_run is not None:
        proto["model"] = ("the average of the fine-tune's and the probe's probabilities (both networks in "
                          "model.pt; the curves are the fine-tune's)")
    extra["protocol"] = proto
    for name in ("lr_find.json", "lr_find.png", "learner.pkl"):  # optional files of the inner fit
        if (inner_run / name).is_file() and not (probe_run is not None and name == "learner.pkl"):
            shutil.copy2(inner_run / name, run_dir / name)  # a blend's learner.pkl would be the fine-tune alone
    width = model_info.crop_width
    result = evaluate_and_save(ds, sel, cfg, run_dir, model, width, history=history,
                               threshold=threshold, extra=extra, info=model_info if probe_run is not None else None)
    from .headonly import check_fine_tuned

    check_fine_tuned(ds, sel, cfg, run_dir, width=width, result=result)  # the inner fit checked its inner split
    return result
