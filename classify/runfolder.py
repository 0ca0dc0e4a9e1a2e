"""RUN_DIR read/write (contract in ARCHITECTURE.md). No fastai here: a run folder loads with torch,
and its files read without it (:func:`read_json`, :func:`fold_dirs`, :func:`read_info`: the report
reads a run through them too).

Files: ``spectrogram.json``, ``train.json``, ``classes.json``, ``model.json`` (how to rebuild the
network and use it: arch, input channels, height, crop width, multi-label, threshold; a blended run's
``probe`` member), ``model.pt`` (``AudioClassifier.state_dict()``, or a ``Blend``'s),
``metrics.json``, ``history.csv``, ``valid_predictions.csv``, ``valid_embeddings.npy``, ``versions.json``;
optionally ``learner.pkl``, ``lr_find.json/.png``.

One writer, one reader: :func:`write_run` writes a finished fit's files (fine-tuning, head-only,
every cv fold, rank 0 of a distributed fit, :mod:`classify.testing` and the synthetic report run
all call it), each file through its own small ``write_*`` function; :func:`read_info`,
:func:`read_json`, :func:`read_table` and :func:`read_embeddings` read them back.
:func:`writing_run_dir` is the one way a run folder is created, locked and released.
``model.json``'s dataclass and checked reader live in :mod:`classify.models.info` (re-exported here).
Scoring the validation images lives in :mod:`classify.training.evaluate`, not here.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spec2img.config import SpectrogramConfig
from spec2img.io import plain_table, sheet_table, write_atomic
from spec2img.lock import FolderLock
from spec2img.manifest import join_cell

from .config import TrainConfig
from .errors import ClassifyError, RunFolderError
from .models.info import ModelInfo, check_model_info  # noqa: F401  (model.json: its home is models.info)

if TYPE_CHECKING:  # reading a run (the report) needs no torch; loading one to predict needs neither
    import pandas as pd  # the dataset code nor pandas

    from .models.blend import Blend
    from .models.classifier import AudioClassifier

log = logging.getLogger(__name__)

REQUIRED = ("spectrogram.json", "train.json", "classes.json", "model.json", "model.pt")


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


@contextmanager
def writing_run_dir(run_dir: Path, *, lock: bool = True, wait: bool = False) -> Iterator[Path]:
    """``with writing_run_dir(run_dir):`` the one way a run folder is written: created, locked
    (``lock``; a second run writing it stops with one line naming the holder), and on the way out
    the lock released; a failed start leaves no empty run folder behind. Yields ``run_dir``."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if lock:
            with FolderLock(run_dir, wait=wait):
                yield run_dir
        else:
            yield run_dir
    except BaseException:
        if created:
            remove_if_empty(run_dir)
        raise


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing but its lock file is in it."""
    from spec2img.lock import LOCK_NAME

    try:
        if {p.name for p in Path(folder).iterdir()} <= {LOCK_NAME}:
            (Path(folder) / LOCK_NAME).unlink(missing_ok=True)
            Path(folder).rmdir()
    except OSError:
        pass


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, written atomically (numpy scalars and arrays, paths allowed)."""
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
    """Versions of the libraries a run depends on, read from the installed distributions'
    metadata (importing fastai or torchvision just to ask would cost seconds on a head-only fit)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "fastai", "librosa", "timm", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def save_model(run_dir: Path, model: AudioClassifier | Blend, info: ModelInfo) -> None:
    """``model.pt`` (the CPU ``state_dict`` of ``model``, written atomically) and ``model.json`` (``info``)."""
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(run_dir / "model.pt", buf.getvalue())  # a full disk: one line naming model.pt, no temp left
    save_model_info(run_dir, info)


def save_model_info(run_dir: Path, info: ModelInfo) -> None:
    """The one writer of ``model.json`` (read back by :func:`check_model_info`). ``probe`` is written
    only for a blended run, so an ordinary run's model.json is what it was before the field."""
    def fields(i: ModelInfo) -> dict:
        d = asdict(i)
        d.pop("probe")
        return d if i.probe is None else {**d, "probe": fields(i.probe)}

    write_json(Path(run_dir) / "model.json", fields(info))


