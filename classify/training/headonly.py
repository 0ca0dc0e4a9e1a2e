"""``classify fit --head-only``: a logistic-regression head on a frozen backbone, in seconds on CPU.

No fastai and no gradient steps through the network: every training image is cut into the same
time windows prediction uses (``crop_seconds`` wide, half-overlapping), each window's feature map
is averaged over time and frequency (for ``efficientat_mn04`` that is its 384-value AudioSet
embedding), and scikit-learn fits ``StandardScaler -> LogisticRegression`` on those vectors
(multinomial for single-label data, one binary regression per class for multi-label data, loss
weights of unverified clips as sample weights). The scaler and the regression are then folded
into the model's :class:`~classify.models.classifier.LinearHead` (``(x - shift) / scale``, then ``Linear``),
so the run folder is an ordinary one: ``load_model``, ``report`` and ``predict`` need nothing new.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import TrainConfig
from ..data.imageset import ImageSet, crop_width, loss_weights, select_for
from ..data.splits import Selection
from ..models.archs import get_arch
from ..models.classifier import AudioClassifier, build_model
from ..runfolder import read_table, write_history
from .evaluate import evaluate_and_save
from ..scoring.evaluate import per_item_loss
from .featurecache import cached_window_features, window_features  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

# Logit given to a class that is always (or never) present in the training windows.
LOGIT_CAP = 30.0


def frozen_image_features(ds: ImageSet, cfg: TrainConfig, idx: np.ndarray, *, width: int) -> np.ndarray:
    """Frozen pooled features [shape=(len(idx), F)] of images ``idx`` (mean over their windows),
    from ``cfg.arch``'s pretrained body as ``--head-only`` builds it (through the feature cache)."""
    from .leakcheck import per_image

    spec = get_arch(cfg.arch)
    rcfg = cfg.replace(head_only=True, cut=None, input_height=None).resolved()
    model = build_model(spec, n_classes=max(len(ds.classes), 2), in_channels=ds.cfg.channels, pretrained=True,
                        weights_file=Path(cfg.weights) if cfg.weights else None, input_height=rcfg.input_height,
                        value_range=(ds.cfg.vmin, ds.cfg.vmax), head="linear", cut=rcfg.cut,
                        pool=spec.probe_pool, arch=cfg.arch).eval()
    X, owner = cached_window_features(model, ds, np.asarray(idx), width=width, bs=cfg.bs)
    return per_image(X, owner, len(idx))


