"""Hand-worked checks of the report's computations and of the metrics it shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from classify.scoring import metrics
from classify.report import compute

CLASSES = ["a", "b", "c"]
# 6 items: true a,a,a,b,b,c ; predicted a,b,b,b,a,c
Y = np.array([0, 0, 0, 1, 1, 2])
PRED = np.array([0, 1, 1, 1, 0, 2])
LOSS = np.array([0.1, 2.0, 1.5, 0.2, 3.0, 0.3])


def one_hot_scores(pred, n=3):
    s = np.full((len(pred), n), 0.1)
    s[np.arange(len(pred)), pred] = 0.8
    return s


def test_confusion_counts():
    cm = metrics.confusion(Y, PRED, 3)
    assert cm.tolist() == [[1, 2, 0], [1, 1, 0], [0, 0, 1]]
    assert np.allclose(compute.normalise_rows(cm), [[1 / 3, 2 / 3, 0], [0.5, 0.5, 0], [0, 0, 1]])
    assert compute.normalise_rows(np.zeros((2, 2), int)).tolist() == [[0, 0], [0, 0]]  # empty rows stay 0


def test_most_confused_pairs_order_and_share():
    cm = metrics.confusion(Y, PRED, 3)
    df = compute.most_confused(cm, CLASSES)
    assert list(zip(df["true"], df["pred"], df["count"])) == [("a", "b", 2), ("b", "a", 1)]
    assert df["share"].tolist() == pytest.approx([2 / 3, 0.5])
    assert len(compute.most_confused(cm, CLASSES, min_count=2)) == 1
    assert len(compute.most_confused(cm, CLASSES, top=1)) == 1
    assert compute.most_confused(np.eye(3, dtype=int), CLASSES).empty  # diagonal never listed


def test_cell_items_highest_loss_first_and_capped():
    cells = compute.cell_items(Y, PRED, LOSS, max_per_cell=1)
    assert cells[(0, 1)] == [1]  # rows 1 (loss 2.0) and 2 (1.5): the worse one kept
    cells = compute.cell_items(Y, PRED, LOSS, max_per_cell=5)
    assert cells[(0, 1)] == [1, 2] and cells[(1, 0)] == [4] and cells[(2, 2)] == [5]
    assert sum(len(v) for v in cells.values()) == len(Y)


def test_top_losses():
    assert compute.top_losses(LOSS, 3).tolist() == [4, 1, 2]
    assert compute.top_losses(np.array([1.0, np.nan, 1.0]), 3).tolist() == [0, 2, 1]  # ties by row, NaN last


def test_per_class_precision_recall_f1():
    # a: tp 1, predicted 2 (rows 0,4), support 3 -> P 1/2, R 1/3, F1 0.4
    # b: tp 1, predicted 3 (rows 1,2,3), support 2 -> P 1/3, R 1/2, F1 0.4
    # c: tp 1, predicted 1, support 1 -> 1, 1, 1
    table = compute.per_class_table(CLASSES, one_hot_scores(PRED), np.eye(3, dtype=bool)[Y], Y, PRED, False)
    assert table["precision"].tolist() == pytest.approx([1 / 2, 1 / 3, 1])
    assert table["recall"].tolist() == pytest.approx([1 / 3, 1 / 2, 1])
    assert table["f1"].tolist() == pytest.approx([0.4, 0.4, 1])
    assert table["support"].tolist() == [3, 2, 1]
    assert table["predicted"].tolist() == [2, 3, 1]
    assert table["confused_with"].tolist() == ["b", "a", ""]
    assert metrics.macro_f1(one_hot_scores(PRED), Y) == pytest.approx((0.4 + 0.4 + 1) / 3)


def test_map_at_3_hand_worked():
    probs = np.array([[0.5, 0.3, 0.2, 0.0],   # true 0 ranked 1st -> 1
                      [0.5, 0.3, 0.2, 0.0],   # true 1 ranked 2nd -> 1/2
                      [0.5, 0.3, 0.2, 0.0],   # true 2 ranked 3rd -> 1/3
                      [0.5, 0.3, 0.2, 0.0]])  # true 3 ranked 4th -> 0
    y = np.array([0, 1, 2, 3])
    assert metrics.map_at_k(probs, y, 3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert metrics.top_k_accuracy(probs, y, 3) == pytest.approx(0.75)
    assert metrics.accuracy(probs, y) == pytest.approx(0.25)


def test_lwlrap_hand_worked_and_per_class():
    # clip 1: labels {0, 2}, scores rank 0,1,2 -> label 0 at rank 1: 1/1; label 2 at rank 3: 2/3
    # clip 2: label {1}, scores rank 0,1 -> label 1 at rank 2: 1/2
    truth = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.6, 0.1]])
    assert metrics.lwlrap(truth, scores) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    per = metrics.lwlrap_per_class(truth, scores)
    assert per.tolist() == pytest.approx([1, 1 / 2, 2 / 3])
    support = truth.sum(axis=0)
    assert np.sum(per * support) / support.sum() == pytest.approx(metrics.lwlrap(truth, scores))
    assert np.isnan(metrics.lwlrap_per_class(np.array([[1, 0]], bool), np.array([[0.2, 0.1]]))[1])


def test_multi_label_table_has_ap_and_threshold_metrics():
    truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.8], [0.1, 0.3]])
    table = compute.per_class_table(["x", "y"], scores, truth, np.argmax(truth, 1), np.argmax(scores, 1), True)
    # x: ranking 0.9(T) 0.6(F) 0.4(T) 0.1(F) -> AP = (1/1 + 2/3) / 2
    assert table.loc[0, "ap"] == pytest.approx((1 + 2 / 3) / 2)
    # x at 0.5: predicted rows 0, 2 -> P 1/2, R 1/2
    assert table.loc[0, "precision"] == pytest.approx(0.5) and table.loc[0, "recall"] == pytest.approx(0.5)
    assert table["support"].tolist() == [2, 2]
    h = metrics.headline(scores, truth, multi_label=True)
    assert set(h) == {"lwlrap", "mean_ap", "micro_f1", "accuracy"}
    assert h["mean_ap"] == pytest.approx(np.nanmean(table["ap"]))


def test_fold_spread():
    df = compute.fold_spread([{"accuracy": 0.8, "map3": 0.9}, {"accuracy": 0.6, "map3": 0.7}])
    assert df.loc["accuracy", "mean"] == pytest.approx(0.7)
    assert df.loc["accuracy", "std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert (df["n_folds"] == 2).all()


def test_time_windows():
    assert compute.time_windows(np.array([0.0, 2.5, np.nan]), 5.0) == [(0.0, 5.0), (2.5, 7.5), None]
    assert compute.time_windows(np.array([0.0]), None) == [None]


@pytest.mark.parametrize("n", [1, 3, 5, 12, 40])
def test_tsne_small_sets_deterministic_and_scaled(n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8))
    a = compute.tsne_2d(x, seed=0)
    assert a.shape == (n, 2) and np.all((a >= 0) & (a <= 1))
    assert np.allclose(a, compute.tsne_2d(x, seed=0))
    assert compute.tsne_perplexity(n) < max(n, 3)


def test_class_counts_and_durations():
    counts = compute.class_counts([["a"], ["a", "b"], []], ["a", "b", "c"])
    assert counts.to_dict() == {"a": 2, "b": 1, "c": 0}
    s = compute.duration_summary(pd.Series([1.0, 3.0, None, "x"]))
    assert s["count"] == 2 and s["median"] == 2.0 and s["hours"] == pytest.approx(4 / 3600)
    assert compute.duration_summary(pd.Series([], dtype=float)) == {}


@pytest.mark.parametrize("multi_label", [False, True])
def test_a_missing_loss_column_is_recomputed_as_fit_computes_it(tmp_path, multi_label):
    from classify.report.load import load_run
    from classify.report.synthetic import write_synthetic_run
    from classify.scoring.evaluate import per_item_loss

    run_dir = write_synthetic_run(tmp_path, n_classes=4, n_clips=8, tiles=1, n_audio=0,
                                  multi_label=multi_label)["run"]
    path = run_dir / "valid_predictions.csv"
    pd.read_csv(path, keep_default_na=False).drop(columns="loss").to_csv(path, index=False)
    run = load_run(run_dir)
    want = per_item_loss(run.probs, run.truth.astype(float), multi_label=run.multi_label)
    assert run.multi_label == multi_label and np.allclose(run.loss, want)


def test_mode_choice_line_names_the_inner_scores_and_the_decision():
    from classify.report.sections import mode_choice_text

    c = {"metric": "accuracy", "inner_scores": {"head-only": 0.81, "fine-tune": 0.9, "average": 0.88},
         "mode": "fine-tune", "inner_clips": 40, "kept": "reused"}
    line = mode_choice_text({"mode_choice": c})
    assert "fine-tune (inner accuracy: probe 0.810, fine-tune 0.900, average 0.880 on 40 clips)" in line
    assert "fold 2: fine-tune" in mode_choice_text({"folds": {"2": {"mode_choice": c}}})
    assert mode_choice_text({"accuracy": 0.9}) is None
    avg = {**c, "inner_scores": {**c["inner_scores"], "average": 0.95}, "mode": "average", "kept": "the average of both"}
    line = mode_choice_text({"mode_choice": avg})
    assert ("the average of the probe and the fine-tune (inner accuracy: probe 0.810, fine-tune 0.900, average "
            "0.950 on 40 clips); kept: the average of both.") in line
    tested = {**c, "significance": 0.05, "against_probe": {"fine-tune": {"wins": 6, "losses": 2, "p": 0.1445},
                                                           "average": {"wins": 5, "losses": 0, "p": 0.03125}}}
    line = mode_choice_text({"mode_choice": tested})
    assert ("40 clips; fine-tune against the probe: 6 clips won, 2 lost, p=0.14; average against the probe: "
            "5 clips won, 0 lost, p=0.031, a challenger needs p < 0.05)") in line