def prediction_table(table: pd.DataFrame, probs: np.ndarray, losses: np.ndarray, classes: list[str], *,
                     threshold: float | None) -> pd.DataFrame:
    """``valid_predictions.csv``'s rows: ``image, source, offset, labels, pred, loss, p_<class>...``.

    Args:
        table: one row per image, columns ``image``, ``source``, ``offset`` (s), ``labels`` (lists).
        probs: class probabilities ``[shape=(n_images, n_classes)]``.
        losses: per-image loss ``[shape=(n_images,)]``.
        classes: class names, the columns of ``probs``.
        threshold: multi-label runs: ``pred`` is the ';'-joined classes scoring >= it; None: the top class.
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
    return pd.concat([out.reset_index(drop=True), probs_df], axis=1)


def write_predictions(run_dir: Path, table: pd.DataFrame, probs: np.ndarray | None = None,
                      losses: np.ndarray | None = None, classes: list[str] | None = None, *,
                      threshold: float | None = None, name: str = "valid_predictions.csv") -> Path:
    """Write ``valid_predictions.csv`` (or ``name``): ``table`` as it is when it already holds the
    prediction columns (``probs`` None), else :func:`prediction_table` of the arguments."""
    if probs is not None:
        table = prediction_table(table, probs, losses, classes, threshold=threshold)
    path = Path(run_dir) / name
    write_atomic(path, sheet_table(table).to_csv(index=False, float_format="%.6g").encode())
    return path


def write_classes(run_dir: Path, classes) -> Path:
    """``classes.json``: the class names, in the model's output order."""
    write_json(Path(run_dir) / "classes.json", list(classes))
    return Path(run_dir) / "classes.json"


def write_metrics(run_dir: Path, metrics: dict, *, name: str = "metrics.json") -> Path:
    """``metrics.json`` (or ``cv_metrics.json`` with ``name``)."""
    write_json(Path(run_dir) / name, metrics)
    return Path(run_dir) / name


def write_history(run_dir: Path, history) -> Path:
    """``history.csv``: one row per epoch (a list of dicts or a DataFrame; columns as given)."""
    import pandas as pd

    path = Path(run_dir) / "history.csv"
    df = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    write_atomic(path, df.to_csv(index=False).encode())
    return path


def write_embeddings(run_dir: Path, embeddings: np.ndarray) -> Path:
    """``valid_embeddings.npy``: float32 ``[shape=(n_valid_images, d)]``, rows as ``valid_predictions.csv``."""
    path = Path(run_dir) / "valid_embeddings.npy"
    buf = io.BytesIO()
    np.save(buf, np.asarray(embeddings, dtype=np.float32))
    write_atomic(path, buf.getvalue())
    return path


def write_run(run_dir: Path, *, classes, spectrogram: SpectrogramConfig, train: TrainConfig,
              model_info: ModelInfo, metrics: dict, history=None, model: AudioClassifier | Blend | None = None,
              predictions: pd.DataFrame | None = None, embeddings: np.ndarray | None = None,
              versions_json: bool = True) -> Path:
    """The one writer of a finished fit's run folder (contract in ARCHITECTURE.md); returns ``run_dir``.

    Args:
        run_dir: the folder (created if needed).
        classes: class names in output order (``classes.json``).
        spectrogram: the images' settings (``spectrogram.json``).
        train: the resolved training config (``train.json``, with where the images are).
        model_info: how to rebuild the network (``model.json``).
        metrics: ``metrics.json``.
        history: per-epoch rows (``history.csv``), or None.
        model: the trained network (``model.pt``); None writes ``model.json`` alone (synthetic runs).
        predictions: ``valid_predictions.csv``'s table (:func:`prediction_table`), or None.
        embeddings: ``valid_embeddings.npy``, float32 ``[shape=(n_valid_images, d)]``, or None.
        versions_json: also write ``versions.json`` (library versions; imports torch).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        save_model(run_dir, model, model_info)
    else:
        save_model_info(run_dir, model_info)
    spectrogram.save(run_dir)
    train.save(run_dir)
    write_classes(run_dir, classes)
    write_metrics(run_dir, metrics)
    if versions_json:
        write_json(run_dir / "versions.json", versions())
    if history is not None:
        write_history(run_dir, history)
    if predictions is not None:
        write_predictions(run_dir, predictions)
    if embeddings is not None:
        write_embeddings(run_dir, embeddings)
    return run_dir


# ------------------------------------------------------------------------------------ reading
#: Columns of a run folder's CSVs read as text (never as numbers or NaN).
TEXT_COLUMNS = {c: str for c in ("image", "source", "labels", "pred", "fold", "label", "path", "status")}


def read_table(path: Path) -> pd.DataFrame | None:
    """The one reader of a run folder's CSVs (``valid_predictions.csv``, ``history.csv``,
    ``oof_predictions.csv``): a DataFrame with the text columns as strings (an empty cell is
    ``""`` there, NaN in number columns) and spreadsheet-safe cells turned back into what was
    written (:func:`spec2img.io.plain_table`); None when absent; :class:`RunFolderError` when unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path} is not a readable CSV ({exc}); rerun `classify fit`") from exc
    for c in TEXT_COLUMNS:
        if c in df:
            df[c] = df[c].fillna("")
    return plain_table(df)  # the inverse of the spreadsheet-safe cells write_predictions writes


