"""``classify export RUN_DIR --onnx``: the run's model as ONNX plus the JSON needed to feed it.

``model.onnx``: input ``image`` float32 ``(batch, C, n_rows, width)`` = pixels / 255 (batch and width
dynamic), output ``probs`` ``(batch, n_classes)`` (softmax, or sigmoid for multi-label runs).
``model.onnx.json``: classes, the spectrogram config, crop width, multi-label and threshold; with
it :mod:`classify.prediction.onnx_predict` predicts from raw audio with onnxruntime, numpy and spec2img only.
Unlike ``learner.pkl`` neither file is unpickled: ONNX is the safe format to share.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import torch
from torch import nn

from spec2img.io import write_atomic

from ..errors import ClassifyError
from ..runfolder import load_model

log = logging.getLogger(__name__)

ONNX_FORMAT = "classify-onnx"
ONNX_FORMAT_VERSION = 1
OPSET = 17


class _Probabilities(nn.Module):
    """The classifier followed by softmax (or sigmoid): what prediction consumes."""

    def __init__(self, model: nn.Module, multi_label: bool):
        super().__init__()
        self.model, self.multi_label = model, multi_label

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.model(image)
        return torch.sigmoid(logits) if self.multi_label else logits.softmax(1)


def onnx_metadata(info) -> dict:
    """``model.onnx.json``'s content for a :class:`classify.runfolder.RunInfo`."""
    return {
        "format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION,
        "input": "image", "output": "probs",
        "classes": list(info.classes), "spectrogram": info.spectrogram.to_dict(),
        "crop_width": int(info.model.crop_width), "multi_label": bool(info.model.multi_label),
        "threshold": info.model.threshold, "arch": info.model.arch, "run_dir": str(info.run_dir),
        "unknown_threshold": unknown_threshold(info.run_dir),
    }


def unknown_threshold(run_dir: Path) -> float | None:
    """The run's open-set threshold (``openset.json``), or None."""
    from ..openset_file import read_openset

    found = read_openset(run_dir)
    return None if found is None else found.threshold


def export_runs(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Export a run folder, or every ``fold_<k>`` of a cv run folder (each to its own folder)."""
    from .ensemble import expand_runs

    runs = expand_runs([run_dir])
    if len(runs) > 1 and out is not None:
        raise ClassifyError(f"{run_dir} is a cv run with {len(runs)} folds: drop --out, each fold is "
                            "exported to its own folder (fold_<k>/model.onnx)")
    return [export_onnx(r, out) for r in runs]


def export_onnx(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``model.onnx`` (default ``RUN_DIR/model.onnx``) and ``<out>.json``; return the path."""
    run_dir = Path(run_dir)
    model, info = load_model(run_dir)
    out = Path(out) if out is not None else run_dir / "model.onnx"
    if out.suffix != ".onnx":
        raise ClassifyError(f"--out {out}: give a file name ending in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    net = _Probabilities(model.float().eval(), info.model.multi_label).eval()
    cfg = info.spectrogram
    dummy = torch.rand(2, cfg.channels, cfg.n_rows, info.model.crop_width)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, (dummy,), buf, input_names=["image"], output_names=["probs"],
                          dynamic_axes={"image": {0: "batch", 3: "width"}, "probs": {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    write_atomic(out, buf.getvalue())  # a full disk: one line naming the file, the old export kept
    meta = out.with_name(out.name + ".json")
    write_atomic(meta, (json.dumps(onnx_metadata(info), indent=2) + "\n").encode())
    log.debug("wrote %s and %s", out, meta.name)
    return out
