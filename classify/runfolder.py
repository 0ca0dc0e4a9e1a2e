"""RUN_DIR read/write (contract in ARCHITECTURE.md). No fastai here: a run folder loads with torch.

Files: ``spectrogram.json``, ``train.json``, ``classes.json``, ``model.json`` (how to rebuild the
network and use it: arch, input channels, height, crop width, multi-label, threshold), ``model.pt``
(``AudioClassifier.state_dict()``), ``metrics.json``, ``history.csv``, ``valid_predictions.csv``,
``valid_embeddings.npy``, ``versions.json``; optionally ``learner.pkl``, ``lr_find.json/.png``.
:func:`evaluate_and_save` writes them all for fine-tuned and head-only models alike.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spec2img.config import SpectrogramConfig
from spec2img.io import write_atomic

from .archs import get_arch
from .config import TrainConfig
from .data import ImageSet, Selection
from .errors import RunFolderError
from .evaluate import best_threshold, clip_average, per_item_loss, summary
from .model import HEADS, AudioClassifier, build_model, predict_windows

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
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("torchvision", "fastai", "librosa", "timm", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def save_model(run_dir: Path, model: AudioClassifier, info: ModelInfo) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = run_dir / ".model.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(run_dir / "model.pt")
    write_json(run_dir / "model.json", asdict(info))


def write_predictions(run_dir: Path, table: pd.DataFrame, probs: np.ndarray, losses: np.ndarray,
                      classes: list[str], *, threshold: float | None, name: str = "valid_predictions.csv") -> Path:
    """``image, source, offset, labels, pred, loss, p_<class>...`` (one row per image).

    ``pred``: the top class, or (multi-label) the ';'-joined classes scoring >= ``threshold``.
    """
    if threshold is None:
        pred = [classes[i] for i in probs.argmax(1)]
    else:
        pred = [";".join(classes[j] for j in np.flatnonzero(p >= threshold)) for p in probs]
    out = pd.DataFrame({
        "image": table["image"].to_numpy(), "source": table["source"].to_numpy(),
        "offset": table["offset"].to_numpy(),
        "labels": [";".join(labs) for labs in table["labels"]], "pred": pred, "loss": losses,
    })
    probs_df = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    out = pd.concat([out.reset_index(drop=True), probs_df], axis=1)
    path = Path(run_dir) / name
    write_atomic(path, out.to_csv(index=False, float_format="%.6g").encode())
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
    try:
        classes = json.loads((run_dir / "classes.json").read_text())
        model = ModelInfo(**json.loads((run_dir / "model.json").read_text()))
        train = TrainConfig.load(run_dir)
        metrics_path = run_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except (json.JSONDecodeError, TypeError) as exc:
        raise RunFolderError(f"{run_dir}: unreadable run files ({exc}); re-run classify fit") from None
    return RunInfo(run_dir, classes, SpectrogramConfig.load(run_dir), train, model, metrics)


def rebuild(info: RunInfo) -> AudioClassifier:
    """An untrained :class:`AudioClassifier` with the run's architecture (no weight downloads)."""
    m, cfg = info.model, info.spectrogram
    return build_model(get_arch(m.arch), n_classes=m.n_classes, in_channels=m.in_channels,
                       pretrained=False, input_height=m.input_height, dropout=m.dropout,
                       hidden=m.hidden, value_range=(cfg.vmin, cfg.vmax), head=m.head,
                       cut=m.cut, pool=m.pool, arch=m.arch)


def load_model(run_dir: Path, *, device: str = "cpu") -> tuple[AudioClassifier, RunInfo]:
    """The trained model (eval mode, on ``device``) and the run's :class:`RunInfo`.

    Needs neither fastai, nor the image folder, nor audio: only the run folder.
    """
    info = read_info(run_dir)
    model = rebuild(info)
    try:
        state = torch.load(Path(run_dir) / "model.pt", map_location=device, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise RunFolderError(f"{run_dir}/model.pt does not fit its model.json ({str(exc)[:120]})") from None
    return model.to(device).eval(), info


def evaluate_and_save(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path,
                      model: AudioClassifier, width: int, device="cpu", *, history: list[dict],
                      extra: dict) -> dict:
    """Predict validation images (all windows averaged), score per image and per clip, write the
    run folder (model, configs, metrics, history, predictions, embeddings); returns the metrics.

    Shared by fine-tuning (:mod:`classify.train`) and ``--head-only`` (:mod:`classify.headonly`).
    """
    model.eval()
    probs_t, emb_t = predict_windows(model, [ds.images[i] for i in sel.valid], width=width,
                                     device=device, multi_label=ds.multi_label)
    probs, emb = probs_t.numpy(), emb_t.numpy().astype(np.float32)
    targets = ds.targets[sel.valid]
    threshold = best_threshold(probs, targets) if ds.multi_label else None
    vt = ds.table.iloc[sel.valid].reset_index(drop=True)
    ids, clip_probs = clip_average(probs, vt["clip"].to_numpy())
    _, clip_targets = clip_average(targets, vt["clip"].to_numpy())
    metrics = {
        **summary(clip_probs, clip_targets, multi_label=ds.multi_label, threshold=threshold),
        "per_image": summary(probs, targets, multi_label=ds.multi_label, threshold=threshold),
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
    pd.DataFrame(history).to_csv(run_dir / "history.csv", index=False)
    losses = per_item_loss(probs, targets, multi_label=ds.multi_label)
    write_predictions(run_dir, vt, probs, losses, ds.classes, threshold=threshold)
    np.save(run_dir / "valid_embeddings.npy", emb)
    head = "lwlrap" if ds.multi_label else "accuracy"
    log.info("validation %s %.4f over %d clips -> %s", head, metrics.get(head, float("nan")),
             len(ids), run_dir)
    return metrics