def read_embeddings(run_dir: Path) -> np.ndarray | None:
    """``valid_embeddings.npy`` ``[shape=(n_valid_images, d)]`` float32, or None when absent."""
    path = Path(run_dir) / "valid_embeddings.npy"
    if not path.is_file():
        return None
    return np.load(path, allow_pickle=False).astype(np.float32)


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


def check_run_path(path: Path, *, onnx_ok: bool = True) -> Path:
    """``path`` if it is a run folder (fit or cv) or, where accepted, an ``.onnx`` export; else
    :class:`RunFolderError` in one line, before any model code loads. Reads no file."""
    path = Path(path)
    if onnx_ok and path.suffix == ".onnx":
        if not path.is_file():
            raise RunFolderError(f"{path}: no such ONNX model; export one with classify export RUN_DIR")
        return path
    if not path.is_dir():
        what = "a file, not a run folder" if path.exists() else "no such run folder"
        raise RunFolderError(f"{path}: {what}; pass a folder written by classify fit or classify cv")
    if not (path / "model.json").is_file() and not any(path.glob("fold_*/model.json")):
        raise RunFolderError(f"{path}: not a run folder (no model.json, no fold_*/model.json); "
                             "pass a folder written by classify fit or classify cv")
    return path


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


def check_classes(run_dir: Path, classes, model: ModelInfo, spectrogram: SpectrogramConfig) -> None:
    """The parts of a run folder must agree: classes.json is a list of distinct strings, one per
    model output; the model takes the spectrogram's channels."""
    path = Path(run_dir) / "classes.json"
    check_class_list(path, classes)
    if len(classes) != model.n_classes:
        raise RunFolderError(f"{path}: {len(classes)} class names but model.json says the model has "
                             f"{model.n_classes} outputs; the run folder is mixed up, re-copy it or re-run classify fit")
    if model.spectrogram_digest is not None and model.spectrogram_digest != spectrogram.digest():
        raise RunFolderError(f"{Path(run_dir) / 'spectrogram.json'}: settings (preset {spectrogram.preset!r}, digest "
                             f"{spectrogram.digest()}) differ from those the model was trained on (digest "
                             f"{model.spectrogram_digest} in model.json); put back the spectrogram.json of the "
                             "training images, or re-run classify fit")
    if model.in_channels != spectrogram.channels:
        raise RunFolderError(f"{Path(run_dir) / 'model.json'}: in_channels={model.in_channels} but "
                             f"spectrogram.json makes {spectrogram.channels}-channel images (mode "
                             f"{spectrogram.mode!r}); the run folder is mixed up, re-run classify fit")


def rebuild(info: RunInfo) -> AudioClassifier | Blend:
    """An untrained network with the run's architecture (no weight downloads): an
    :class:`AudioClassifier`, or a :class:`~classify.models.blend.Blend` of two when ``model.json``
    describes a ``probe`` member (a run that kept the average of the probe and the fine-tune)."""
    m = info.model
    if m.probe is None:
        return _build(m, info.spectrogram)
    from .models.blend import Blend

    return Blend(_build(m, info.spectrogram), _build(m.probe, info.spectrogram), multi_label=m.multi_label)


def _build(m: ModelInfo, cfg: SpectrogramConfig) -> AudioClassifier:
    from .models.archs import get_arch
    from .models.classifier import build_model

    return build_model(get_arch(m.arch), n_classes=m.n_classes, in_channels=m.in_channels,
                       pretrained=False, input_height=m.input_height, dropout=m.dropout,
                       hidden=m.hidden, value_range=(cfg.vmin, cfg.vmax), head=m.head,
                       cut=m.cut, pool=m.pool, arch=m.arch)


def load_model(run_dir: Path, *, device: str = "cpu") -> tuple[AudioClassifier | Blend, RunInfo]:
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
