"""``classify fit --distributed 2``: two CPU processes (gloo, loopback) train data-parallel with
fastai's DDP and rank 0 writes one run folder. Compared with one process at the same seed and
global batch size, validation accuracy must agree within ACCURACY_TOLERANCE: the runs cannot be
identical (each process normalises BatchNorm over its half batch, augmentation draws differ), but
on separable synthetic tones both must learn the task."""

from __future__ import annotations

import json

import pytest

from classify.cli import main
from classify.training.distributed import check_config
from classify.config import TrainConfig
from classify.errors import ClassifyError
from imageset import make_image_set

ACCURACY_TOLERANCE = 0.2  # absolute, clip-level validation accuracy (25 validation clips here)
RUN_FILES = {"spectrogram.json", "train.json", "classes.json", "model.json", "model.pt", "metrics.json",
             "history.csv", "valid_predictions.csv", "valid_embeddings.npy", "versions.json"}


@pytest.mark.slow
def test_two_gloo_processes_write_one_run_and_match_one_process(tmp_path):
    images = make_image_set(tmp_path / "images", n_classes=3, per_class=40, groups_per_class=8)
    # 96 training images in steps of 8: enough steps for BatchNorm's running statistics to settle
    common = ["fit", str(images), "--arch", "resnet18", "--cut", "2", "--no-pretrained", "--fine-tune",
              "--bs", "8", "--epochs", "6", "--freeze-epochs", "0", "--lr", "3e-3", "--seed", "0",
              "--no-augment", "-q"]
    runs = tmp_path / "runs"
    assert main([*common, "--out", str(runs / "one")]) == 0
    assert main([*common, "--out", str(runs / "two"), "--distributed", "2"]) == 0
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]  # one folder per run, nothing stray
    two = runs / "two"
    assert RUN_FILES <= {p.name for p in two.iterdir()}
    m1 = json.loads((runs / "one" / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert m2["epochs_run"] == m1["epochs_run"] == 6 and m2["n_valid_clips"] == m1["n_valid_clips"]
    assert m1["accuracy"] > 0.6, m1["accuracy"]  # the single run learned something to compare with
    assert abs(m2["accuracy"] - m1["accuracy"]) <= ACCURACY_TOLERANCE, (m1["accuracy"], m2["accuracy"])
    assert json.loads((two / "train.json").read_text())["bs"] == 8  # the global batch is recorded


@pytest.mark.parametrize("changes, flag", [({"bs": 15}, "--bs 15"), ({"lr": None}, "--lr auto"),
                                           ({"head_only": True}, "--head-only")])
def test_settings_data_parallel_cannot_follow_name_the_flag(changes, flag):
    cfg = TrainConfig(images="x", **{"bs": 16, "lr": 3e-3, **changes})  # valid for 2 processes but for `changes`
    with pytest.raises(ClassifyError, match=flag):
        check_config(cfg, 2)
    with pytest.raises(ClassifyError, match="--distributed 1"):
        check_config(TrainConfig(images="x", bs=16), 1)
