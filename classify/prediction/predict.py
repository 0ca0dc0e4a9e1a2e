"""Raw audio -> windows -> features in memory -> model(s) -> per-file labels, Kaggle CSV, timeline.

The folder orchestration: inputs found, each file rendered in memory into its windows
(:func:`classify.prediction.windows.file_windows`), windows of many files scored in batches, rows
built. Importing this module loads neither torch nor fastai: a model is a :class:`Scorer` (classes,
spectrogram config, crop width and a function uint8 windows -> probabilities), loaded by
:mod:`classify.prediction.ensemble`; the onnxruntime scorer lives in
:mod:`classify.prediction.onnx_predict`, results and CSV writers in :mod:`classify.prediction.results`.

Scores: window probabilities (softmax, or sigmoid for multi-label runs; TTA crops averaged into
their window) are aggregated per file by ``mean`` or ``max``; several models (runs, or the folds of
a cv run) are combined by the geometric mean of their file probabilities (renormalised to sum to 1
for single-label runs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec2img.errors import AudioError
from spec2img.manifest import join_cell
from spec2img.paths import AUDIO_LIKE, Entry, check_input, display, walk_audio
from spec2img.progress import Progress

from ..errors import ClassifyError
from ..scoring.openset import open_labels
from .ensemble import (aggregate_windows, check_compatible, ensemble_threshold, ensemble_unknown_threshold,
                       geometric_mean, load_scorers)
from .results import PredictResult
from .scorer import Scorer
from .windows import CHUNK_SECONDS, FileWindows, file_windows

log = logging.getLogger(__name__)

AGGREGATES = ("mean", "max")


@dataclass(frozen=True)
class PredictConfig:
    """How to predict (the ``classify predict`` flags)."""

    top_k: int = 3
    aggregate: str = "mean"
    tta: int = 0
    timeline: bool = False
    batch_size: int = 64
    chunk_seconds: float = CHUNK_SECONDS
    unknown_threshold: float | None = None  # None: the runs' own (openset.json)

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ClassifyError(f"--top-k={self.top_k} must be at least 1")
        if self.aggregate not in AGGREGATES:
            raise ClassifyError(f"--aggregate {self.aggregate!r}: choose one of {', '.join(AGGREGATES)}")
        if self.tta < 0:
            raise ClassifyError(f"--tta={self.tta} must be >= 0 (extra shifted crops per window)")
        if self.batch_size < 1:
            raise ClassifyError(f"--bs={self.batch_size} must be at least 1")


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


# ------------------------------------------------------------------------------------ predict
def predict(run_dirs, inputs, *, top_k: int = 3, aggregate: str = "mean", tta: int = 0,
            timeline: bool = False, batch_size: int = 64, backend: str = "torch",
            scorers: list[Scorer] | None = None, follow_symlinks: bool = False,
            unknown_threshold: float | None = None) -> PredictResult:
    """Predict every audio file in ``inputs`` (files and folders) with the run(s) ``run_dirs``.

    Bad audio gives a row with ``status="failed"`` and spec2img's error message; the rest is
    predicted. Windows of all files are scored together in batches of ``batch_size``. Runs with an
    unknown threshold (``openset.json``; ``unknown_threshold`` overrides) add the columns ``label``
    (the top class, or ``unknown`` when its probability ``score`` is below the threshold) and ``score``.
    """
    cfg = PredictConfig(top_k=top_k, aggregate=aggregate, tta=tta, timeline=timeline, batch_size=batch_size,
                        unknown_threshold=unknown_threshold)
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
                    per_window = window_probs(chunk, cfg.tta, k)
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
    threshold = ensemble_threshold(scorers)
    unknown = ensemble_unknown_threshold(scorers, cfg.unknown_threshold)
    rows = _file_rows(files, probs, errors, list(first.classes), top_k=cfg.top_k,
                      multi_label=first.multi_label, threshold=threshold, statuses=statuses, unknown=unknown)
    tl = _timeline_rows(files, win_rows, list(first.classes), first.multi_label,
                        unknown=unknown) if cfg.timeline else None
    for f, e in zip(files, errors):
        if e:
            log.warning("failed: %s", e)
    return PredictResult(rows, probs, list(first.classes), first.multi_label, threshold, tl,
                         n_models=len(scorers), n_windows=n_windows, feature_seconds=t_feat,
                         model_seconds=t_model, unknown_threshold=unknown)


def window_probs(p: np.ndarray, tta: int, k: int) -> np.ndarray:
    """Crop probabilities [shape=(n_windows * (tta + 1), K)] -> window probabilities (n_windows, K)."""
    return p.reshape(-1, tta + 1, k).mean(1)


def score_file(scorers: list[Scorer], w: FileWindows, cfg: PredictConfig) -> tuple[np.ndarray, np.ndarray]:
    """One file's windows ``w`` scored as :func:`predict_files` scores them: ``(window probabilities
    [shape=(n_windows, K)], file probabilities (K,))``, models combined by the geometric mean.
    ``classify serve`` labels its clips with this."""
    k = len(scorers[0].classes)
    per_w, per_f = [], []
    for s in scorers:
        p = np.concatenate([s.score(w.images[b:b + cfg.batch_size])
                            for b in range(0, len(w.images), cfg.batch_size)])
        win = window_probs(p, cfg.tta, k)
        per_w.append(win)
        per_f.append(aggregate_windows(win, cfg.aggregate)[None])
    multi = scorers[0].multi_label
    return geometric_mean(per_w, multi_label=multi), geometric_mean(per_f, multi_label=multi)[0]


def _file_rows(files: list[Path], probs: np.ndarray, errors: list[str], classes: list[str], *,
               top_k: int, multi_label: bool, threshold: float | None,
               statuses: list[str] | None = None, unknown: float | None = None) -> list[dict]:
    k = min(top_k, len(classes))
    rows = []
    statuses = statuses or ["failed" if e else "ok" for e in errors]
    open_label, open_score = open_labels(probs, classes, unknown)
    for path, p, err, status, lab, score in zip(files, probs, errors, statuses, open_label, open_score):
        row: dict = {"file": display(str(path))}
        if unknown is not None:
            row["label"], row["score"] = ("", np.nan) if err else (lab, float(score))
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


def _timeline_rows(files, win_rows, classes, multi_label, *, unknown: float | None = None) -> list[dict]:
    rows = []
    for i in sorted(win_rows):
        w, per_model = win_rows[i]
        p = geometric_mean(per_model, multi_label=multi_label)
        top = p.argmax(1)
        labels, _ = open_labels(p, classes, unknown)
        name = display(str(files[i]))
        for j in range(len(p)):
            row = {"file": name, "start": float(round(w.start[j], 3)), "end": float(round(w.end[j], 3)),
                   "label": labels[j], "prob": float(p[j, top[j]])}
            row.update({f"p_{c}": float(v) for c, v in zip(classes, p[j])})
            rows.append(row)
    return rows
