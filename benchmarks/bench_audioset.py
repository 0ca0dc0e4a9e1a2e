"""Benchmark: the AudioSet backbone (``efficientat_mn04``) fine-tuned and ``--head-only``.

Same folds as ``benchmarks/accuracy.py`` (its ``fold_ids``): ESC-50 dev, 4 folds stratified by
class and grouped by ``src_file`` (``classify.data.splits.group_kfold``, seed 0); FSDD, one fold per
speaker (the manifest's fold column). Same protocol as its ``ours`` rows: project defaults
(``classify fit``: frozen 2 + unfrozen 10 one-cycle epochs, lr 3e-3, bs 32, 5 s crops,
SpecAugment + roll + mixup) except that the best checkpoint is NOT restored and early stopping is
off, so no epoch is chosen on the fold it is scored on. Head-only: ``--head-only`` defaults
(C = 1). Accuracy is per clip (the run folder's ``metrics.json``). Seconds are wall-clock of
``fit`` (embedding + head for head-only; all epochs incl. validation for fine-tuning), one torch
thread (fastest on the shared 2-core machine). One JSON line per run, appended to
``WORK/results.jsonl`` with the load average before and after.

Images (the ``efficientat`` preset) and labels::

    uv run spec2img ../shared/data/esc50-dev/audio /tmp/asb/esc50_eat \
        --labels ../shared/data/esc50-dev/esc50.csv --preset efficientat
    # fsdd_labels.csv: filename,label,fold (label = digit, fold = speaker 1..6, sorted by name)
    uv run spec2img ../shared/data/fsdd/recordings /tmp/asb/fsdd_eat --labels fsdd_labels.csv \
        --file-col filename --label-col label --fold-col fold --preset efficientat
    SPEC2IMG_EFFICIENTAT_WEIGHTS=../shared/weights/efficientat/mn04_as_mAP_432.pt \
    uv run python benchmarks/bench_audioset.py /tmp/asb/esc50_eat --work /tmp/asb/esc50 \
        --folds 4 --run-folds 1,2,3,4 --recipes head_only,fine_tune
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from accuracy import fold_ids  # noqa: E402  (the fit benchmark's folds)

from classify.config import TrainConfig  # noqa: E402
from classify.data.imageset import load_image_set  # noqa: E402


def run(ds, folds, k: int, recipe: str, work: Path, *, epochs: int, freeze_epochs: int) -> dict:
    from classify.training import headonly, train

    cfg = TrainConfig(images=str(ds.root), arch="efficientat_mn04", epochs=epochs, freeze_epochs=freeze_epochs,
                      restore_best=False, patience=0, quiet=True, seed=0, head_only=recipe == "head_only")
    fit = headonly.fit if cfg.head_only else train.fit
    t = time.perf_counter()
    m = fit(ds, cfg, work / f"{recipe}_fold{k}", clip_valid=folds == k)
    return {"accuracy": m["accuracy"], "seconds": time.perf_counter() - t,
            "train_seconds": m["train_seconds"], "epochs": 0 if cfg.head_only else freeze_epochs + epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, help="spec2img folder made with --preset efficientat")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--predefined-folds", action="store_true", help="the manifest's folds (FSDD speakers)")
    ap.add_argument("--run-folds", default="1")
    ap.add_argument("--recipes", default="head_only,fine_tune")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--freeze-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    ds = load_image_set(args.images)
    folds = fold_ids(ds, args.folds, args.predefined_folds)
    for recipe in args.recipes.split(","):
        for k in [int(x) for x in args.run_folds.split(",")]:
            load_before = os.getloadavg()[0]
            r = run(ds, folds, k, recipe, args.work, epochs=args.epochs, freeze_epochs=args.freeze_epochs)
            rec = {"dataset": args.images.name, "arch": "efficientat_mn04", "recipe": recipe, "fold": k, **r,
                   "torch_threads": torch.get_num_threads(),
                   "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
            print(json.dumps(rec), flush=True)
            with open(args.work / "results.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
