"""The open-set threshold: its pure scoring (AUROC, rates, the choice rule) and the promise that
the out-of-fold calibration never scores a clip with a head fitted on it."""

from __future__ import annotations

import numpy as np
import pytest

from classify.openset_file import OpenSet, read_openset, write_openset
from classify.errors import RunFolderError
from classify.scoring import openset
from classify.training.headonly import fit_logistic, probabilities
from classify.training.openset_fit import calibrate, oof_probabilities


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    known, unknown = rng.integers(0, 10, 40) / 10, rng.integers(0, 7, 30) / 10
    want = roc_auc_score(np.r_[np.ones(40), np.zeros(30)], np.r_[known, unknown])
    assert openset.auroc(known, unknown) == pytest.approx(want)
    assert openset.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0 and openset.auroc([0.1], [0.9]) == 0.0


def test_threshold_rules():
    known = np.linspace(0.5, 1.0, 101)
    t, how = openset.choose_threshold(known)
    assert openset.false_reject_rate(known, t) == pytest.approx(0.05, abs=0.011) and "5%" in how
    background = np.full(20, 0.55)  # background above the 5% quantile: the threshold rises past it
    t2, how2 = openset.choose_threshold(known, background)
    assert 0.55 < t2 < 0.56 and openset.false_accept_rate(background, t2) == 0.0 and "background" in how2
    assert openset.false_reject_rate(known, t2) <= 0.2 + 1e-9
    high = np.full(20, 0.99)  # background like the known classes: capped at 20 % false rejects
    t3, _ = openset.choose_threshold(known, high)
    assert openset.false_reject_rate(known, t3) <= 0.2 + 1e-9 and t3 >= t
    assert openset.choose_threshold(known, np.full(5, 0.1))[0] == t  # low background: the quantile stays


def test_a_handful_of_scores_gets_a_threshold_between_chance_and_the_lowest():
    few = np.array([0.9, 0.95, 0.97, 0.99, 0.99, 1.0])  # 6 taught examples: no 5% quantile to estimate
    t, how = openset.choose_threshold(few, n_classes=2)
    assert t == pytest.approx((0.5 + 0.9) / 2) and "chance" in how
    assert openset.choose_threshold(few)[0] == 0.9  # without the class count: the lowest score, as before
    many = np.linspace(0.5, 1.0, 101)  # enough scores: the quantile rule, class count or not
    assert openset.choose_threshold(many, n_classes=2)[0] == openset.choose_threshold(many)[0]


def test_open_labels():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [np.nan, np.nan]])
    labels, scores = openset.open_labels(probs, ["a", "b"], 0.6)
    assert labels == ["a", "unknown", ""] and scores[0] == pytest.approx(0.9)
    assert openset.open_labels(probs[:2], ["a", "b"], None)[0] == ["a", "a"]


def test_openset_file_round_trip_and_bad_files(tmp_path):
    o = OpenSet(threshold=0.42, method="m", n_known=10, folds=5)
    write_openset(tmp_path, o)
    assert read_openset(tmp_path) == o
    assert read_openset(tmp_path / "none") is None
    (tmp_path / "openset.json").write_text('{"threshold": "high"}')
    with pytest.raises(RunFolderError, match="openset.json"):
        read_openset(tmp_path)
    with pytest.raises(RunFolderError):
        OpenSet(threshold=1.5, method="m")


def test_calibration_never_scores_a_clip_with_a_head_fitted_on_it():
    rng = np.random.default_rng(1)
    n_clips, per = 30, 2
    clip = np.repeat(np.arange(n_clips), per)
    y = clip % 3
    X = rng.normal(size=(len(clip), 8)) + y[:, None]
    Y = np.eye(3)[y]
    X[:, 0] = clip  # feature 0 names the clip: the recorder below reads which clips each fit saw
    fitted_on: list[set] = []
    scored: list[set] = []

    def fit(Xt, Yt, **kw):
        fitted_on.append(set(Xt[:, 0].astype(int)))
        return fit_logistic(Xt, Yt, **kw)

    def proba(Z, W, b, **kw):
        return probabilities(Z, W, b, **kw)

    shift_scale = {}

    def fit_rec(Xt, Yt, **kw):
        out = fit(Xt, Yt, **kw)
        shift_scale["last"] = out
        return out

    def proba_rec(Z, W, b, **kw):  # undo the standardisation to read the clip ids scored
        shift, scale = shift_scale["last"][:2]
        scored.append(set(np.rint(Z[:, 0] * scale[0] + shift[0]).astype(int)))
        return proba(Z, W, b, **kw)

    oof = oof_probabilities(X, Y, clip, clip.astype(str), C=1.0, head=(fit_rec, proba_rec))
    assert oof["folds"] == 5 and len(oof["probs"]) == n_clips
    assert len(fitted_on) == len(scored) == 5
    for f, s in zip(fitted_on, scored):
        assert f.isdisjoint(s) and s
    found = calibrate(X, Y, clip, clip.astype(str), C=1.0, head=(fit_logistic, probabilities))
    assert 0 < found.threshold < 1 and found.n_known == n_clips and found.oof_accuracy > 0.5
