"""Suspect labels (confident learning): a set with a known share of flipped labels.

The features stand in for a frozen backbone's embeddings (what ``--head-only`` fits on): one
Gaussian cluster per class. The out-of-fold probabilities come from the same kind of model
``classify fit --head-only`` uses (standardise + logistic regression), fit fold by fold on the
noisy labels, exactly as ``classify cv`` produces them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from classify.scoring.suspects import (SUSPECTS_NAME, class_thresholds, clip_probabilities, find_suspects,
                               suspect_table, write_suspect_labels)


def noisy_set(*, n_classes=6, per_class=60, dim=16, flip_share=0.1, spread=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (n_classes, dim))
    y = np.repeat(np.arange(n_classes), per_class)
    x = centres[y] + rng.normal(0, 1.0, (len(y), dim))
    flipped = rng.choice(len(y), int(round(flip_share * len(y))), replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return x, y, noisy, np.sort(flipped)


def oof_probs(x, labels, seed=0):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, labels, cv=folds, method="predict_proba")


@pytest.mark.parametrize("seed,flip_share", [(0, 0.1), (1, 0.2), (4, 0.15)])
def test_flipped_labels_dominate_the_top(seed, flip_share):
    x, clean, noisy, flipped = noisy_set(flip_share=flip_share, seed=seed)
    probs = oof_probs(x, noisy, seed=seed)
    found = find_suspects(probs, noisy)
    k = len(flipped)
    top = found.rows[:k]
    precision = np.isin(top, flipped).sum() / k  # precision at the number flipped (a short list counts as misses)
    assert precision >= 0.85, (precision, k)
    # the list is not padded with clean clips, and the suggestions of hits give the real class back
    assert len(found.rows) <= 1.1 * k
    hit = np.isin(top, flipped)
    assert (found.suggested[:k][hit] == clean[top[hit]]).mean() >= 0.9
    # ranked by margin, worst first; every suspect's suggestion differs from its given label
    assert np.all(np.diff(found.score) <= 0)
    assert np.all(found.suggested != noisy[found.rows])


def test_clean_labels_give_few_suspects():
    x, clean, _, _ = noisy_set(flip_share=0.0, seed=3)
    found = find_suspects(oof_probs(x, clean), clean)
    assert len(found.rows) <= 0.03 * len(clean)


def test_thresholds_rule_by_hand():
    probs = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    given = np.array([0, 0, 1, 1])
    t = class_thresholds(probs, given)
    assert t[0] == pytest.approx(0.8) and t[1] == pytest.approx(0.6) and np.isnan(t[2])
    found = find_suspects(probs, given)
    # row 3 (labelled 1): p0=0.6 < t0=0.8 and p1=0.4 < t1: not confidently anything -> not suspect
    # row 1 (labelled 0): p0=0.7 < 0.8, p1=0.3 < 0.6 -> not suspect; nothing else is
    assert found.rows.tolist() == []
    probs[3] = [0.85, 0.15, 0.0]  # now row 3 confidently looks like class 0
    found = find_suspects(probs, given)
    assert found.rows.tolist() == [3] and found.suggested.tolist() == [0]
    assert found.score[0] == pytest.approx(0.85 - 0.15)


def test_table_averages_windows_and_writes_csv(tmp_path):
    classes = ["dog", "cat$x^$", "a,b"]
    rows = []
    # clip "b.wav" labelled dog but its two windows look like cat; the rest are consistent
    for src, lab, p in [("a.wav", "dog", [0.9, 0.05, 0.05]), ("b.wav", "dog", [0.2, 0.7, 0.1]),
                        ("b.wav", "dog", [0.1, 0.8, 0.1]), ("c.wav", "cat$x^$", [0.25, 0.7, 0.05]),
                        ("d.wav", "a,b", [0.05, 0.05, 0.9]), ("e.wav", "dog", [0.8, 0.1, 0.1])]:
        rows.append({"source": src, "labels": lab, **{f"p_{c}": v for c, v in zip(classes, p)}})
    preds = pd.DataFrame(rows)
    clips, probs = clip_probabilities(preds, classes)
    assert clips["source"].tolist() == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    assert probs[1].tolist() == pytest.approx([0.15, 0.75, 0.1])
    table = suspect_table(preds, classes)
    assert table["file"].tolist() == ["b.wav"]
    assert table.loc[0, "suggested"] == "cat$x^$" and table.loc[0, "given"] == "dog"
    path = write_suspect_labels(tmp_path, preds, classes)
    assert path == tmp_path / SUSPECTS_NAME
    back = pd.read_csv(path, keep_default_na=False)
    assert list(back.columns) == ["file", "given", "suggested", "score"]
    assert back.loc[0, "suggested"] == "cat$x^$" and back.loc[0, "score"] == pytest.approx(0.6)
    assert write_suspect_labels(tmp_path / "m", preds, classes, multi_label=True) is None


# ------------------------------------------------------------------ --relabel / --drop and classify cv
def _edits(tmp_path, rows, name):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["file", "given", "suggested", "score"]).to_csv(path, index=False)
    return path


def test_relabel_and_drop_when_loading(tmp_path):
    from imageset import make_image_set

    from classify.data.imageset import load_image_set
    from classify.errors import ClassifyError

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=4)
    relabel = _edits(tmp_path, [("class0/class0_000.wav", "class0", "class2", 0.9),
                                ("class0/class0_001.wav", "class0", "", 0.5)], "relabel.csv")
    drop = _edits(tmp_path, [("class1/class1_003.wav", "class1", "class0", 0.7)], "drop.csv")
    ds = load_image_set(images, relabel=relabel, drop=drop)
    by_source = dict(zip(ds.table["source"], ds.table["labels"]))
    assert by_source["class0/class0_000.wav"] == ["class2"]
    assert by_source["class0/class0_001.wav"] == ["class0"]  # empty suggestion: unchanged
    assert "class1/class1_003.wav" not in by_source and len(ds.table) == 11
    row = ds.table.index[ds.table["source"] == "class0/class0_000.wav"][0]
    assert ds.classes[int(ds.targets[row].argmax())] == "class2"
    bad = _edits(tmp_path, [("nope.wav", "a", "b", 1.0)], "bad.csv")
    with pytest.raises(ClassifyError, match="nope.wav"):
        load_image_set(images, drop=bad)
    (tmp_path / "cols.csv").write_text("name,label\nx,y\n")
    with pytest.raises(ClassifyError, match="needs a column 'file'"):
        load_image_set(images, relabel=tmp_path / "cols.csv")


@pytest.mark.slow
def test_cv_writes_suspects_and_records_edits(tmp_path):
    """classify cv --head-only on tones with flipped labels: the flipped clips top suspect_labels.csv;
    fit --drop of that CSV is recorded in train.json."""
    import json

    from imageset import make_image_set

    from classify.cli import main

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=12, groups_per_class=12)
    flips = [("class0/class0_000.wav", "class1"), ("class1/class1_005.wav", "class2"),
             ("class2/class2_007.wav", "class0")]
    wrong = _edits(tmp_path, [(f, "", s, 0) for f, s in flips], "wrong.csv")
    run = tmp_path / "cv"
    common = ["--arch", "resnet18", "--no-pretrained", "--head-only", "--crop-seconds", "full", "-q"]
    assert main(["cv", str(images), "--out", str(run), "--folds", "4", "--relabel", str(wrong), *common]) == 0
    table = pd.read_csv(run / "suspect_labels.csv", keep_default_na=False)
    assert list(table.columns) == ["file", "given", "suggested", "score"]
    top = table["file"].head(len(flips)).tolist()
    assert len(set(top) & {f for f, _ in flips}) >= 2, table.head(6)
    train = json.loads((run / "fold_1" / "train.json").read_text())
    assert train["relabel"] == str(wrong)
    fit_dir = tmp_path / "fit"
    assert main(["fit", str(images), "--out", str(fit_dir), "--drop", str(run / "suspect_labels.csv"), *common]) == 0
    train = json.loads((fit_dir / "train.json").read_text())
    assert train["drop"] == str(run / "suspect_labels.csv")


def test_log_counts_unverified_suspects(tmp_path, caplog):
    import logging

    classes = ["dog", "cat"]
    rows = [{"source": f"{k}.wav", "labels": lab, "p_dog": p, "p_cat": 1 - p}
            for k, (lab, p) in enumerate([("dog", 0.9), ("dog", 0.8), ("dog", 0.1), ("cat", 0.1), ("cat", 0.2),
                                          ("cat", 0.95)])]
    with caplog.at_level(logging.INFO, logger="classify.scoring.suspects"):
        write_suspect_labels(tmp_path, pd.DataFrame(rows), classes,
                             verified={"2.wav": 0, "5.wav": 1, "0.wav": pd.NA})
    assert "2 of 6 clips have a suspect label" in caplog.text and "(1 of them not manually verified)" in caplog.text
