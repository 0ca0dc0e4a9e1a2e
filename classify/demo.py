"""``classify demo``: the whole pipeline on synthetic clips, offline, in a couple of minutes on CPU.

synth clips -> spec2img images -> classify fit (EfficientNet-Lite0, ImageNet weights shipped with
the package) -> HTML report -> classify predict on clips the model has never seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    audio_dir: Path
    images_dir: Path
    run_dir: Path
    report: Path
    predictions: Path
    metrics: dict


def run_demo(out_dir: Path, *, epochs: int = 8, per_class: int = 24, quiet: bool = False) -> DemoResult:
    """Run every stage into ``out_dir`` (audio/, images/, run/, new_clips/, predictions.csv)."""
    from spec2img.config import from_preset
    from spec2img.convert import convert
    from spec2img.synth import synth

    from .commands import fit
    from .config import TrainConfig
    from .runfolder import read_info

    out_dir = Path(out_dir)
    audio_dir, images_dir, run_dir = out_dir / "audio", out_dir / "images", out_dir / "run"
    log.info("1/4 synthetic clips -> %s", audio_dir)
    synth(audio_dir, n_per_class=per_class, seed=0)
    log.info("2/4 spectrogram images -> %s", images_dir)
    summary = convert(audio_dir, images_dir, from_preset(), progress=not quiet)
    log.info("    %s", summary.line())
    log.info("3/4 fine-tuning efficientnet_lite0 (ImageNet weights) -> %s", run_dir)
    # 24 clips a class would default to --head-only; the demo shows the fastai fine-tune.
    fit(TrainConfig(images=str(images_dir), out=str(run_dir), epochs=epochs, freeze_epochs=2, quiet=quiet,
                    head_only=False))
    metrics = read_info(run_dir).metrics
    predictions = _predict_new_clips(run_dir, out_dir)
    return DemoResult(audio_dir, images_dir, run_dir, run_dir / "report" / "index.html", predictions, metrics)


def _predict_new_clips(run_dir: Path, out_dir: Path) -> Path:
    from spec2img.synth import synth

    from .predict import predict, write_csv

    new = synth(out_dir / "new_clips", n_per_class=2, seed=1)  # another seed: clips never seen
    log.info("4/4 predicting %s -> %s", new, out_dir / "predictions.csv")
    result = predict([run_dir], [new])
    return write_csv(result, out_dir / "predictions.csv")
