"""``classify demo``: the whole pipeline on synthetic clips, offline, in well under two minutes on CPU.

synth clips -> ``spec2img`` with its default preset -> ``classify fit`` with its defaults (the
AudioSet backbone shipped with the package; head-only at this size, as for any small set) -> HTML
report -> ``classify predict`` on clips the model has never heard. Nothing is forced: the demo
shows what ``spec2img AUDIO IMAGES`` and ``classify fit IMAGES`` do on a user's own folder.
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
    new_correct: int  # held-out clips labelled correctly
    new_total: int


def run_demo(out_dir: Path, *, per_class: int = 24, quiet: bool = False) -> DemoResult:
    """Run every stage into ``out_dir`` (audio/, images/, run/, new_clips/, predictions.csv)."""
    from spec2img.api import convert, synth

    from . import api

    out_dir = Path(out_dir)
    audio_dir, images_dir, run_dir = out_dir / "audio", out_dir / "images", out_dir / "run"
    log.info("1/4 synthetic clips -> %s", audio_dir)
    synth(audio_dir, n_per_class=per_class, seed=0)
    log.info("2/4 spectrogram images (spec2img's default preset) -> %s", images_dir)
    res = convert(audio_dir, images_dir, jobs=None, progress=not quiet)
    log.info("    %d clips converted or up to date, %d failed, %d images (%.1f s)", res.n_ok, res.n_failed,
             res.n_images, res.seconds)
    log.info("3/4 classify fit with its defaults -> %s", run_dir)
    metrics = api.fit(images_dir, out=run_dir, quiet=quiet).metrics
    predictions, correct, total = _predict_new_clips(run_dir, out_dir)
    return DemoResult(audio_dir, images_dir, run_dir, run_dir / "report" / "index.html", predictions, metrics,
                      correct, total)


def _predict_new_clips(run_dir: Path, out_dir: Path) -> tuple[Path, int, int]:
    """Predict clips of another seed (never seen); returns the CSV and how many came out right."""
    from spec2img.api import synth

    from .prediction.results import write_csv
    from .run import predict

    new = synth(out_dir / "new_clips", n_per_class=2, seed=1)
    log.info("4/4 predicting %s -> %s", new, out_dir / "predictions.csv")
    result = predict([run_dir], [new])
    path = write_csv(result, out_dir / "predictions.csv")
    df = result.table
    truth = df["file"].map(lambda f: Path(f).parent.name)  # synth writes folder-per-class
    return path, int((truth == df["label_1"]).sum()), len(df)
