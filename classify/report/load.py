"""Read a RUN_DIR (the output of ``classify fit`` / ``cv``) into one :class:`RunData` for the report.

Only reads; tolerant of optional files (missing ones become ``None`` plus a note shown on the page).
Required: ``classes.json`` (or ``fold_0/classes.json``) and ``valid_predictions.csv`` (or
``oof_predictions.csv`` for cv runs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spec2img.config import SpectrogramConfig
from spec2img.errors import Spec2ImgError
from spec2img.manifest import RUN_INFO_NAME, split_cell
from spec2img.window import image_seconds

from ..config import TrainConfig
from ..errors import RunFolderError
from ..runfolder import ModelInfo, check_class_list, check_model_info, fold_dirs, read_json, read_table
from ..scoring.evaluate import per_item_loss

log = logging.getLogger(__name__)

@dataclass
class FoldData:
    """One fold of a cv run: its name, headline metrics file and per-epoch history."""

    name: str
    metrics: dict
    history: pd.DataFrame | None
    preds: pd.DataFrame | None


@dataclass
class RunData:
    """Everything the report needs, as arrays and tables (row order = predictions file order).

    ``probs`` [shape=(n, n_classes)] scores, ``truth`` [shape=(n, n_classes)] bool,
    ``y`` [shape=(n,)] true index (first true label; -1 when a row has none), ``pred`` [shape=(n,)]
    argmax index, ``loss`` [shape=(n,)], ``offset`` [shape=(n,)] seconds (NaN when unknown).
    """

    run_dir: Path
    classes: list[str]
    preds: pd.DataFrame
    probs: np.ndarray
    truth: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    loss: np.ndarray
    offset: np.ndarray
    multi_label: bool
    embeddings: np.ndarray | None = None
    history: pd.DataFrame | None = None
    lr_find: dict | None = None
    metrics: dict = field(default_factory=dict)
    train: TrainConfig | None = None
    images_where: dict[str, str] = field(default_factory=dict)
    train_dir: Path | None = None
    model: ModelInfo | None = None
    spectrogram: SpectrogramConfig | None = None
    images_dir: Path | None = None
    audio_dir: Path | None = None
    manifest: pd.DataFrame | None = None
    audit_csv: Path | None = None
    folds: list[FoldData] = field(default_factory=list)
    cv_metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.preds)

    @property
    def is_cv(self) -> bool:
        return bool(self.folds)

    @property
    def head_only(self) -> bool:
        """A ``--head-only`` run (logistic head on frozen features): no epochs, no curves."""
        fold_metrics = self.folds[0].metrics if self.folds else {}
        return bool((self.train is not None and self.train.head_only) or self.metrics.get("head_only")
                    or fold_metrics.get("head_only") or (self.model is not None and self.model.head == "linear"))

    @property
    def protocol(self) -> dict:
        """``metrics.json``'s account of what was scored on what (the first fold's, for cv runs)."""
        m = self.metrics if self.metrics.get("protocol") else (self.folds[0].metrics if self.folds else {})
        p = m.get("protocol")
        return p if isinstance(p, dict) else {}

    @property
    def threshold(self) -> float | None:
        """fit's multi-label threshold from model.json (None: 0.5)."""
        return self.model.threshold if self.model is not None else None

    @property
    def window_seconds(self) -> float | None:
        """Seconds of audio behind one image (``tile`` or ``duration``), None for whole clips."""
        s = self.spectrogram
        return image_seconds(tile=s.tile, duration=s.duration) if s is not None else None


# ------------------------------------------------------------------------------------ small readers
def _read_json(path: Path, default=None):
    """A run folder's JSON file (:func:`classify.runfolder.read_json`), ``default`` when absent."""
    return read_json(path, default)


def _typed(path: Path, read, notes: list[str]):
    """A run folder's settings file read by the one typed reader ``read(path)`` (the same checks
    ``classify predict`` makes); ``None`` when absent, and a note on the page when unreadable."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read(path)
    except Spec2ImgError as exc:
        notes.append(f"{exc} (the report shows what it can without it)")
        return None


def _read_csv(path: Path) -> pd.DataFrame | None:
    """A run folder's CSV through the one reader, :func:`classify.runfolder.read_table`."""
    return read_table(path)


def _first(run_dir: Path, folds: list[Path], name: str) -> Path:
    """``run_dir/name`` if present, else the first fold's copy (cv runs), else ``run_dir/name``."""
    path = run_dir / name
    if path.exists() or not folds:
        return path
    return folds[0] / name


def _resolve_dir(value, *bases: Path) -> Path | None:
    if not value:
        return None
    p = Path(str(value)).expanduser()
    if p.is_absolute():
        return p if p.is_dir() else None
    for base in (*bases, Path.cwd()):
        if (base / p).is_dir():
            return (base / p).resolve()
    return None


