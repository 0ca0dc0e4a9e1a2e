"""After a fit: is its split probably leaky? The frozen-embedding check of
:mod:`classify.scoring.leak`, run on the fit's own training and validation images, with the result
logged and kept in ``metrics.json`` (``leak``), where the report shows it.

Head-only fits pass the frozen features they already computed (no extra cost); fine-tuning
computes them once with the arch's pretrained, frozen body
(:func:`classify.training.headonly.frozen_image_features`: one forward pass over the images,
about the time of a head-only fit: seconds to a minute on CPU for a few thousand clips).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..data.imageset import ImageSet
from ..data.splits import Selection
from ..runfolder import read_json, write_metrics
from ..scoring.leak import leak_check

log = logging.getLogger(__name__)


def per_image(X: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Mean of window rows ``X`` [shape=(n_windows, F)] per image (``owner``: image of each window)."""
    out = np.zeros((n, X.shape[1]))
    np.add.at(out, owner, X)
    return out / np.maximum(np.bincount(owner, minlength=n), 1)[:, None]


def check_and_record(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path, *,
                     train_features, valid_features) -> dict | None:
    """Run :func:`classify.scoring.leak.leak_check` on the fit's images, log one line (a warning
    when probably leaky or when there are no groups), add ``leak`` to ``run_dir/metrics.json``;
    returns that dict.

    ``train_features`` / ``valid_features``: frozen features [shape=(n, F)] of ``sel.train`` /
    ``sel.valid``, or callables computing them (called only when the check runs). Without
    pretrained weights (``--no-pretrained``) frozen features mean nothing: skipped (None).
    """
    if not (cfg.pretrained or cfg.weights):
        return None
    t0 = time.perf_counter()
    if callable(train_features):
        train_features = train_features()
    if callable(valid_features):
        valid_features = valid_features()
    table = ds.table
    first = table["labels"].map(lambda labs: labs[0]).to_numpy().astype(str)
    groups = table["group"].astype(str).to_numpy()
    result = leak_check(train_features, first[sel.train], valid_features, first[sel.valid],
                        train_groups=groups[sel.train], valid_groups=groups[sel.valid])
    seconds = time.perf_counter() - t0
    no_groups = bool((table["group"].astype(str) == table["source"].astype(str)).all())
    out = {**result.to_dict(), "line": result.line(), "seconds": round(seconds, 2), "no_groups": no_groups}
    if no_groups:
        out["line"] += ("; but every clip is its own group here, so clips of one recording or speaker on both "
                        "sides cannot be seen: if clips share a speaker or recording, give the groups (spec2img "
                        "--group-col COL or --group-from-name REGEX) or the score is inflated")
    # no groups at all: the check cannot see hidden recordings, so say what would
    (log.warning if result.leaky or no_groups else log.info)("leak check (%.1f s): %s", seconds, out["line"])
    metrics = read_json(Path(run_dir) / "metrics.json")
    write_metrics(run_dir, {**metrics, "leak": out})
    return out

