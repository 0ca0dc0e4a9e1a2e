"""Raw audio -> windows -> features in memory -> model(s) -> per-file labels, Kaggle CSV, timeline.

Importing this module loads neither torch nor fastai: a model is a :class:`Scorer` (classes,
spectrogram config, crop width and a function uint8 windows -> probabilities). The torch scorer
(:func:`torch_scorer`, from a run folder's ``model.pt``) imports torch when called; the onnxruntime
scorer lives in :mod:`classify.onnx_predict`.

Scores: window probabilities (softmax, or sigmoid for multi-label runs; TTA crops averaged into
their window) are aggregated per file by ``mean`` or ``max``; several models (runs, or the folds of
a cv run) are combined by the geometric mean of their file probabilities (renormalised to sum to 1
for single-label runs).
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec2img.errors import AudioError
from spec2img.io import write_atomic
from spec2img.manifest import join_cell
from spec2img.paths import AUDIO_LIKE, Entry, check_input, display, walk_audio
from spec2img.progress import Progress

from .errors import ClassifyError, RunFolderError
from .evaluate import geometric_mean as _geometric_mean
from .scorer import Scorer
from .windows import CHUNK_SECONDS, FileWindows, file_windows

log = logging.getLogger(__name__)

AGGREGATES = ("mean", "max")
BACKENDS = ("torch", "onnx")
EPS = 1e-7


@dataclass(frozen=True)
class PredictConfig:
    """How to predict (the ``classify predict`` flags)."""

    top_k: int = 3
    aggregate: str = "mean"
    tta: int = 0
    timeline: bool = False
    batch_size: int = 64
    chunk_seconds: float = CHUNK_SECONDS

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ClassifyError(f"--top-k={self.top_k} must be at least 1")
        if self.aggregate not in AGGREGATES:
            raise ClassifyError(f"--aggregate {self.aggregate!r}: choose one of {', '.join(AGGREGATES)}")
        if self.tta < 0:
            raise ClassifyError(f"--tta={self.tta} must be >= 0 (extra shifted crops per window)")
        if self.batch_size < 1:
            raise ClassifyError(f"--bs={self.batch_size} must be at least 1")


@dataclass
class PredictResult:
    """``rows``: one dict per input file (input order), ``table`` the same as a DataFrame;
    ``probs`` ``(n_files, n_classes)`` (NaN rows for failed files); ``timeline_rows`` /
    ``timeline``: one row per window, or None. The DataFrames are built on first use, so that
    predicting and writing CSVs never imports pandas (the CLI answers sooner)."""

    rows: list[dict]
    probs: np.ndarray
    classes: list[str]
    multi_label: bool
    threshold: float | None
    timeline_rows: list[dict] | None = None
    n_models: int = 1
    n_windows: int = 0
    feature_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def table(self):
        """``pandas.DataFrame`` of :attr:`rows` (columns as in :func:`write_csv`)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.rows[0]) if self.rows else ["file", "status", "error"])

    @property
    def timeline(self):
        """``pandas.DataFrame`` of :attr:`timeline_rows`, or None."""
        if self.timeline_rows is None:
            return None
        import pandas as pd

        return pd.DataFrame(self.timeline_rows, columns=timeline_columns(self.classes))

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r["file"], r["error"]) for r in self.rows if r["status"] != "ok"]

    def line(self) -> str:
        n, bad = len(self.rows), len(self.failures)
        return (f"{n - bad} file(s) predicted, {bad} failed ({self.n_windows} windows, "
                f"{self.n_models} model(s); features {self.feature_seconds:.1f} s, "
                f"model {self.model_seconds:.1f} s)")