# ------------------------------------------------------------------------------------------ main
def load_run(run_dir: Path, *, images_dir: Path | None = None, audio_dir: Path | None = None) -> RunData:
    """Read ``run_dir``; ``images_dir`` / ``audio_dir`` override what the run folder records."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; pass the folder `classify fit` wrote")
    folds = fold_dirs(run_dir)
    notes: list[str] = []

    classes_path = _first(run_dir, folds, "classes.json")
    classes = _read_json(classes_path)
    if classes is None:
        raise RunFolderError(
            f"{classes_path} is missing or not a JSON list of class names; is {run_dir} a `classify fit` run folder?"
        )
    classes = check_class_list(classes_path, classes)

    pred_name = "oof_predictions.csv" if folds and (run_dir / "oof_predictions.csv").is_file() else "valid_predictions.csv"
    preds = _read_csv(run_dir / pred_name)
    if preds is None and folds:  # cv run without an oof file: stack the folds' validation sets
        parts = [_read_csv(f / "valid_predictions.csv") for f in folds]
        parts = [p.assign(fold=f.name) for p, f in zip(parts, folds) if p is not None]
        preds = pd.concat(parts, ignore_index=True) if parts else None
    if preds is None:
        raise RunFolderError(
            f"{run_dir / pred_name} not found; the report needs the validation predictions `classify fit` writes"
        )
    probs, truth, preds = prediction_arrays(preds, classes, run_dir / pred_name, notes)

    train_path = _first(run_dir, folds, "train.json")
    train, where = _typed(train_path, TrainConfig.load_with_where, notes) or (None, {})
    model_path = _first(run_dir, folds, "model.json")
    model = _typed(model_path, lambda p: check_model_info(p, read_json(p)), notes)
    multi_label = bool(model is not None and model.multi_label) or bool((truth.sum(axis=1) > 1).any())
    y = np.where(truth.any(axis=1), np.argmax(truth, axis=1), -1)
    pred = np.argmax(probs, axis=1)
    if "loss" in preds:
        loss = pd.to_numeric(preds["loss"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        loss = np.full(len(preds), np.nan)
    if np.isnan(loss).any():  # recompute what fit did not write: cross-entropy / BCE of the scores
        fallback = per_item_loss(probs, truth.astype(np.float64), multi_label=multi_label)
        loss = np.where(np.isnan(loss), fallback, loss)
    offset = (
        pd.to_numeric(preds["offset"], errors="coerce").to_numpy(dtype=np.float64)
        if "offset" in preds
        else np.full(len(preds), np.nan)
    )

    embeddings = None
    if not folds:
        emb_path = run_dir / "valid_embeddings.npy"
        if emb_path.is_file():
            emb = np.load(emb_path, allow_pickle=False)
            if emb.ndim == 2 and emb.shape[0] == len(preds):
                embeddings = emb.astype(np.float32)
            else:
                notes.append(f"{emb_path.name} has shape {emb.shape}, not ({len(preds)}, d): t-SNE uses probabilities")
        else:
            notes.append("valid_embeddings.npy is missing: t-SNE uses the output probabilities")
    else:
        notes.append("cv run: fold models have different embedding spaces, so t-SNE uses out-of-fold probabilities")

    history = _read_csv(run_dir / "history.csv")
    fold_data = []
    for f in folds:
        fold_data.append(
            FoldData(f.name, _read_json(f / "metrics.json", {}) or {}, _read_csv(f / "history.csv"),
                     _read_csv(f / "valid_predictions.csv"))
        )
    if history is None and fold_data:
        hs = [fd.history.assign(fold=fd.name) for fd in fold_data if fd.history is not None]
        history = pd.concat(hs, ignore_index=True) if hs else None

    spectrogram = _typed(_first(run_dir, folds, "spectrogram.json"), SpectrogramConfig.load, notes)
    run = RunData(
        run_dir=run_dir, classes=classes, preds=preds, probs=probs, truth=truth, y=y, pred=pred,
        loss=loss, offset=offset, multi_label=multi_label, embeddings=embeddings, history=history,
        lr_find=_read_json(_first(run_dir, folds, "lr_find.json")),
        metrics=_read_json(run_dir / "metrics.json", {}) or {}, train=train, images_where=where,
        spectrogram=spectrogram, train_dir=train_path.parent, model=model,
        folds=fold_data, cv_metrics=_read_json(run_dir / "cv_metrics.json", {}) or {}, notes=notes,
    )
    _resolve_data_dirs(run, images_dir, audio_dir)
    return run


def prediction_arrays(preds: pd.DataFrame, classes: list[str], path: Path, notes: list[str]):
    """probs [n, C] from the ``p_<class>`` columns and truth [n, C] from ``labels``."""
    if "labels" not in preds:
        raise RunFolderError(f"{path} has no `labels` column (true labels, ';'-joined); rerun `classify fit`")
    missing = [c for c in classes if f"p_{c}" not in preds]
    if missing:
        raise RunFolderError(
            f"{path} lacks probability columns for {len(missing)} classes (e.g. p_{missing[0]}); "
            "is classes.json from the same run?"
        )
    try:
        probs = preds[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{path} has non-numeric p_<class> values ({exc}); rerun `classify fit`") from exc
    if not np.isfinite(probs).all():
        raise RunFolderError(f"{path} has missing or infinite p_<class> values; rerun `classify fit`")
    index = {c: i for i, c in enumerate(classes)}
    truth = np.zeros(probs.shape, dtype=bool)
    unknown: set[str] = set()
    for row, value in enumerate(preds["labels"].tolist()):
        for lab in split_cell(value):
            if lab in index:
                truth[row, index[lab]] = True
            else:
                unknown.add(lab)
    if unknown:
        notes.append(f"{len(unknown)} true labels not in classes.json ignored (e.g. {sorted(unknown)[0]!r})")
    keep = truth.any(axis=1)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} validation rows without a known true label left out")
        preds, probs, truth = preds[keep].reset_index(drop=True), probs[keep], truth[keep]
    if not len(preds):
        raise RunFolderError(f"{path} has no rows with a known true label; nothing to report")
    if "image" not in preds:
        preds = preds.assign(image="")
    if "source" not in preds:
        preds = preds.assign(source=preds["image"])
    return probs, truth, preds.reset_index(drop=True)


def _resolve_data_dirs(run: RunData, images_dir: Path | None, audio_dir: Path | None) -> None:
    """Find IMAGES_DIR (thumbnails, manifest, audit) and AUDIO_DIR (players); note what is missing."""
    if images_dir is not None:
        run.images_dir = Path(images_dir) if Path(images_dir).is_dir() else None
        if run.images_dir is None:
            run.notes.append(f"--images-dir {images_dir} is not a folder: no spectrogram thumbnails")
    else:
        recorded = run.train.images if run.train is not None else None
        run.images_dir = _find_images(run)
        if run.images_dir is None:
            run.notes.append(
                f"images folder {recorded!r} from train.json not found: no thumbnails (pass --images-dir)"
                if recorded else "no readable train.json to say where the images are: no thumbnails (pass --images-dir)"
            )
    img_meta = {}
    if run.images_dir is not None:  # spec2img records the audio folder in spec2img_run.json
        img_meta = (_read_json(run.images_dir / RUN_INFO_NAME, {})
                    or _read_json(run.images_dir / "manifest.json", {}) or {})
        manifest_path = run.images_dir / "manifest.csv"
        if manifest_path.is_file():
            run.manifest = _read_csv(manifest_path)
    if audio_dir is not None:
        run.audio_dir = Path(audio_dir) if Path(audio_dir).is_dir() else None
        if run.audio_dir is None:
            run.notes.append(f"--audio-dir {audio_dir} is not a folder: no audio players")
    else:
        _find_audio(run, img_meta)
    # spec2img audit's output: beside the run, in the images folder, or its default AUDIO_DIR/../audit
    for cand in (run.run_dir / "audit.csv", run.images_dir / "audit.csv" if run.images_dir else None,
                 run.audio_dir.parent / "audit" / "audit.csv" if run.audio_dir else None):
        if cand is not None and cand.is_file():
            run.audit_csv = cand
            break


def _find_images(run: RunData) -> Path | None:
    """IMAGES_DIR from train.json, found from any working directory and from a moved run folder:
    its absolute path, its path relative to the run folder, then ``images`` as written (relative
    to the run folder, the folder that holds it, or the current directory)."""
    where, base = run.images_where, run.train_dir or run.run_dir
    images = run.train.images if run.train is not None else None
    for value, bases in ((where.get("images_absolute"), ()), (where.get("images_from_run_dir"), (base,)),
                         (images, (base, run.run_dir, run.run_dir.parent))):
        found = _resolve_dir(value, *bases)
        if found is not None and (found / "manifest.csv").is_file():
            return found
    return None


def _moved_with_images(run: RunData, value) -> Path | None:
    """The audio folder after a move of the whole project: the same place relative to the images
    folder as when the run was trained (train.json's ``images_absolute``)."""
    old_images = run.images_where.get("images_absolute")
    if not old_images or run.images_dir is None or not Path(str(value)).is_absolute():
        return None
    import os

    cand = (run.images_dir / os.path.relpath(str(value), old_images)).resolve()
    return cand if cand.is_dir() else None


def _find_audio(run: RunData, img_meta: dict) -> None:
    """AUDIO_DIR from spec2img's record in the images folder (``spec2img_run.json``)."""
    value = img_meta.get("audio_dir")
    if value:
        found = _resolve_dir(value, *(b for b in (run.images_dir, run.run_dir) if b is not None))
        if found is None:
            found = _moved_with_images(run, value)
        if found is not None:
            run.audio_dir = found
            return
        run.notes.append(f"audio folder {value!r} from {RUN_INFO_NAME} not found")
    run.notes.append("no audio folder found: no audio players (pass --audio-dir AUDIO_DIR)")
