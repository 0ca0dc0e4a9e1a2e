"""Scoring a trained model on its validation images and writing the run folder: shared by
fine-tuning (:mod:`classify.training.train`) and ``--head-only`` (:mod:`classify.training.headonly`),
hence by every cv fold and rank 0 of a distributed fit. The files go through the one writer,
:func:`classify.runfolder.write_run`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..runfolder import ModelInfo, prediction_table, write_run
from ..scoring.evaluate import clip_average, per_item_loss
from ..scoring.metrics import headline

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data.imageset import ImageSet, Selection
    from ..models.classifier import AudioClassifier

log = logging.getLogger(__name__)


def model_info(ds: ImageSet, cfg: TrainConfig, model: AudioClassifier, width: int,
               threshold: float | None) -> ModelInfo:
    """``model.json``'s content for ``model`` trained on ``ds`` with the resolved ``cfg``;
    ``width``: the crop width (image columns) it was trained on."""
    from ..models.classifier import HEADS

    head = next(name for name, kind in HEADS.items() if isinstance(model.head, kind))
    return ModelInfo(arch=cfg.arch, n_classes=len(ds.classes), in_channels=ds.cfg.channels,
                     input_height=cfg.input_height, dropout=cfg.dropout, hidden=model.head.fc.in_features,
                     crop_width=int(width), multi_label=ds.multi_label, threshold=threshold, head=head,
                     cut=cfg.cut or 0, pool=getattr(model.head, "pool_kind", "mean"),
                     spectrogram_digest=ds.cfg.digest())


def evaluate_and_save(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path,
                      model: AudioClassifier, width: int, device="cpu", *, history: list[dict],
                      extra: dict, threshold: float | None = None, predicted=None,
                      info: ModelInfo | None = None) -> dict:
    """Predict the validation images ``sel.valid`` (all windows averaged), score per image and per
    clip, write the run folder (:func:`classify.runfolder.write_run`); returns the metrics.

    Args:
        ds: the image set; ``sel`` its training / validation selection.
        cfg: the resolved training config (saved as ``train.json``).
        run_dir: the run folder.
        model: the trained network; ``width`` its crop width in image columns.
        device: where to run it.
        history: per-epoch rows (``history.csv``).
        extra: more ``metrics.json`` entries (timings, protocol).
        threshold: multi-label only, chosen by the caller on data not scored here (an inner
            split); None means the fixed 0.5. It is never tuned on the validation images scored here.
        predicted: ``(probs, embeddings)`` of the validation images when the caller has them
            (head-only, from its cached features); None: ``model`` predicts them.
        info: ``model.json``'s content when :func:`model_info` cannot read it off ``model`` (a
            :class:`~classify.models.blend.Blend`: its members' fields); its ``crop_width`` and
            ``threshold`` are set here.
    """
    from ..models.classifier import predict_windows

    model.eval()
    fine_tuned = predicted is None
    if predicted is None:  # head-only passes (probs, embeddings) from its cached features
        probs_t, emb_t = predict_windows(model, [ds.images[i] for i in sel.valid], width=width,
                                         device=device, multi_label=ds.multi_label)
        predicted = probs_t.numpy(), emb_t.numpy()
    probs, emb = np.asarray(predicted[0], np.float32), np.asarray(predicted[1], np.float32)
    targets = ds.targets[sel.valid]
    threshold = (0.5 if threshold is None else float(threshold)) if ds.multi_label else None
    vt = ds.table.iloc[sel.valid].reset_index(drop=True)
    ids, clip_probs = clip_average(probs, vt["clip"].to_numpy())
    _, clip_targets = clip_average(targets, vt["clip"].to_numpy())
    metrics = {
        **headline(clip_probs, clip_targets, multi_label=ds.multi_label, threshold=threshold),
        "per_image": headline(probs, targets, multi_label=ds.multi_label, threshold=threshold),
        "n_train_images": int(len(sel.train)), "n_valid_images": int(len(sel.valid)),
        "n_valid_clips": int(len(ids)), "multi_label": ds.multi_label, "threshold": threshold,
        "crop_width": int(width), "unvalidated_classes": list(sel.unvalidated),
        "dropped_unverified_clips": sel.dropped, **extra,
    }
    losses = per_item_loss(probs, targets, multi_label=ds.multi_label)
    if info is None:
        info = model_info(ds, cfg, model, width, threshold)
    else:
        info = dataclasses.replace(info, crop_width=int(width), threshold=threshold)
    write_run(run_dir, classes=ds.classes, spectrogram=ds.cfg, train=cfg,
              model_info=info, metrics=metrics, history=history,
              model=model.cpu(), predictions=prediction_table(vt, probs, losses, ds.classes, threshold=threshold),
              embeddings=emb)
    if fine_tuned and not ds.multi_label and len(ids):
        write_validation_openset(run_dir, clip_probs, metrics.get("accuracy"))
    head = "lwlrap" if ds.multi_label else "accuracy"
    log.info("validation %s %.4f over %d clips -> %s", head, metrics.get(head, float("nan")),
             len(ids), run_dir)
    return metrics


def write_validation_openset(run_dir: Path, clip_probs: np.ndarray, accuracy: float | None) -> None:
    """``openset.json`` of a fine-tuned run: the unknown threshold from its validation clips'
    scores [shape=(n_clips, n_classes)], which it never trained on (a head-only run calibrates on
    out-of-fold scores instead, :mod:`classify.training.openset_fit`). The validation figures at
    this threshold are then in-sample for the threshold, which the method line says."""
    from ..openset_file import OpenSet, write_openset
    from ..scoring import openset

    known = openset.max_scores(clip_probs)
    threshold, how = openset.choose_threshold(known, n_classes=clip_probs.shape[1])
    write_openset(run_dir, OpenSet(
        threshold=round(float(threshold), 6), n_known=int(len(known)),
        oof_accuracy=None if accuracy is None else round(float(accuracy), 6),
        method=f"validation clips of the fine-tuned model (never trained on; the threshold is chosen on them, so "
               f"their false-reject figure is not an independent estimate); {how}"))
    log.info("unknown threshold %.3f (%s)", threshold, how)
