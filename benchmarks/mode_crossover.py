"""Where fine-tuning starts to beat the ``--head-only`` probe: one held-out fold, training set
subsampled to N clips per class, both modes with ``classify fit`` defaults otherwise.

This is the measurement behind ``classify.config.HEAD_ONLY_BELOW`` (README, Benchmarks).
Both modes run ``classify fit``'s defaults (since issue 13 a fixed schedule and ``crop_seconds``
from the image widths), so nothing is chosen on the scored fold.

Usage (fsdd images from ``benchmarks/fsdd_labels.py`` + spec2img; fold = held-out speaker)::

    uv run python benchmarks/mode_crossover.py /tmp/q/fsdd_img --fold 1 --per-class 10,30,100 \
        --record benchmarks/results/crossover.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from classify.config import TrainConfig
from classify.data.imageset import load_image_set

from accuracy import fold_ids, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--fold", type=int, default=1, help="predefined fold (manifest) held out for scoring")
    ap.add_argument("--per-class", default="10,30,100", help="training clips per class, comma-separated")
    ap.add_argument("--arch", default="efficientat_mn04")
    ap.add_argument("--record", type=Path, default=None,
                    help="also append results with commit/versions/machine here (benchmarks/results/...)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench/crossover"))
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here (default WORK/results.jsonl)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from classify.commands import fit_function

    ds = load_image_set(args.images)
    folds = fold_ids(ds, 0, True)
    y = ds.targets.argmax(1)
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.out or args.work / "results.jsonl"
    for n in [int(v) for v in args.per_class.split(",")]:
        rng = np.random.default_rng(0)
        keep = np.zeros(len(y), bool)
        for c in np.unique(y):
            pool = np.flatnonzero((y == c) & (folds != args.fold))
            keep[rng.choice(pool, min(n, len(pool)), replace=False)] = True
        exclude = ~keep & (folds != args.fold)
        for head_only in (True, False):
            cfg = TrainConfig(images=str(args.images), arch=args.arch, head_only=head_only, quiet=True, seed=0)
            t = time.perf_counter()
            m = fit_function(cfg)(ds, cfg, args.work / f"n{n}_{'ho' if head_only else 'ft'}",
                                  clip_valid=folds == args.fold, exclude=exclude)
            rec = {"dataset": args.images.name, "arch": args.arch, "fold": args.fold, "train_clips_per_class": n,
                   "mode": "head-only" if head_only else "fine-tune", "accuracy": m["accuracy"],
                   "seconds": round(time.perf_counter() - t, 1), "n_train": m["n_train_images"], **provenance()}
            print(json.dumps(rec), flush=True)
            for path in [out] + ([args.record] if args.record else []):
                with open(path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
