"""``RUN_DIR/openset.json``: a run's unknown threshold and how it was chosen (one typed writer/reader).

Written by the head-only fit (:mod:`classify.training.openset_fit`), teach mode and the fine-tune
(:func:`classify.training.evaluate.write_validation_openset`); read by
prediction (``classify predict``, ``classify serve``) and the report. No torch, no pandas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import RunFolderError
from .runfolder import read_json, write_json

NAME = "openset.json"


@dataclass(frozen=True)
class OpenSet:
    """The unknown threshold of a run.

    ``threshold``: a clip whose highest class probability is below it is ``unknown``.
    ``method``: one line saying how it was chosen; ``score``: what is compared with it.
    ``n_known`` / ``n_background``: held-out clips it was chosen on; ``folds``: the out-of-fold
    split over the training clips that produced those scores; ``oof_accuracy``: the accuracy of
    those out-of-fold predictions; ``known_auroc_background``: AUROC of known vs background
    scores (None without background clips).
    """

    threshold: float
    method: str
    score: str = "highest class probability (window probabilities averaged over the clip)"
    n_known: int = 0
    n_background: int = 0
    folds: int = 0
    oof_accuracy: float | None = None
    known_auroc_background: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise RunFolderError(f"{NAME}: threshold={self.threshold!r} must be a number in [0, 1]")


def write_openset(run_dir: Path, openset: OpenSet) -> Path:
    """Write ``RUN_DIR/openset.json``; returns its path."""
    path = Path(run_dir) / NAME
    write_json(path, asdict(openset))
    return path


def read_openset(run_dir: Path) -> OpenSet | None:
    """``RUN_DIR/openset.json`` as an :class:`OpenSet`, None when the run has none (older
    runs, multi-label runs); :class:`RunFolderError` naming the file when it is unreadable."""
    path = Path(run_dir) / NAME
    data = read_json(path, None)
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(OpenSet)}
    if not isinstance(data, dict) or "threshold" not in data or set(data) - names:
        raise RunFolderError(f"{path}: not an open-set file (keys {', '.join(sorted(names))}); "
                             "delete it or re-run classify fit")
    if not isinstance(data["threshold"], (int, float)) or isinstance(data["threshold"], bool):
        raise RunFolderError(f"{path}: threshold must be a number in [0, 1]")
    return OpenSet(**data)
