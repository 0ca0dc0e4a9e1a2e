"""Benchmark 2: CPU training throughput (images/s), classify fit vs plain fastai defaults.

Same PNGs (a spec2img folder), same backbone, batch size 32, ``--n`` images per timed epoch after
one warm-up epoch:

- ``classify``: PNGs decoded once into memory, native 128-row height, 5 s crops (431 frames),
  grey input (first conv summed), on-batch SpecAugment/roll/mixup; variants fp32, channels_last
  (the default) and bfloat16 autocast.
- ``fastai defaults``: ``ImageDataLoaders.from_df`` decoding every PNG each batch,
  ``Resize(224)`` + ``aug_transforms()``, ``vision_learner`` (3-channel RGB input).

The data loader alone (one pass, no model) is timed for both.

Usage: ``uv run python benchmarks/throughput.py /tmp/bench/esc50_img --archs efficientnet_lite0,resnet34``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


class _Count:
    def __init__(self):
        self.n, self.t = 0, 0.0


def _pick(ds, m: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(len(ds.images))[:m]


def time_classify(ds, arch: str, n: int, *, bf16: bool, channels_last: bool) -> dict:
    from fastai.callback.core import Callback

    from classify.config import TrainConfig
    from classify.data.imageset import Selection
    from classify.training.train import make_learner

    idx = _pick(ds, n + 32)
    sel = Selection(train=idx[:n], valid=idx[n:n + 32])
    cfg = TrainConfig(images=str(ds.root), arch=arch, pretrained=arch != "resnet34", bs=32, quiet=True,
                      bf16=bf16, channels_last=channels_last)
    learn, model, width, hist = make_learner(ds, sel, cfg, Path("/tmp/bench/tp_run"), torch.device("cpu"))
    learn.unfreeze()
    learn.fit(1, 1e-4)  # warm-up
    hist.train_items, hist.train_seconds = 0, 0.0
    learn.fit(1, 1e-4)
    # loader alone: crops + uint8 collate + float/augment on batch
    from classify.data.augment import augment_batch

    t = time.perf_counter()
    m = 0
    for xb, yb in learn.dls.train:
        x, y = augment_batch(xb.float().div_(255), yb, cfg.augment)
        m += len(x)
    loader = m / (time.perf_counter() - t)
    return {"train_images_per_second": hist.train_items / hist.train_seconds, "loader_images_per_second": loader,
            "input": f"1x{ds.cfg.n_rows}x{width}"}


def time_fastai(ds, arch: str, n: int) -> dict:
    import torchvision
    from fastai.vision.all import (Callback, ImageDataLoaders, Resize, aug_transforms, model_meta,
                                   vision_learner)

    from accuracy import _lite0

    pick = np.concatenate([_pick(ds, n), _pick(ds, 32)])  # validation repeats training images: labels known
    df = pd.DataFrame({"fname": [str(ds.root / ds.table["image"][i]) for i in pick],
                       "label": [ds.table["labels"][i][0] for i in pick]})
    df["is_valid"] = np.arange(len(df)) >= n
    dls = ImageDataLoaders.from_df(df, path="/", fn_col="fname", label_col="label", valid_col="is_valid",
                                   item_tfms=Resize(224), batch_tfms=aug_transforms(), bs=32, num_workers=0)

    class Timer(Callback):
        def before_train(self):
            self.t0, self.k = time.perf_counter(), 0

        def after_batch(self):
            if self.training:
                self.k += len(self.x)

        def after_train(self):
            self.rate = self.k / (time.perf_counter() - self.t0)

    if arch == "efficientnet_lite0":
        model_meta[_lite0] = {"cut": lambda m: m, "split": lambda m: [list(m[0].parameters()), list(m[1].parameters())],
                              "stats": ([0.5] * 3, [0.5] * 3)}
        from fastai.vision.all import create_head

        learn = vision_learner(dls, _lite0, pretrained=True, custom_head=create_head(1280, dls.c))
    else:
        learn = vision_learner(dls, getattr(torchvision.models, arch), pretrained=False)
    learn.unfreeze()
    timer = Timer()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-4)
        learn.fit(1, 1e-4, cbs=timer)
    t = time.perf_counter()
    m = 0
    for xb, yb in dls.train:
        m += len(xb)
    return {"train_images_per_second": timer.rate, "loader_images_per_second": m / (time.perf_counter() - t),
            "input": "3x224x224"}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("images", type=Path)
    ap.add_argument("--archs", default="efficientnet_lite0,resnet34")
    ap.add_argument("--n", type=int, default=96, help="training images per timed epoch")
    ap.add_argument("--variants", default="fastai,classify,classify_fp32_contiguous,classify_bf16")
    args = ap.parse_args()
    from classify.data.imageset import load_image_set

    torch.manual_seed(0)
    ds = load_image_set(args.images)
    for arch in args.archs.split(","):
        for v in args.variants.split(","):
            if v == "fastai":
                r = time_fastai(ds, arch, args.n)
            else:
                r = time_classify(ds, arch, args.n, bf16=v.endswith("bf16"), channels_last=not v.endswith("contiguous"))
            print(json.dumps({"arch": arch, "variant": v, **{k: (round(x, 2) if isinstance(x, float) else x)
                                                              for k, x in r.items()}}), flush=True)


if __name__ == "__main__":
    main()
