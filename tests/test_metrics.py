"""classify.scoring.metrics against hand-worked values and a brute-force oracle."""

from __future__ import annotations

import numpy as np
import pytest

from classify.scoring import metrics


def lwlrap_oracle(truth: np.ndarray, scores: np.ndarray) -> float:
    """The Freesound 2019 definition, pair by pair: for every (clip, true label), the fraction of
    the labels scored at least as high that are true; the mean over all such pairs."""
    precisions = []
    for t, s in zip(truth.astype(bool), scores):
        for label in np.flatnonzero(t):
            above = s >= s[label]
            precisions.append(t[above].sum() / above.sum())
    return float(np.mean(precisions))


def test_lwlrap_weights_each_true_label_equally():
    # class 0 is on 3 clips, class 1 on 1 clip: per class 2/3 and 1; the label-weighted mean is
    # (3 * 2/3 + 1 * 1) / 4 = 3/4, the unweighted class mean would be 5/6
    truth = np.array([[1, 0], [1, 1], [1, 0]], bool)
    scores = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.6]])
    assert metrics.lwlrap_per_class(truth, scores).tolist() == pytest.approx([2 / 3, 1])
    assert metrics.lwlrap(truth, scores) == pytest.approx(3 / 4)


@pytest.mark.parametrize("seed", range(5))
def test_lwlrap_matches_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((40, 6)) < rng.random(6) * 0.6  # classes of very different support
    truth[np.arange(40), rng.integers(0, 6, 40)] = True  # every clip has a label
    scores = rng.random((40, 6)) + 0.8 * truth  # informative but imperfect
    assert metrics.lwlrap(truth, scores) == pytest.approx(lwlrap_oracle(truth, scores), abs=1e-12)


def test_lwlrap_perfect_and_reversed_rankings():
    truth = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]], bool)
    assert metrics.lwlrap(truth, truth + 0.0) == pytest.approx(1.0)
    # reversed: clip 1 label 0 at rank 3 -> 1/3; clip 2 labels at ranks 2, 3 -> 1/2, 2/3; clip 3 -> 1/3
    assert metrics.lwlrap(truth, 1.0 - truth + np.array([0.0, 0.01, 0.02])) == pytest.approx(
        (1 / 3 + 1 / 2 + 2 / 3 + 1 / 3) / 4)
    assert np.isnan(metrics.lwlrap(np.zeros((2, 3), bool), np.ones((2, 3))))


def test_macro_f1_and_confusion_exact():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    probs = np.eye(3)[pred]
    # class 0: P 1/2 R 1/2 F 1/2; class 1: P 2/3 R 1 F 4/5; class 2: F 0
    assert metrics.macro_f1(probs, y) == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)
    assert metrics.confusion(y, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    prf = metrics.per_class_prf(y, pred, 3)
    assert prf["precision"].tolist() == pytest.approx([1 / 2, 2 / 3, 0])
    assert prf["support"].tolist() == [2, 2, 1]


def test_class_counts_counts_every_label_of_a_clip():
    counts = metrics.class_counts([["a"], ["a", "b"], [], ["c", "a"]], ["a", "b", "c", "d"])
    assert counts.to_dict() == {"a": 3, "b": 1, "c": 1, "d": 0}
    assert list(counts.index[:1]) == ["a"]
