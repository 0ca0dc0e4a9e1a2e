"""Suspect labels of an images folder the way ``classify cv --head-only --folds K`` computes them,
with each clip embedded once (the backbone is frozen, so every fold sees the same features):
frozen ``efficientat_mn04`` features (``classify.training.featurecache.window_features``, the windows and
pooling fit uses), the folds of ``classify.training.cv.fold_assignment``, one scaler + logistic regression
per fold (``classify.training.headonly.fit_logistic``, C = 1), out-of-fold probabilities averaged over each
clip's windows, then ``classify.scoring.suspects.suspect_table``. One torch thread.

    uv run python benchmarks/fsdd_labels.py ../shared/data/fsdd/recordings /tmp/fsdd_labels.csv
    uv run spec2img ../shared/data/fsdd/recordings /tmp/fsdd_img --labels /tmp/fsdd_labels.csv \
        --file-col file --label-col label --fold-col fold --preset efficientat
    nice -n 5 uv run python benchmarks/suspect_labels.py /tmp/fsdd_img \
        ../shared/weights/efficientat/mn04_as_mAP_432.pt --folds 4 --crop-seconds 1 --out /tmp/fsdd_suspects.csv
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classify.models.archs import get_arch
from classify.config import TrainConfig
from classify.training.cv import CVConfig, fold_assignment
from classify.data.imageset import crop_width, load_image_set
from classify.training.featurecache import window_features
from classify.training.headonly import fit_logistic, probabilities
from classify.models.classifier import build_model
from classify.scoring.suspects import suspect_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images")
    ap.add_argument("weights")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--crop-seconds", type=float, default=5.0)
    ap.add_argument("--out", default="suspect_labels.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    ds = load_image_set(Path(args.images))
    cfg = TrainConfig(images=args.images, arch="efficientat_mn04", weights=args.weights, head_only=True,
                      crop_seconds=args.crop_seconds).resolved()
    spec = get_arch(cfg.arch)
    width = crop_width(ds.cfg, cfg.crop_seconds, ds.max_width)
    model = build_model(spec, n_classes=len(ds.classes), in_channels=ds.cfg.channels, pretrained=True,
                        weights_file=Path(cfg.weights), input_height=cfg.input_height,
                        value_range=(ds.cfg.vmin, ds.cfg.vmax), head="linear", cut=cfg.cut,
                        pool=spec.probe_pool, arch=cfg.arch).eval()
    X, owner = window_features(model, ds.images, width=width, bs=64)
    folds, _ = fold_assignment(ds, CVConfig(cfg, folds=args.folds))
    fold_of_win = folds[ds.table["clip"].to_numpy()[owner]]
    P = np.zeros((len(X), len(ds.classes)))
    for k in sorted(set(folds) - {-1}):
        tr = fold_of_win != k
        shift, scale, W, b = fit_logistic(X[tr], ds.targets[owner][tr], multi_label=False, C=1.0)
        P[~tr] = probabilities((X[~tr] - shift) / scale, W, b, multi_label=False)
    img_p = np.zeros((len(ds.images), len(ds.classes)))
    np.add.at(img_p, owner, P)
    img_p /= np.bincount(owner)[:, None]
    oof = pd.DataFrame({"source": ds.table["source"], "labels": [";".join(v) for v in ds.table["labels"]],
                        **{f"p_{c}": img_p[:, j] for j, c in enumerate(ds.classes)}})
    table = suspect_table(oof, ds.classes)
    table[["file", "given", "suggested", "score"]].to_csv(args.out, index=False)
    acc = float((img_p.argmax(1) == ds.targets.argmax(1)).mean())
    print(f"{len(ds.images)} images, out-of-fold accuracy per image {acc:.4f}, {len(table)} suspects, "
          f"{time.time() - t0:.0f} s -> {args.out}")
    print(table[["file", "given", "suggested", "score"]].head(10).to_string(index=False))


if __name__ == "__main__":
    main()
