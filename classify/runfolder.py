"""RUN_DIR read/write (contract in ARCHITECTURE.md). No fastai here: a run folder loads with torch,
and its files read without it (:func:`read_json`, :func:`fold_dirs`, :func:`read_info`: the report
reads a run through them too).

Files: ``spectrogram.json``, ``train.json``, ``classes.json``, ``model.json`` (how to rebuild the
network and use it: arch, input channels, height, crop width, multi-label, threshold), ``model.pt``
(``AudioClassifier.state_dict()``), ``metrics.json``, ``history.csv``, ``valid_predictions.csv``,
``valid_embeddings.npy``, ``versions.json``; optionally ``learner.pkl``, ``lr_find.json/.png``.
:func:`evaluate_and_save` writes them all for fine-tuned and head-only models alike.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import platform
import re
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spec2img.config import SpectrogramConfig
from spec2img.io import sheet_table, write_atomic
from spec2img.lock import FolderLock
from spec2img.manifest import join_cell

from .config import TrainConfig
from .errors import ClassifyError, RunFolderError
from .scoring.evaluate import clip_average, per_item_loss
from .scoring.metrics import headline

if TYPE_CHECKING:  # reading a run (the report) needs no torch; loading one to predict needs neither
    import pandas as pd  # the dataset code nor pandas

    from .data.imageset import ImageSet, Selection
    from .models.classifier import AudioClassifier

log = logging.getLogger(__name__)

REQUIRED = ("spectrogram.json", "train.json", "classes.json", "model.json", "model.pt")


@dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` holds: enough to rebuild the network and feed it."""

    arch: str
    n_classes: int
    in_channels: int
    input_height: int | None
    dropout: float
    hidden: int
    crop_width: int
    multi_label: bool
    threshold: float | None = None
    head: str = "pool"
    cut: int = 0
    pool: str = "mean"


@dataclass(frozen=True)
class RunInfo:
    """A loaded run folder's description (everything but the weights)."""

    run_dir: Path
    classes: list[str]
    spectrogram: SpectrogramConfig
    train: TrainConfig
    model: ModelInfo
    metrics: dict


def new_run_dir(base: Path = Path("runs"), *, arch: str = "run") -> Path:
    """A fresh ``runs/<timestamp>-<arch>`` folder name (suffixed if it exists)."""
    stem = f"{datetime.now():%Y%m%d-%H%M%S}-{arch.replace(':', '_')}"
    path, n = Path(base) / stem, 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stem}-{n}"
    return path


def lock_run_dir(run_dir: Path, *, wait: bool = False) -> FolderLock:
    """Create ``run_dir`` and take its lock (released on exit, even on kill -9): a second run
    writing the same folder stops with one line naming the holder."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return FolderLock(Path(run_dir), wait=wait).acquire()


def write_json(path: Path, obj) -> None:
    write_atomic(Path(path), (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def versions() -> dict[str, str]:
    """Versions of the libraries a run depends on."""
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("torchvision", "fastai", "librosa", "timm", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def save_model(run_dir: Path, model: AudioClassifier, info: ModelInfo) -> None:
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(run_dir / "model.pt", buf.getvalue())  # a full disk: one line naming model.pt, no temp left
    save_model_info(run_dir, info)


def save_model_info(run_dir: Path, info: ModelInfo) -> None:
    """The one writer of ``model.json`` (read back by :func:`check_model_info`)."""
    write_json(Path(run_dir) / "model.json", asdict(info))


def write_predictions(run_dir: Path, table: pd.DataFrame, probs: np.ndarray, losses: np.ndarray,
                      classes: list[str], *, threshold: float | None, name: str = "valid_predictions.csv") -> Path:
    """``image, source, offset, labels, pred, loss, p_<class>...`` (one row per image).

    ``pred``: the top class, or (multi-label) the ';'-joined classes scoring >= ``threshold``.
    """
    if threshold is None:
        pred = [classes[i] for i in probs.argmax(1)]
    else:
        pred = [join_cell(classes[j] for j in np.flatnonzero(p >= threshold)) for p in probs]
    import pandas as pd

    out = pd.DataFrame({
        "image": table["image"].to_numpy(), "source": table["source"].to_numpy(),
        "offset": table["offset"].to_numpy(),
        "labels": [join_cell(labs) for labs in table["labels"]], "pred": pred, "loss": losses,
    })
    probs_df = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    out = pd.concat([out.reset_index(drop=True), probs_df], axis=1)
    path = Path(run_dir) / name
    write_atomic(path, sheet_table(out).to_csv(index=False, float_format="%.6g").encode())
    return path


def read_info(run_dir: Path) -> RunInfo:
    """Read a run folder's JSON files; :class:`RunFolderError` naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder; pass the --out folder of classify fit")
    missing = [f for f in REQUIRED if not (run_dir / f).is_file()]
    if missing:
        raise RunFolderError(f"{run_dir}: not a complete run folder (missing {', '.join(missing)}); "
                             "re-run classify fit")
    classes = read_json(run_dir / "classes.json")
    model_data = read_json(run_dir / "model.json")
    metrics = read_json(run_dir / "metrics.json", {})
    try:
        train = TrainConfig.load(run_dir)  # errors name train.json and the key
    except RunFolderError:
        raise
    except ClassifyError as exc:
        raise RunFolderError(str(exc)) from None
    spectrogram = SpectrogramConfig.load(run_dir)  # validated: names the file and the key
    model = check_model_info(run_dir / "model.json", model_data)
    check_classes(run_dir, classes, model, spectrogram)
    return RunInfo(run_dir, classes, spectrogram, train, model, metrics)


