"""A tuning split inside one fold of a spec2img images folder: the fold's clips cut into two halves
(grouped by recording, stratified by class; classify's own ``group_kfold``, seed 0) written as
folds 1 and 2 of a new images folder that links to the original images. Recipes are compared by
training on one half and scoring the other, so no scored fold is read by a choice.

Usage (us8k-dev: fold 1 of the official folds)::

    uv run python benchmarks/us8k_tuning_split.py /work/bench/us8k_eat /work/bench/us8k_tune --fold 1
    uv run python benchmarks/accuracy.py /work/bench/us8k_tune ../shared/data/us8k-dev --work W \\
        --predefined-folds --run-folds 1,2 --archs efficientat_mn04 --recipes ours --set head_only=true
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pandas as pd

from classify.data import splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, help="spec2img output folder with a fold column")
    ap.add_argument("out", type=Path, help="new folder (links to the images, its own manifest)")
    ap.add_argument("--fold", default="1", help="the fold to cut in two (default 1)")
    a = ap.parse_args()
    m = pd.read_csv(a.images / "manifest.csv", keep_default_na=False)
    m = m[m["fold"].astype(str) == str(a.fold)].copy()
    m["fold"] = splits.group_kfold(m["labels"].astype(str).to_numpy(), m["group"].astype(str).to_numpy(),
                                   n_splits=2, seed=0) + 1
    a.out.mkdir(parents=True, exist_ok=True)
    for d in a.images.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            link = a.out / d.name
            if not link.exists():
                os.symlink(d.resolve(), link)
    for name in ("spectrogram.json", "spec2img_run.json"):
        if (a.images / name).is_file():
            shutil.copy2(a.images / name, a.out / name)
    m.to_csv(a.out / "manifest.csv", index=False)
    print(m.groupby(["labels", "fold"]).size().unstack().to_string())


if __name__ == "__main__":
    main()
