"""Accuracy of two run folders' validation predictions and of their average (the mean of the two
probabilities per image, what ``classify fit`` keeps as ``mode: average``), on the images both scored.

Usage::

    uv run python benchmarks/average_of_runs.py PROBE_RUN FINE_TUNE_RUN
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def main() -> None:
    a, b = (pd.read_csv(f"{run}/valid_predictions.csv", keep_default_na=False) for run in sys.argv[1:3])
    cols = [c for c in a.columns if c.startswith("p_")]
    m = a.merge(b, on="image", suffixes=("_a", "_b"))
    pa, pb = (m[[f"{c}_{s}" for c in cols]].to_numpy(float) for s in ("a", "b"))
    names, truth = np.array([c[2:] for c in cols]), m["labels_a"].astype(str).to_numpy()
    for what, p in (("first", pa), ("second", pb), ("average", (pa + pb) / 2)):
        print(f"{what}: {(names[p.argmax(1)] == truth).mean():.4f} on {len(m)} images")


if __name__ == "__main__":
    main()