_REQUIRED = object()
FOLD_RE = re.compile(r"^fold_(\d+)$")


def read_json(path: Path, default=_REQUIRED):
    """The one reader of a run folder's JSON files: the parsed content of ``path``, ``default``
    when it is absent (when given), else :class:`RunFolderError` naming the file and what to do
    (missing, not a regular file, not JSON)."""
    path = Path(path)
    if default is not _REQUIRED and not path.exists() and not path.is_symlink():
        return default
    from spec2img.paths import regular_file_error

    bad = regular_file_error(path)
    if bad:
        raise RunFolderError(f"{bad}; re-copy the run folder or re-run classify fit")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path} is not valid JSON ({exc}); rerun `classify fit` to rewrite it") from None


def fold_dirs(run_dir: Path) -> list[Path]:
    """The ``fold_<k>`` run folders of a cv run folder, in fold order (``[]`` for a single run)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    folds = [p for p in run_dir.iterdir() if p.is_dir() and FOLD_RE.match(p.name)]
    return sorted(folds, key=lambda p: int(FOLD_RE.match(p.name).group(1)))


def check_class_list(path: Path, classes) -> list[str]:
    """``classes.json``'s content: a non-empty JSON list of distinct strings, else :class:`RunFolderError`."""
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise RunFolderError(f"{path}: must be a JSON list of class names (strings); re-run classify fit")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise RunFolderError(f"{path}: class name(s) listed twice ({', '.join(map(repr, dup[:3]))}); "
                             "re-run classify fit")
    return classes


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


# model.json key -> (check, what it must be); ``head`` is checked against classify.models.classifier.HEADS
_MODEL_CHECKS = {
    "arch": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "n_classes": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "in_channels": (lambda v: v in (1, 3) and _is_int(v), "1 or 3"),
    "input_height": (lambda v: v is None or (_is_int(v) and 1 <= v <= 4096), "null or an integer 1..4096"),
    "dropout": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "hidden": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "crop_width": (lambda v: _is_int(v) and 1 <= v <= 1_000_000, "a positive integer (image columns)"),
    "multi_label": (lambda v: isinstance(v, bool), "true or false"),
    "threshold": (lambda v: v is None or (_is_num(v) and 0 <= v <= 1), "null or a number in [0, 1]"),
    "cut": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "pool": (lambda v: isinstance(v, str), "a string"),
}


def check_model_info(path: Path, data) -> ModelInfo:
    """``model.json`` as a :class:`ModelInfo`, every key checked; :class:`RunFolderError` naming
    the file and the key otherwise."""
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a JSON object; re-run classify fit")
    fields = {f.name: f for f in dataclasses.fields(ModelInfo)}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING)
    if unknown or missing:
        what = "; ".join(x for x in (unknown and f"unknown key(s) {', '.join(unknown)}",
                                     missing and f"missing key(s) {', '.join(missing)}") if x)
        raise RunFolderError(f"{path}: unreadable run files ({what}); re-run classify fit "
                             "(or use the classify version that wrote it)")
    from .models.classifier import HEADS

    checks = {**_MODEL_CHECKS, "head": (lambda v: v in HEADS, f"one of {', '.join(HEADS)}")}
    for key, value in data.items():
        ok, want = checks[key]
        if not ok(value):
            raise RunFolderError(f"{path}: {key}={value!r} must be {want}; re-run classify fit")
    return ModelInfo(**data)


