"""Tiny run folders for tests and benchmarks, written per the RUN_DIR contract (ARCHITECTURE.md).

``make_untrained_run`` builds the files ``classify fit`` writes around an untrained, seeded model
of a real architecture (no training, no weight downloads): enough to test loading, windows,
ensembles, export and every failure message in seconds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from classify.config import TrainConfig
from classify.runfolder import ModelInfo, RunInfo, rebuild, write_run
from spec2img.config import SpectrogramConfig

SMALL_SPEC = dict(sr=8000, n_fft=256, hop_length=128, n_mels=32)


def make_untrained_run(run_dir: Path, *, classes=("high", "low", "mid"), arch: str = "resnet18",
                       crop_width: int = 63, multi_label: bool = False, threshold: float | None = None,
                       seed: int = 0, model_info: dict | None = None, **spec_overrides) -> Path:
    """Write a complete run folder with an untrained ``arch`` model; return ``run_dir``.

    ``model_info``: ``ModelInfo`` fields to override (e.g. ``head="linear", cut=1, pool="gem"``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = SpectrogramConfig(**{**SMALL_SPEC, **spec_overrides})
    train = TrainConfig(images="none", arch=arch, pretrained=False, epochs=1)
    info = ModelInfo(arch=arch, n_classes=len(classes), in_channels=spec.channels, input_height=None,
                     dropout=0.5, hidden=64, crop_width=crop_width, multi_label=multi_label,
                     threshold=threshold, **{"spectrogram_digest": spec.digest(), **(model_info or {})})
    torch.manual_seed(seed)
    model = rebuild(RunInfo(run_dir, list(classes), spec, train, info, {}))
    with torch.no_grad():  # BatchNorm running stats that make untrained outputs differ per input
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.normal_(0, 0.1)
    return write_run(run_dir, classes=classes, spectrogram=spec, train=train, model_info=info,
                     metrics={"crop_width": crop_width}, model=model.eval(), versions_json=False)