# ------------------------------------------------------------------------------ loading models
def expand_runs(run_dirs: Iterable[Path]) -> list[Path]:
    """Run folders, a cv run folder replaced by its ``fold_<k>`` runs (in fold order)."""
    out = []
    for r in map(Path, run_dirs):
        folds = sorted((p for p in r.glob("fold_*") if p.is_dir()),
                       key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        if r.is_dir() and not (r / "model.pt").exists() and not (r / "model.onnx").exists() and folds:
            out.extend(folds)
        else:
            out.append(r)
    if not out:
        raise ClassifyError("no run folder given; pass the --out folder of classify fit")
    return out


def is_run_dir(path: Path) -> bool:
    """A run folder (``model.json``), an ONNX export, or a cv run folder (``fold_*/model.json``)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return path.is_file()
    return path.is_dir() and ((path / "model.json").is_file() or (path / "model.onnx").is_file()
                              or any(path.glob("fold_*/model.json")))


def split_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """``RUN_DIR [RUN_DIR ...] AUDIO...``: the leading run folders and the audio inputs after them."""
    k = 0
    while k < len(paths) and is_run_dir(paths[k]):
        k += 1
    return list(paths[:k]), list(paths[k:])


def torch_scorer(run_dir: Path, *, device: str = "cpu") -> Scorer:
    """A run folder's ``model.pt`` (``torch.load(weights_only=True)``) as a :class:`Scorer`."""
    import torch

    from .runfolder import load_model

    try:
        with warnings.catch_warnings():  # torch's unpickler warns before it fails on a foreign file
            warnings.simplefilter("ignore", UserWarning)
            model, info = load_model(run_dir, device=device)
    except ClassifyError as exc:  # one line, even when torch's message spans several
        raise type(exc)(" ".join(str(exc).split())) from None
    except Exception as exc:  # a truncated or foreign model.pt: pickle, zip, EOF errors ...
        raise RunFolderError(f"{run_dir}/model.pt cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc)[:120]}); re-copy the run folder or re-run classify fit") from None
    multi = bool(info.model.multi_label)
    model = model.to(memory_format=torch.channels_last)  # ~1.8x faster on CPU (oneDNN) for lite0

    def score(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(device).float().div_(255)
            logits = model(xt.contiguous(memory_format=torch.channels_last))
            p = torch.sigmoid(logits) if multi else logits.softmax(1)
        return p.float().cpu().numpy()

    return Scorer(str(run_dir), tuple(info.classes), info.spectrogram, int(info.model.crop_width), multi,
                  info.model.threshold, score)


def load_scorers(run_dirs: Iterable[Path], *, backend: str = "torch") -> list[Scorer]:
    """Scorers for run folders (or cv run folders); ``backend="onnx"`` takes ``model.onnx`` files
    or run folders holding one (written by ``classify export``)."""
    if backend not in BACKENDS:
        raise ClassifyError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    scorers = []
    for r in expand_runs(run_dirs):
        if backend == "onnx":
            from .onnx_predict import onnx_scorer

            scorers.append(onnx_scorer(r))
        else:
            if r.suffix == ".onnx":
                raise ClassifyError(f"{r}: an ONNX model; add --onnx to predict with onnxruntime")
            scorers.append(torch_scorer(r))
    check_compatible(scorers)
    return scorers


def check_compatible(scorers: list[Scorer]) -> None:
    """Every model must predict the same classes in the same order, all single- or all multi-label."""
    first = scorers[0]
    for s in scorers[1:]:
        if s.classes != first.classes:
            extra = sorted(set(s.classes) ^ set(first.classes))
            what = f"classes differ ({', '.join(extra[:5])})" if extra else "classes are in a different order"
            raise ClassifyError(f"{s.name} and {first.name} cannot be ensembled: {what}; "
                                "ensemble runs trained on the same classes")
        if s.multi_label != first.multi_label:
            raise ClassifyError(f"{s.name} and {first.name} cannot be ensembled: one is multi-label, "
                                "the other single-label")


# ------------------------------------------------------------------------------------ inputs
def find_inputs(inputs: Iterable[Path], *, follow_symlinks: bool = False) -> list[Entry]:
    """Files as given, folders expanded to their audio-looking entries (sorted), in the order given.

    Every entry has a status (:mod:`spec2img.paths`): a missing path, a FIFO or other special file,
    a dangling link, a link leaving a given folder (without ``follow_symlinks``) ... is not ``ok``
    and gets a row saying why, and is never opened."""
    out: list[Entry] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = walk_audio(p, follow_symlinks=follow_symlinks)
            if not found:
                log.warning("%s: no audio files found (looked for %s)", p, ", ".join(sorted(AUDIO_LIKE)))
            out.extend(Entry(e.path, display(str(e.path)), e.status, e.error) for e in found)
        else:
            out.append(check_input(p))
    if not out:
        raise ClassifyError("no audio to predict: pass audio files or folders holding them")
    return out


# ------------------------------------------------------------------------------------ combine
def aggregate_windows(p: np.ndarray, how: str) -> np.ndarray:
    """Window probabilities ``(n_windows, K)`` -> one row ``(K,)`` by mean or max."""
    return p.max(0) if how == "max" else p.mean(0)


def geometric_mean(probs: list[np.ndarray], *, multi_label: bool) -> np.ndarray:
    """Combine models' probabilities ``[(n, K), ...]``: mean of logs, renormalised if single-label
    (:func:`classify.evaluate.geometric_mean`, the rule ``classify cv`` scores its ensemble with)."""
    if len(probs) == 1:
        return probs[0]
    return _geometric_mean(probs, normalise=not multi_label, eps=EPS).astype(np.float32)


# ------------------------------------------------------------------------------------ predict
def predict(run_dirs, inputs, *, top_k: int = 3, aggregate: str = "mean", tta: int = 0,
            timeline: bool = False, batch_size: int = 64, backend: str = "torch",
            scorers: list[Scorer] | None = None, follow_symlinks: bool = False) -> PredictResult:
    """Predict every audio file in ``inputs`` (files and folders) with the run(s) ``run_dirs``.

    Bad audio gives a row with ``status="failed"`` and spec2img's error message; the rest is
    predicted. Windows of all files are scored together in batches of ``batch_size``.
    """
    cfg = PredictConfig(top_k=top_k, aggregate=aggregate, tta=tta, timeline=timeline, batch_size=batch_size)
    entries = find_inputs(inputs, follow_symlinks=follow_symlinks)
    scorers = scorers or load_scorers(run_dirs, backend=backend)
    refused = {i: (e.status, e.error) for i, e in enumerate(entries) if not e.ok}
    return predict_files(scorers, [e.path for e in entries], cfg, refused=refused)


def predict_onnx(models, inputs, **kwargs) -> PredictResult:
    """:func:`predict` with onnxruntime models (``.onnx`` files or run folders holding ``model.onnx``)."""
    return predict(models, inputs, backend="onnx", **kwargs)


def predict_files(scorers: list[Scorer], files: list[Path], cfg: PredictConfig, *,
                  refused: dict[int, tuple[str, str]] | None = None) -> PredictResult:
    """Score ``files``; ``refused`` maps an index to the ``(status, error)`` of an input that is
    never opened (a FIFO, a link refused by the folder walk, ...): it keeps its row."""
    check_compatible(scorers)
    groups: dict[tuple, list[int]] = {}  # models sharing spectrogram + window share the features
    for i, s in enumerate(scorers):
        groups.setdefault((s.spectrogram, s.crop_width), []).append(i)
    if cfg.timeline and len(groups) > 1:
        raise ClassifyError("--timeline needs runs with the same spectrogram settings and crop width "
                            "(their windows differ); predict them separately")
    first = scorers[0]
    n, k = len(files), len(first.classes)
    file_p = np.full((len(scorers), n, k), np.nan, dtype=np.float32)
    errors = [""] * n
    statuses = ["ok"] * n
    for i, (status, error) in (refused or {}).items():
        statuses[i], errors[i] = status, error
    win_rows: dict[int, tuple[FileWindows, list[np.ndarray]]] = {}
    t_feat = t_model = 0.0
    n_windows = 0
    for gi, ((spec, width), members) in enumerate(groups.items()):
        pending: list[tuple[int, FileWindows]] = []

        def flush() -> float:
            if not pending:
                return 0.0
            t0 = time.perf_counter()
            x = np.concatenate([w.images for _, w in pending])
            sizes = [len(w.images) for _, w in pending]
            for m in members:
                p = np.concatenate([scorers[m].score(x[b:b + cfg.batch_size])
                                    for b in range(0, len(x), cfg.batch_size)])
                for (i, w), chunk in zip(pending, np.split(p, np.cumsum(sizes)[:-1])):
                    per_window = chunk.reshape(-1, cfg.tta + 1, k).mean(1)
                    file_p[m, i] = aggregate_windows(per_window, cfg.aggregate)
                    if cfg.timeline:
                        win_rows.setdefault(i, (w, []))[1].append(per_window)
            pending.clear()
            return time.perf_counter() - t0

        queued = 0
        bar = Progress(n, unit="file", desc="predict" if len(groups) == 1 else f"predict, model group {gi + 1}",
                       enabled=n > 1, logger=log)
        for i, path in enumerate(files):
            bar.update()
            if errors[i]:
                continue
            t0 = time.perf_counter()
            try:
                w = file_windows(path, spec, width, tta=cfg.tta, chunk_seconds=cfg.chunk_seconds)
            except AudioError as exc:
                errors[i], statuses[i] = str(exc), "failed"
                continue
            except Exception as exc:  # a decoder choking on one odd file must not sink the run
                log.debug("unexpected error on %s", path, exc_info=True)
                errors[i], statuses[i] = f"{path}: unexpected {type(exc).__name__}: {exc}", "failed"
                continue
            finally:
                t_feat += time.perf_counter() - t0
            pending.append((i, w))
            queued += len(w.images)
            n_windows += len(w.start) if gi == 0 else 0
            if queued >= cfg.batch_size:
                t_model += flush()
                queued = 0
        t_model += flush()
        bar.close()

    ok = np.array([not e for e in errors])
    probs = np.full((n, k), np.nan, dtype=np.float32)
    if ok.any():
        probs[ok] = geometric_mean([file_p[m, ok] for m in range(len(scorers))], multi_label=first.multi_label)
    threshold = _threshold(scorers)
    rows = _file_rows(files, probs, errors, list(first.classes), top_k=cfg.top_k,
                      multi_label=first.multi_label, threshold=threshold, statuses=statuses)
    tl = _timeline_rows(files, win_rows, list(first.classes), first.multi_label) if cfg.timeline else None
    for f, e in zip(files, errors):
        if e:
            log.warning("failed: %s", e)
    return PredictResult(rows, probs, list(first.classes), first.multi_label, threshold, tl,
                         n_models=len(scorers), n_windows=n_windows, feature_seconds=t_feat,
                         model_seconds=t_model)


def _threshold(scorers: list[Scorer]) -> float | None:
    """Multi-label decision threshold: the mean of the runs' tuned thresholds (0.5 where unset)."""
    if not scorers[0].multi_label:
        return None
    return float(np.mean([0.5 if s.threshold is None else s.threshold for s in scorers]))


def timeline_columns(classes: list[str]) -> list[str]:
    return ["file", "start", "end", "label", "prob"] + [f"p_{c}" for c in classes]


def _file_rows(files: list[Path], probs: np.ndarray, errors: list[str], classes: list[str], *,
               top_k: int, multi_label: bool, threshold: float | None,
               statuses: list[str] | None = None) -> list[dict]:
    k = min(top_k, len(classes))
    rows = []
    statuses = statuses or ["failed" if e else "ok" for e in errors]
    for path, p, err, status in zip(files, probs, errors, statuses):
        row: dict = {"file": display(str(path))}
        if multi_label:
            row["labels"] = "" if err else join_cell(c for c, v in zip(classes, p) if v >= threshold)
        order = np.argsort(-p, kind="stable")[:k] if not err else []
        for j in range(k):
            row[f"label_{j + 1}"] = classes[order[j]] if not err else ""
            row[f"prob_{j + 1}"] = float(p[order[j]]) if not err else np.nan
        if multi_label:
            row.update({f"p_{c}": float(v) for c, v in zip(classes, p)})
        row["status"] = status if err else "ok"
        row["error"] = err
        rows.append(row)
    return rows


def _timeline_rows(files, win_rows, classes, multi_label) -> list[dict]:
    rows = []
    for i in sorted(win_rows):
        w, per_model = win_rows[i]
        p = geometric_mean(per_model, multi_label=multi_label)
        top = p.argmax(1)
        name = display(str(files[i]))
        for j in range(len(p)):
            row = {"file": name, "start": float(round(w.start[j], 3)), "end": float(round(w.end[j], 3)),
                   "label": classes[top[j]], "prob": float(p[j, top[j]])}
            row.update({f"p_{c}": float(v) for c, v in zip(classes, p[j])})
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ writers
def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    """CSV of ``rows`` as pandas' ``to_csv(index=False, float_format="%.6g")`` writes it
    (NaN and None as empty cells), without importing pandas."""
    import csv
    import io
    import math

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.6g}"
        return v

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(columns)
    for r in rows:
        out.writerow([cell(r.get(c)) for c in columns])
    return buf.getvalue().encode()


def write_csv(result: PredictResult, path: Path) -> Path:
    """The per-file table (``file, [labels,] label_1, prob_1, ..., [p_<class>...,] status, error``)."""
    columns = list(result.rows[0]) if result.rows else ["file", "status", "error"]
    write_atomic(Path(path), csv_bytes(result.rows, columns))
    return Path(path)


def write_timeline(result: PredictResult, path: Path) -> Path:
    """Per-window rows ``file, start, end, label, prob, p_<class>...`` (seconds)."""
    if result.timeline_rows is None:
        raise ClassifyError("no timeline was computed; pass timeline=True")
    write_atomic(Path(path), csv_bytes(result.timeline_rows, timeline_columns(result.classes)))
    return Path(path)


def kaggle_table(result: PredictResult):
    """Freesound submission: every input file, in input order, named by its file name.

    Single-label (Freesound 2018, MAP@3): ``fname,label`` with the top 3 labels space-separated
    (spaces inside a class name become ``_``). A failed file keeps its row with an empty label
    (Kaggle accepts it and scores it 0). Multi-label (Freesound 2019, lwlrap): ``fname`` and one
    probability column per class; a failed file gets zeros.
    """
    import pandas as pd

    fnames = [Path(r["file"]).name for r in result.rows]
    if result.multi_label:
        p = np.nan_to_num(result.probs, nan=0.0)
        return pd.concat([pd.DataFrame({"fname": fnames}), pd.DataFrame(p, columns=result.classes)], axis=1)
    labels = []
    for p in result.probs:
        if np.isnan(p).any():
            labels.append("")
        else:
            top = np.argsort(-p, kind="stable")[:3]
            labels.append(" ".join(result.classes[j].replace(" ", "_") for j in top))
    return pd.DataFrame({"fname": fnames, "label": labels})


def write_kaggle(result: PredictResult, path: Path) -> Path:
    write_atomic(Path(path), kaggle_table(result).to_csv(index=False, float_format="%.6g").encode())
    return Path(path)
