"""classify.data.imageset.select: the validation split is grouped by the manifest's ``group`` (the
recording), not by source file, so sibling clips of one recording never straddle it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify.data.imageset import ImageSet, select
from spec2img.config import SpectrogramConfig


def image_set(*, n_classes=4, recordings=6, clips_per_recording=3, images_per_clip=2) -> ImageSet:
    """A table-only ImageSet: every recording cut into several clips (separate source files),
    each clip into several images. Images are never read by ``select``."""
    rows = []
    for c in range(n_classes):
        for r in range(recordings):
            for k in range(clips_per_recording):
                for i in range(images_per_clip):
                    rows.append({"image": f"c{c}/r{r}_{k}_{i}.png", "source": f"c{c}/r{r}_{k}.wav",
                                 "labels": [f"class{c}"], "fold": pd.NA, "group": f"rec{c}_{r}",
                                 "manually_verified": pd.NA, "offset": float(i)})
    table = pd.DataFrame(rows)
    table["clip"] = pd.factorize(table["source"])[0]
    for col in ("fold", "manually_verified"):
        table[col] = table[col].astype("Int64")
    classes = [f"class{c}" for c in range(n_classes)]
    targets = np.zeros((len(table), n_classes), np.float32)
    targets[np.arange(len(table)), [int(labs[0][5:]) for labs in table["labels"]]] = 1
    return ImageSet(Path("."), SpectrogramConfig(), table, [], classes, targets, False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valid_pct_split_keeps_each_recording_on_one_side(seed):
    ds = image_set()
    sel = select(ds, valid_pct=0.25, seed=seed)
    side = pd.Series("train", index=ds.table.index)
    side.iloc[sel.valid] = "valid"
    per_group = ds.table.assign(side=side).groupby("group")["side"].nunique()
    assert (per_group == 1).all(), list(per_group[per_group > 1].index)  # no recording leaks
    assert len(sel.train) + len(sel.valid) == len(ds.table)
    # about a quarter of the recordings, with every class validated
    n_valid_groups = ds.table.iloc[sel.valid]["group"].nunique()
    assert 4 <= n_valid_groups <= 8
    assert set(ds.table.iloc[sel.valid]["labels"].str[0]) == set(ds.classes)


def test_images_follow_their_clip_and_clips_their_recording():
    ds = image_set(recordings=5, clips_per_recording=4, images_per_clip=3)
    sel = select(ds, valid_pct=0.2, seed=0)
    valid_clips = set(ds.table.iloc[sel.valid]["clip"])
    train_clips = set(ds.table.iloc[sel.train]["clip"])
    assert not valid_clips & train_clips
    valid_groups = set(ds.table.iloc[sel.valid]["group"])
    assert not valid_groups & set(ds.table.iloc[sel.train]["group"])
    # every clip of a validation recording is in validation (4 clips x 3 images each)
    assert len(sel.valid) == len(valid_groups) * 4 * 3
