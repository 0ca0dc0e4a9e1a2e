"""Which models predict and how their scores combine (no torch, no fastai at import).

Run folders, the folds of a cv run or ``.onnx`` exports become :class:`~classify.prediction.scorer.Scorer`
objects (:func:`load_scorers`; the torch scorer imports torch when called). Several models must
predict the same classes; their file probabilities are combined by the geometric mean
(renormalised for single-label runs) and a multi-label ensemble decides at the mean of the runs'
thresholds. Window probabilities become one row per file by ``mean`` or ``max``. Used by
:mod:`classify.prediction.predict`, the Ray path and ``classify serve`` alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ClassifyError, RunFolderError
from ..scoring.evaluate import geometric_mean as _geometric_mean
from .scorer import Scorer

BACKENDS = ("torch", "onnx")
EPS = 1e-7


# ------------------------------------------------------------------------------ loading models
def expand_runs(run_dirs: Iterable[Path]) -> list[Path]:
    """Run folders, a cv run folder replaced by its ``fold_<k>`` runs (in fold order)."""
    from ..runfolder import fold_dirs

    out = []
    for r in map(Path, run_dirs):
        folds = fold_dirs(r)
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

    from ..runfolder import load_model

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

    from ..openset_file import read_openset

    found = read_openset(run_dir)
    return Scorer(str(run_dir), tuple(info.classes), info.spectrogram, int(info.model.crop_width), multi,
                  info.model.threshold, score, None if found is None else found.threshold)


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


# ------------------------------------------------------------------------------------ combine
def aggregate_windows(p: np.ndarray, how: str) -> np.ndarray:
    """Window probabilities ``(n_windows, K)`` -> one row ``(K,)`` by mean or max."""
    return p.max(0) if how == "max" else p.mean(0)


def geometric_mean(probs: list[np.ndarray], *, multi_label: bool) -> np.ndarray:
    """Combine models' probabilities ``[(n, K), ...]``: mean of logs, renormalised if single-label
    (:func:`classify.scoring.evaluate.geometric_mean`, the rule ``classify cv`` scores its ensemble with)."""
    if len(probs) == 1:
        return probs[0]
    return _geometric_mean(probs, normalise=not multi_label, eps=EPS).astype(np.float32)


def ensemble_unknown_threshold(scorers: list[Scorer], override: float | None = None) -> float | None:
    """The open-set threshold of single-label models: ``override`` (``--unknown-threshold``) when
    given, else the mean of the runs' thresholds when every run has one, else None (never unknown)."""
    if scorers[0].multi_label:
        return None
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise ClassifyError(f"--unknown-threshold={override} must be between 0 and 1 (0: never unknown)")
        return float(override)
    found = [s.unknown_threshold for s in scorers]
    return None if any(t is None for t in found) else float(np.mean(found))


def ensemble_threshold(scorers: list[Scorer]) -> float | None:
    """Multi-label decision threshold: the mean of the runs' tuned thresholds (0.5 where unset)."""
    if not scorers[0].multi_label:
        return None
    return float(np.mean([0.5 if s.threshold is None else s.threshold for s in scorers]))