def fit_logistic(X: np.ndarray, Y: np.ndarray, *, multi_label: bool, C: float = 1.0, seed: int = 0,
                 sample_weight: np.ndarray | None = None):
    """Standardise ``X`` [shape=(n, d)] and fit a logistic regression to targets ``Y`` [shape=(n, K)].

    Returns ``(shift (d,), scale (d,), weight (K, d), bias (K,))`` such that
    ``softmax`` (single-label) or ``sigmoid`` (multi-label) of ``((X - shift) / scale) @ weight.T
    + bias`` is scikit-learn's ``predict_proba``. Classes absent from ``Y`` get logit
    ``-LOGIT_CAP``; multi-label classes present in every row ``+LOGIT_CAP``.
    """
    from sklearn.linear_model import LogisticRegression  # 4 s to import: only when a head is fitted
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    K, d = Y.shape[1], X.shape[1]
    W, b = np.zeros((K, d)), np.full(K, -LOGIT_CAP)

    def logreg(y):
        clf = LogisticRegression(C=C, max_iter=5000, random_state=seed)
        return clf.fit(Z, y, sample_weight=sample_weight)

    if multi_label:
        for j in range(K):
            yj = Y[:, j] > 0.5
            if yj.all() or not yj.any():
                b[j] = LOGIT_CAP if yj.all() else -LOGIT_CAP
                continue
            clf = logreg(yj.astype(int))
            W[j], b[j] = clf.coef_[0], clf.intercept_[0]
    else:
        y = Y.argmax(1)
        present = np.unique(y)
        if len(present) == 1:
            b[present[0]] = 0.0
        else:
            clf = logreg(y)
            if len(present) == 2:  # binary: sigmoid(z) == softmax([0, z])
                b[present] = 0.0
                W[present[1]], b[present[1]] = clf.coef_[0], clf.intercept_[0]
            else:
                W[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
    return scaler.mean_, scaler.scale_, W, b


def probabilities(Z: np.ndarray, W: np.ndarray, b: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """``softmax`` / ``sigmoid`` of ``Z @ W.T + b`` [shape=(n, K)]."""
    logits = Z @ W.T + b
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def window_average(P: np.ndarray, E: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image means of window probabilities ``P`` [shape=(n_windows, K)] and embeddings ``E``
    [shape=(n_windows, F)] (``owner``: image of each window, ``0..n-1``), as
    :func:`classify.models.classifier.predict_windows` averages them; float32."""
    counts = np.maximum(np.bincount(owner, minlength=n), 1)[:, None]
    out = []
    for A in (P, E):
        acc = np.zeros((n, A.shape[1]))
        np.add.at(acc, owner, A)
        out.append((acc / counts).astype(np.float32))
    return out[0], out[1]


def choose_on_inner(ds: ImageSet, sel, cfg: TrainConfig, X: np.ndarray, Y: np.ndarray, w: np.ndarray,
                    owner: np.ndarray) -> tuple[float, float | None, dict]:
    """``(C, threshold, record)``: the inverse L2 strength (``cfg.head_c``, or with ``head_c=None``
    the one of :data:`~classify.config.HEAD_C_GRID` with the lowest log-loss) and the multi-label
    threshold (best micro-F1), both chosen on an inner split of the *training* windows
    (:func:`classify.data.splits.inner_for`); the scored validation images are not read. Fixed values
    (``head_c`` set; threshold 0.5) when nothing needs choosing or the training part cannot be
    split (then logged)."""
    from ..config import HEAD_C_GRID
    from ..data import splits
    from ..errors import ClassifyError
    from ..scoring.evaluate import best_threshold

    grid = HEAD_C_GRID if cfg.head_c is None else (cfg.head_c,)
    record = {"head_c": "fixed" if cfg.head_c is not None else None,
              "threshold": "fixed 0.5" if ds.multi_label else None, "inner_valid_images": 0}
    if cfg.head_c is not None and not ds.multi_label:
        return cfg.head_c, None, record
    try:
        inner = splits.inner_for(ds, sel, cfg)
    except ClassifyError:
        if cfg.head_c is None:
            raise
        log.info("training part too small for an inner split: multi-label threshold fixed at 0.5")
        return cfg.head_c, None, record
    held = np.isin(np.asarray(sel.train)[owner], inner.valid)
    sw = w[~held] if (w != 1).any() else None
    best = None
    for C in grid:
        shift, scale, W, b = fit_logistic(X[~held], Y[~held], multi_label=ds.multi_label, C=C,
                                          seed=cfg.seed or 0, sample_weight=sw)
        P = probabilities((X[held] - shift) / scale, W, b, multi_label=ds.multi_label)
        loss = float(per_item_loss(P, Y[held], multi_label=ds.multi_label).mean())
        if best is None or loss < best[0] - 1e-12:
            best = (loss, C, P)
    _, C, P = best
    where = f"inner split ({len(inner.valid)} training images, held out of this choice's fit)"
    threshold = best_threshold(P, Y[held]) if ds.multi_label else None
    record.update({"inner_valid_images": int(len(inner.valid))})
    if cfg.head_c is None:
        record["head_c"] = f"lowest log-loss of {list(grid)} on the {where}"
        log.info("head-only C=%g chosen on an inner split of %d training images", C, len(inner.valid))
    if ds.multi_label:
        record["threshold"] = f"best micro-F1 on the {where}"
    return C, threshold, record


def frozen_model(cfg: TrainConfig, spectrogram, n_classes: int) -> AudioClassifier:
    """The network the head-only fit uses (``cfg`` resolved), in eval mode: the frozen pretrained
    body and an untrained :class:`~classify.models.classifier.LinearHead` of ``n_classes`` outputs."""
    spec = get_arch(cfg.arch)
    return build_model(spec, n_classes=n_classes, in_channels=spectrogram.channels,
                       pretrained=cfg.pretrained, weights_file=Path(cfg.weights) if cfg.weights else None,
                       input_height=cfg.input_height, value_range=(spectrogram.vmin, spectrogram.vmax),
                       head="linear", cut=cfg.cut, pool=spec.probe_pool, arch=cfg.arch).eval()


def fit(ds: ImageSet, cfg: TrainConfig, run_dir: Path, *,
        clip_valid: np.ndarray | None = None, exclude: np.ndarray | None = None,
        background: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Fit the head-only model and write the run folder; returns the metrics (also metrics.json).

    Same signature, splits and run-folder files as :func:`classify.training.train.fit`; ``history.csv``
    has one row (phase ``head-only``). The frozen features come through the feature cache
    (:mod:`classify.training.featurecache`), where teach mode puts them as examples arrive.
    Single-label runs also get ``openset.json``, the unknown threshold from out-of-fold scores of
    the training clips (:mod:`classify.training.openset_fit`); ``background``: ``(features
    [shape=(m, F)], clip id (m,))`` of "none of these" windows that inform it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.resolved()
    spec = get_arch(cfg.arch)
    spec.check_images(ds.cfg)
    seed = cfg.seed or 0
    torch.manual_seed(seed)
    sel = select_for(ds, cfg, clip_valid=clip_valid, exclude=exclude)
    cfg = cfg.resolved(ds, sel.train)
    width = crop_width(ds.cfg, cfg.crop_seconds, ds.max_width)
    model = frozen_model(cfg, ds.cfg, len(ds.classes))
    log.info("%s head-only (cut %d, %s pool): %d training / %d validation images (%d classes%s), "
             "windows %d frames", cfg.arch, cfg.cut, spec.probe_pool, len(sel.train), len(sel.valid), len(ds.classes),
             ", multi-label" if ds.multi_label else "", width)

    t0 = time.perf_counter()
    # training and validation windows in one pass through the cache: the validation scores come
    # from the same features (the head is linear), so a K-fold cv computes each image's features once
    both = np.concatenate([sel.train, sel.valid])
    X_all, owner_all = cached_window_features(model, ds, both, width=width, bs=cfg.bs)
    is_train = owner_all < len(sel.train)
    X, owner = X_all[is_train], owner_all[is_train]
    X_valid, owner_valid = X_all[~is_train], owner_all[~is_train] - len(sel.train)
    embed_seconds = time.perf_counter() - t0
    Y = ds.targets[sel.train][owner]
    w = loss_weights(ds, unverified_weight=cfg.unverified_weight)[sel.train][owner]
    t1 = time.perf_counter()
    C, threshold, choice = choose_on_inner(ds, sel, cfg, X, Y, w, owner)
    shift, scale, W, b = fit_logistic(X, Y, multi_label=ds.multi_label, C=C, seed=seed,
                                      sample_weight=w if (w != 1).any() else None)
    head_seconds = time.perf_counter() - t1
    with torch.no_grad():
        head = model.head
        head.shift.copy_(torch.from_numpy(shift))
        head.scale.copy_(torch.from_numpy(scale))
        head.fc.weight.copy_(torch.from_numpy(W))
        head.fc.bias.copy_(torch.from_numpy(b))
    seconds = time.perf_counter() - t0
    P = probabilities((X - shift) / scale, W, b, multi_label=ds.multi_label)
    train_loss = float(np.average(per_item_loss(P, Y, multi_label=ds.multi_label), weights=w))

    history = [{"train_loss": train_loss, "epoch": 0, "phase": "head-only"}]
    n_valid_clips = len(np.unique(ds.table["clip"].to_numpy()[sel.valid]))
    proto = {"scored_on": f"validation fold: {n_valid_clips} clips, never trained on and never used for a choice",
             "epochs": "none (one logistic fit)", "checkpoint": "the one fit", "lr": None, **choice}
    predicted = window_average(
        probabilities((X_valid - shift) / scale, W, b, multi_label=ds.multi_label), (X_valid - shift) / scale,
        owner_valid, len(sel.valid))
    metrics = evaluate_and_save(ds, sel, cfg, run_dir, model, width, history=history, threshold=threshold,
                                predicted=predicted, extra={
        "head_only": True, "head_c": C, "protocol": proto, "train_seconds": seconds,
        "embed_seconds": embed_seconds, "head_fit_seconds": head_seconds,
        "train_images_per_second": len(sel.train) / max(seconds, 1e-9), "train_windows": int(len(X)),
        "epochs_run": 1,
    })
    from .leakcheck import check_and_record, per_image

    leak = check_and_record(ds, sel, cfg, run_dir, train_features=per_image((X - shift) / scale, owner, len(sel.train)),
                            valid_features=np.load(run_dir / "valid_embeddings.npy"))
    if leak is not None:
        metrics["leak"] = leak
    log.info("scored on the validation fold only (%d clips); C: %s%s", n_valid_clips,
             f"{C:g} ({proto['head_c']})", f"; threshold: {proto['threshold']}" if ds.multi_label else "")
    if not ds.multi_label:
        write_unknown_threshold(ds, sel, run_dir, X, Y, owner, C=C, seed=seed, background=background)
    # history.csv's validation columns, as fit's (per-image loss and metric over validation images)
    name = "lwlrap" if ds.multi_label else "accuracy"
    pred = read_table(run_dir / "valid_predictions.csv")
    history[0].update({"valid_loss": float(pred["loss"].mean()), name: metrics["per_image"].get(name)})
    write_history(run_dir, pd.DataFrame(history)[["train_loss", "valid_loss", name, "epoch", "phase"]])
    return metrics


def write_unknown_threshold(ds: ImageSet, sel, run_dir: Path, X: np.ndarray, Y: np.ndarray, owner: np.ndarray,
                            *, C: float, seed: int, background=None) -> None:
    """``openset.json`` from out-of-fold scores of the training windows (a failure is logged: the
    run then has no unknown threshold)."""
    from ..errors import ClassifyError
    from ..openset_file import write_openset
    from .openset_fit import calibrate

    table = ds.table.iloc[np.asarray(sel.train)[owner]]
    bg, bg_clip = background if background is not None else (None, None)
    try:
        found = calibrate(X, Y, table["clip"].to_numpy(), table["group"].astype(str).to_numpy(), C=C,
                          seed=seed, background=bg, background_clip=bg_clip, head=(fit_logistic, probabilities))
    except ClassifyError as exc:
        log.warning("no unknown threshold for this run: %s", exc)
        return
    write_openset(run_dir, found)


def check_fine_tuned(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path, *, width: int,
                     result: dict) -> None:
    """The leak check of a fine-tuned run's validation fold, in the frozen backbone's features
    (computed once, from the feature cache, only for the check); ``result["leak"]`` gets its
    finding. A failure is logged: a finished fit is never lost to the check."""
    from .leakcheck import check_and_record

    try:
        leak = check_and_record(ds, sel, cfg, run_dir,
                                train_features=lambda: frozen_image_features(ds, cfg, sel.train, width=width),
                                valid_features=lambda: frozen_image_features(ds, cfg, sel.valid, width=width))
    except Exception as exc:
        log.warning("leak check skipped (%s: %s)", type(exc).__name__, exc)
        return
    if leak is not None:
        result["leak"] = leak