def check_classes(run_dir: Path, classes, model: ModelInfo, spectrogram: SpectrogramConfig) -> None:
    """The parts of a run folder must agree: classes.json is a list of distinct strings, one per
    model output; the model takes the spectrogram's channels."""
    path = Path(run_dir) / "classes.json"
    check_class_list(path, classes)
    if len(classes) != model.n_classes:
        raise RunFolderError(f"{path}: {len(classes)} class names but model.json says the model has "
                             f"{model.n_classes} outputs; the run folder is mixed up, re-copy it or re-run classify fit")
    if model.in_channels != spectrogram.channels:
        raise RunFolderError(f"{Path(run_dir) / 'model.json'}: in_channels={model.in_channels} but "
                             f"spectrogram.json makes {spectrogram.channels}-channel images (mode "
                             f"{spectrogram.mode!r}); the run folder is mixed up, re-run classify fit")


def rebuild(info: RunInfo) -> AudioClassifier:
    """An untrained :class:`AudioClassifier` with the run's architecture (no weight downloads)."""
    from .models.archs import get_arch
    from .models.classifier import build_model

    m, cfg = info.model, info.spectrogram
    return build_model(get_arch(m.arch), n_classes=m.n_classes, in_channels=m.in_channels,
                       pretrained=False, input_height=m.input_height, dropout=m.dropout,
                       hidden=m.hidden, value_range=(cfg.vmin, cfg.vmax), head=m.head,
                       cut=m.cut, pool=m.pool, arch=m.arch)


def load_model(run_dir: Path, *, device: str = "cpu") -> tuple[AudioClassifier, RunInfo]:
    """The trained model (eval mode, on ``device``) and the run's :class:`RunInfo`.

    Needs neither fastai, nor the image folder, nor audio: only the run folder.
    """
    import torch

    info = read_info(run_dir)
    model = rebuild(info)
    path = Path(run_dir) / "model.pt"
    try:
        with warnings.catch_warnings():  # torch's unpickler warns before it fails on a foreign file
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated, foreign or hostile (weights_only: a pickle payload never runs)
        why = " ".join(str(exc).split())[:120]
        if "Weights only load failed" in why:  # torch's long explanation says nothing about this file
            why = "not a plain state_dict; loading with weights_only=True refused it"
        raise RunFolderError(f"{path} cannot be loaded ({type(exc).__name__}: {why}); re-copy the run "
                             "folder or re-run classify fit") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        why = " ".join(str(exc).split())[:120]
        raise RunFolderError(f"{path} does not fit its model.json ({why}); re-copy the run folder or "
                             "re-run classify fit") from None
    return model.to(device).eval(), info


def evaluate_and_save(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path,
                      model: AudioClassifier, width: int, device="cpu", *, history: list[dict],
                      extra: dict, threshold: float | None = None) -> dict:
    """Predict validation images (all windows averaged), score per image and per clip, write the
    run folder (model, configs, metrics, history, predictions, embeddings); returns the metrics.

    Shared by fine-tuning (:mod:`classify.training.train`) and ``--head-only`` (:mod:`classify.training.headonly`).
    ``threshold`` (multi-label): chosen by the caller on data that is not scored here (an inner
    split); None means the fixed 0.5. It is never tuned on the validation images scored here.
    """
    from .models.classifier import HEADS, predict_windows

    model.eval()
    probs_t, emb_t = predict_windows(model, [ds.images[i] for i in sel.valid], width=width,
                                     device=device, multi_label=ds.multi_label)
    probs, emb = probs_t.numpy(), emb_t.numpy().astype(np.float32)
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
    head = next(name for name, kind in HEADS.items() if isinstance(model.head, kind))
    info = ModelInfo(arch=cfg.arch, n_classes=len(ds.classes), in_channels=ds.cfg.channels,
                     input_height=cfg.input_height, dropout=cfg.dropout, hidden=model.head.fc.in_features,
                     crop_width=int(width), multi_label=ds.multi_label, threshold=threshold, head=head,
                     cut=cfg.cut or 0, pool=getattr(model.head, "pool_kind", "mean"))
    save_model(run_dir, model.cpu(), info)
    ds.cfg.save(run_dir)
    cfg.save(run_dir)
    write_json(run_dir / "classes.json", ds.classes)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "versions.json", versions())
    import pandas as pd

    write_atomic(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False).encode())
    losses = per_item_loss(probs, targets, multi_label=ds.multi_label)
    write_predictions(run_dir, vt, probs, losses, ds.classes, threshold=threshold)
    buf = io.BytesIO()
    np.save(buf, emb)
    write_atomic(run_dir / "valid_embeddings.npy", buf.getvalue())
    head = "lwlrap" if ds.multi_label else "accuracy"
    log.info("validation %s %.4f over %d clips -> %s", head, metrics.get(head, float("nan")),
             len(ids), run_dir)
    return metrics
