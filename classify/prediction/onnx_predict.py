"""Exported ONNX models as :class:`classify.prediction.scorer.Scorer`: onnxruntime + numpy + spec2img, no
torch, no fastai. Predicting files with them is :mod:`classify.prediction.predict`'s job:

    from classify.prediction.predict import predict_onnx
    result = predict_onnx(["runs/x/model.onnx"], ["clips/"])

``model.onnx`` comes with ``model.onnx.json`` (written by :func:`classify.prediction.export.export_onnx`):
classes, spectrogram config, crop width, multi-label and threshold. Nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spec2img.config import SpectrogramConfig
from spec2img.errors import ConfigError

from ..errors import RunFolderError
from .scorer import Scorer

ONNX_FORMAT = "classify-onnx"
ONNX_FORMAT_VERSION = 1  # keep in step with classify.prediction.export


def onnx_paths(path: Path) -> tuple[Path, Path]:
    """``(model.onnx, model.onnx.json)`` for a ``.onnx`` file or a folder holding ``model.onnx``."""
    path = Path(path)
    model = path / "model.onnx" if path.is_dir() else path
    return model, model.with_name(model.name + ".json")


#: Windows per onnxruntime call (see ``score`` in :func:`onnx_scorer`).
ONNX_BATCH = 8


def onnx_scorer(path: Path, *, threads: int | None = None) -> Scorer:
    """An exported model as a :class:`classify.prediction.scorer.Scorer` (onnxruntime, CPU)."""
    import onnxruntime as ort

    model, meta_path = onnx_paths(path)
    hint = "run classify export RUN_DIR --onnx"
    if not model.is_file():
        raise RunFolderError(f"{model}: no such ONNX model; {hint}")
    if not meta_path.is_file():
        raise RunFolderError(f"{meta_path}: missing (it holds the classes and spectrogram settings); {hint}")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != ONNX_FORMAT or meta.get("format_version") != ONNX_FORMAT_VERSION:
            raise RunFolderError(
                f"{meta_path}: format {meta.get('format')!r} version {meta.get('format_version')!r}, "
                f"this version reads {ONNX_FORMAT!r} version {ONNX_FORMAT_VERSION}; {hint} again")
        spec = SpectrogramConfig.from_dict(meta["spectrogram"])
        classes = tuple(meta["classes"])
        crop_width, multi = int(meta["crop_width"]), bool(meta["multi_label"])
        threshold = meta.get("threshold")
        unknown = meta.get("unknown_threshold")
        unknown = None if unknown is None else float(unknown)
        in_name, out_name = meta["input"], meta["output"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunFolderError(f"{meta_path}: unreadable ({type(exc).__name__}: {exc}); {hint} again") from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise RunFolderError(f"{model}: not a loadable ONNX model ({str(exc)[:120]}); {hint} again") from None

    def score(x: np.ndarray) -> np.ndarray:
        # a few windows at a time: on CPU a wide batch's activations spill out of cache
        # (benchmarks/bench_serve.py --clip-cost: 64 windows a call cost more per window than 8)
        parts = [sess.run([out_name], {in_name: x[b:b + ONNX_BATCH].astype(np.float32) / np.float32(255)})[0]
                 for b in range(0, max(len(x), 1), ONNX_BATCH)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    return Scorer(str(model), classes, spec, crop_width, multi, threshold, score, unknown)
