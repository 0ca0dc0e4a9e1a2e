import numpy as np
import pytest

from classify.data import splits
from classify.errors import ClassifyError


def _clips(n_classes=5, per_class=12, groups_per_class=4, seed=0):
    rng = np.random.default_rng(seed)
    strata = np.repeat([f"c{k}" for k in range(n_classes)], per_class)
    groups = np.array([f"{s}_g{rng.integers(groups_per_class)}" for s in strata])
    return strata, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valid_pct_split_never_leaks_a_recording(seed):
    strata, groups = _clips(seed=seed)
    split = splits.valid_pct_split(strata, groups, valid_pct=0.25, seed=seed)
    assert splits.leaked_groups(split.valid, groups) == []
    assert 0.1 < split.valid.mean() < 0.45
    assert set(strata[split.valid]) == set(strata)  # stratified: every class validated


def test_group_kfold_every_clip_once_and_groups_whole():
    strata, groups = _clips()
    folds = splits.group_kfold(strata, groups, n_splits=4, seed=0)
    assert set(folds) == {0, 1, 2, 3}
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1


def test_single_recording_class_is_trained_not_validated():
    strata, groups = _clips()
    groups[strata == "c4"] = "one_recording"
    split = splits.valid_pct_split(strata, groups, valid_pct=0.25)
    assert split.unvalidated == ("c4",)
    assert not split.valid[strata == "c4"].any()
    assert splits.leaked_groups(split.valid, groups) == []


def test_too_few_recordings_is_a_clear_error():
    with pytest.raises(ClassifyError, match="distinct recordings"):
        splits.group_kfold(np.array(["a", "a", "b", "b"]), np.array(["x", "x", "y", "y"]), n_splits=3)


def test_fold_split_names_the_folds_present():
    with pytest.raises(ClassifyError, match="folds present: 1, 2"):
        splits.fold_split(np.array([1, 2, 1, 2.0]), 5)


def test_unverified_valid_clips_move_to_train_only_without_leak():
    valid = np.array([True, True, True, False])
    verified = np.array([True, False, False, True])
    groups = np.array(["a", "a", "b", "c"])
    v, t = splits.restrict_valid_to_verified(valid, verified, groups)
    assert v.tolist() == [True, False, False, False]
    # clip 1 shares recording "a" with a validation clip: dropped; clip 2 ("b") moves to train
    assert t.tolist() == [False, False, True, True]


def test_classes_smaller_than_the_folds_are_a_clear_error_not_a_crash():
    # 3 classes x 4 clips, each clip its own recording: 5 stratified folds cannot be made
    strata = np.repeat(["a", "b", "c"], 4)
    groups = np.array([f"r{i}" for i in range(12)])
    with pytest.raises(ClassifyError, match="fewer than 5 clips .* use 4 folds or fewer"):
        splits.group_kfold(strata, groups, n_splits=5)


def test_valid_pct_split_of_a_tiny_set_uses_fewer_larger_folds():
    strata = np.repeat(["a", "b", "c"], 3)  # 3 clips a class: the default 20% would ask for 5 folds
    groups = np.array([f"r{i}" for i in range(9)])
    split = splits.valid_pct_split(strata, groups, valid_pct=0.2, seed=0)
    assert set(strata[split.valid]) == {"a", "b", "c"}
    assert splits.leaked_groups(split.valid, groups) == []
