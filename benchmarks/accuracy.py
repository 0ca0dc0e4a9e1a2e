"""Benchmark 1: accuracy on real audio, project defaults vs the public notebooks' recipe.

Same clips, same folds, same backbone. Folds are computed once from the spec2img manifest:
ESC-50 dev: 4 folds stratified by class and grouped by ``src_file`` (classify.data.splits.group_kfold,
seed 0); FSDD: one fold per speaker (the manifest's fold column, see ``fsdd_labels``).

- ``ours``: ``classify fit`` defaults. The mode is chosen as ``classify fit`` chooses it
  (``classify.commands.choose_mode``): below 50 clips in the median class (esc50-dev) a pretrained
  backbone gets the ``--head-only`` probe (logistic head on frozen features; for
  efficientnet_lite0 its stage-6 map, GeM-pooled, 224 rows); otherwise (fsdd, or no pretrained
  weights) the fastai fine-tune: native-height log-mel PNGs from spec2img, random 5 s time crops,
  SpecAugment + roll + mixup, a fixed schedule (classify's defaults since issue 13: no best
  checkpoint restored, no early stopping; crops from the image widths), so no recipe selects
  anything on the validation fold it is scored on. ``--set head_only=false`` forces the fine-tune.
- ``notebook``: matplotlib ``specshow`` PNGs (benchmarks/notebook_recipe.py, 640x480 at dpi 100),
  ``Resize(224)`` squash, ``vision_learner``, ``fit_one_cycle(5, slice(1e-2))`` frozen, unfreeze,
  ``fit_one_cycle(10, lr_max=slice(1e-5, 1e-4))``; scored on the last epoch.

Usage::

    uv run spec2img ../shared/data/esc50-dev/audio /tmp/bench/esc50_img --labels ../shared/data/esc50-dev/esc50.csv
    uv run python benchmarks/accuracy.py /tmp/bench/esc50_img ../shared/data/esc50-dev/audio \
        --work /tmp/bench/esc50 --folds 4 --run-folds 1,2,3,4 --archs efficientnet_lite0

    # the ImageNet recipe for small sets (README): magma images at a 1024 hop, 224 rows, the
    # notebooks' schedule, no augmentation
    uv run spec2img ../shared/data/esc50-dev/audio /tmp/bench/esc50_imagenet --labels ../shared/data/esc50-dev/esc50.csv --preset imagenet
    uv run python benchmarks/accuracy.py /tmp/bench/esc50_imagenet ../shared/data/esc50-dev/audio \
        --work /tmp/bench/esc50 --folds 4 --run-folds 1,2,3,4 --recipes ours --tag _imagenet \
        --freeze-epochs 5 --set lr=1e-2 --set unfrozen_lr=1e-4 --set input_height=224 \
        --set augment='{"time_masks": 0, "freq_masks": 0, "roll": false, "mixup": 0}'
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from classify.data import splits
from classify.config import TrainConfig
from classify.data.imageset import load_image_set


def fold_ids(ds, n_folds: int, predefined: bool) -> np.ndarray:
    clips = ds.clip_table()
    if predefined:
        return clips["fold"].to_numpy(dtype=float, na_value=-1).astype(int)
    strata = clips["labels"].map(lambda l: l[0]).to_numpy().astype(str)
    return splits.group_kfold(strata, clips["group"].astype(str).to_numpy(), n_splits=n_folds, seed=0) + 1


def run_ours(ds, folds, k, arch, work: Path, epochs: int | None = None, freeze_epochs: int | None = None,
             bf16: bool | None = None, overrides: dict | None = None, tag: str = "") -> dict:
    """``classify fit`` defaults (TrainConfig's: fixed schedule, nothing chosen on the scored fold)
    on fold ``k``; ``epochs``/``freeze_epochs``/``overrides`` replace defaults only when given."""
    from classify.commands import choose_mode, fit_function

    given = {"epochs": epochs, "freeze_epochs": freeze_epochs}
    settings = {"seed": 0, **{k_: v for k_, v in given.items() if v is not None}, **(overrides or {})}
    cfg = TrainConfig(images=str(ds.root), arch=arch, pretrained=arch != "resnet34", quiet=True, bf16=bf16,
                      **settings)  # --set seed=1 etc. override the defaults above
    cfg = choose_mode(ds, cfg)
    t = time.perf_counter()
    m = fit_function(cfg)(ds, cfg, work / f"ours_{arch}{tag}_fold{k}", clip_valid=folds == k)
    used = TrainConfig.load(work / f"ours_{arch}{tag}_fold{k}")
    return {"accuracy": m["accuracy"], "seconds": time.perf_counter() - t,
            "train_images_per_second": m["train_images_per_second"], "bf16": m.get("bf16"),
            "mode": m.get("mode") or ("head-only" if cfg.head_only else "fine-tune"),
            "mode_choice": {k: v for k, v in m["mode_choice"].items() if k != "inner_images"} if "mode_choice" in m else None,
            "epochs_run": m.get("epochs_run"),
            "crop_seconds": used.crop_seconds, "protocol": m.get("protocol")}


def provenance() -> dict:
    """Commit (with a '+dirty' mark), package versions and machine, for benchmarks/results/."""
    import os
    import platform
    import subprocess

    from classify.runfolder import versions

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "classify"], cwd=root, capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return {"commit": commit + ("+dirty" if dirty else ""), "versions": versions(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "load_avg": os.getloadavg()[0]}


def render_specshow(ds, audio_dir: Path, out: Path) -> pd.DataFrame:
    from notebook_recipe import specshow_png

    rows = []
    for rec in ds.clip_table().itertuples():
        png = out / (Path(rec.source).with_suffix(".png").as_posix().replace("/", "__"))
        if not png.exists():
            specshow_png(audio_dir / rec.source, png)
        rows.append({"fname": str(png), "label": rec.labels[0]})
    return pd.DataFrame(rows)


def _lite0(pretrained=True):
    from classify.models.archs import efficientnet_lite0

    import torch.nn as nn

    return nn.Sequential(efficientnet_lite0(pretrained, None)[0])  # body only; vision_learner adds its head


def run_notebook(df: pd.DataFrame, folds, k, arch, bs: int = 64, bn_momentum: float | None = None) -> dict:
    import torchvision
    from fastai.vision.all import (ImageDataLoaders, Resize, ResizeMethod, accuracy, model_meta,
                                   set_seed, vision_learner)

    set_seed(0, reproducible=True)
    d = df.assign(is_valid=folds == k)
    dls = ImageDataLoaders.from_df(d, path="/", fn_col="fname", label_col="label", valid_col="is_valid",
                                   item_tfms=Resize(224, method=ResizeMethod.Squish), bs=bs, num_workers=0)
    if arch == "efficientnet_lite0":
        model_meta[_lite0] = {"cut": lambda m: m, "split": lambda m: [list(m[0].parameters()), list(m[1].parameters())],
                              "stats": ([0.5] * 3, [0.5] * 3)}
        from fastai.vision.all import create_head

        # fastai cannot infer lite0's width (its padded convs have children): give it the default head
        learn = vision_learner(dls, _lite0, metrics=accuracy, pretrained=True, custom_head=create_head(1280, dls.c))
    else:
        learn = vision_learner(dls, getattr(torchvision.models, arch), metrics=accuracy, pretrained=False)
    if bn_momentum is not None:  # e.g. 0.1, classify's setting, instead of lite0's stock 0.01
        import torch.nn as nn

        for m in learn.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = bn_momentum
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5, slice(1e-2))
        learn.unfreeze()
        learn.fit_one_cycle(10, lr_max=slice(1e-5, 1e-4))
        acc = float(learn.validate()[1])
    n = len(dls.train_ds) * 15
    secs = time.perf_counter() - t
    return {"accuracy": acc, "seconds": secs, "train_images_per_second": n / secs}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("images", type=Path)
    ap.add_argument("audio", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--predefined-folds", action="store_true")
    ap.add_argument("--run-folds", default="1")
    ap.add_argument("--archs", default="efficientnet_lite0")
    ap.add_argument("--recipes", default="ours,notebook")
    ap.add_argument("--epochs", type=int, default=None, help="ours: unfrozen epochs (default: classify's)")
    ap.add_argument("--freeze-epochs", type=int, default=None, help="ours: frozen epochs (default: classify's)")
    ap.add_argument("--record", type=Path, default=None,
                    help="also append each result, with commit/versions/machine, to this JSONL "
                         "(e.g. benchmarks/results/accuracy.jsonl)")
    ap.add_argument("--note", default="", help="free text stored with each recorded result")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="ours: force bfloat16 autocast on/off (default: classify's, on where the CPU has it)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="ours: TrainConfig override, e.g. --set input_height=224 --set unfrozen_lr=1e-4 "
                         "--set augment='{\"mixup\": 0, \"roll\": false, \"time_masks\": 0, \"freq_masks\": 0}'")
    ap.add_argument("--tag", default="", help="suffix for the recipe name and run folders of this variant")
    ap.add_argument("--notebook-bs", type=int, default=64)
    ap.add_argument("--notebook-bn-momentum", type=float, default=None,
                    help="set every BatchNorm's momentum in the notebook recipe (default: the backbone's own)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    ds = load_image_set(args.images)
    folds = fold_ids(ds, args.folds, args.predefined_folds)
    df = render_specshow(ds, args.audio, args.work / "specshow") if "notebook" in args.recipes else None
    for arch in args.archs.split(","):
        for k in [int(x) for x in args.run_folds.split(",")]:
            for recipe in args.recipes.split(","):
                if recipe == "ours":
                    r = run_ours(ds, folds, k, arch, args.work, args.epochs, args.freeze_epochs, args.bf16,
                                 overrides, args.tag)
                    r.update(epochs=args.epochs, freeze_epochs=args.freeze_epochs, overrides=overrides)
                else:
                    r = run_notebook(df, folds, k, arch, bs=args.notebook_bs, bn_momentum=args.notebook_bn_momentum)
                    r.update(bs=args.notebook_bs, bn_momentum=args.notebook_bn_momentum)
                rec = {"dataset": args.images.name, "arch": arch, "fold": k, "recipe": recipe + args.tag, **r,
                       **provenance(), "note": args.note}
                print(json.dumps(rec), flush=True)
                for path in [args.work / "results.jsonl"] + ([args.record] if args.record else []):
                    with open(path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
