"""Scores that do not peek: every choice made from data is made on an inner split of the training
part (or fixed), never on the validation clips that are then scored; cv never scores a class it
cannot validate without leakage, and warns about predefined folds that cannot be scored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from classify.training import cv as cvmod
from classify.data import splits
from classify.cli import main
from classify.config import AugmentConfig, TrainConfig, auto_crop_seconds
from classify.data.imageset import load_image_set
from imageset import make_image_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEAD = ["--arch", "resnet18", "--no-pretrained", "--head-only", "--bs", "8", "-q"]
TINY = ["--arch", "resnet18", "--no-pretrained", "--bs", "8", "-q"]


def _image_ids(ds, images_column) -> set[int]:
    index = {im: i for i, im in enumerate(ds.table["image"])}
    return {index[im] for im in images_column}


# ------------------------------------------------------------------ inner split (pure)
def test_inner_selection_is_a_grouped_stratified_part_of_the_training_images():
    rng = np.random.default_rng(0)
    n_clips = 60
    strata = np.repeat(["a", "b", "c"], 20)
    groups = np.array([f"{s}{rng.integers(6)}" for s in strata])
    clip_of_image = np.repeat(np.arange(n_clips), 2)  # two images (tiles) per clip
    train_images = np.flatnonzero(clip_of_image % 5 != 0)  # outer validation: every fifth clip
    tr, va = splits.inner_selection(clip_of_image, strata, groups, train_images, inner_pct=0.2, seed=0)
    assert set(tr) | set(va) == set(train_images) and not set(tr) & set(va)
    assert set(strata[clip_of_image[va]]) == {"a", "b", "c"}  # stratified
    assert not set(groups[clip_of_image[va]]) & set(groups[clip_of_image[tr]])  # grouped
    assert not set(clip_of_image[va]) & set(clip_of_image[tr])  # tiles follow their clip


def test_defaults_are_a_fixed_schedule():
    cfg = TrainConfig(images="x")
    assert cfg.patience == 0 and not cfg.restore_best and not cfg.needs_inner_split
    assert TrainConfig(images="x", patience=3).needs_inner_split
    assert TrainConfig(images="x", restore_best=True).needs_inner_split


@pytest.mark.parametrize("frames, expected", [([20] * 9 + [40], 1.0), ([120] * 10, 1.5), ([500] * 10, 5.0),
                                              ([70] * 80 + [180] * 20, 2.0)])
def test_auto_crop_follows_the_clip_durations(frames, expected):
    # 100 frames a second (sr 32000, hop 320): 90th percentile, up to the next half second, 1..5 s
    assert auto_crop_seconds(frames, 32000, 320) == expected


# ------------------------------------------------------------------ fine-tune decisions (fastai)
@pytest.mark.slow
def test_checkpoint_and_early_stop_never_read_the_scored_clips(tmp_path):
    from fastai.callback.core import Callback
    from fastai.callback.tracker import TrackerCallback

    from classify.training import train

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=8, groups_per_class=4)
    ds = load_image_set(images)
    index = {id(t): i for i, t in enumerate(ds.images)}

    class Reads(Callback):
        """Which images each validation pass (the only thing trackers read) and training saw."""
        order = 99

        def __init__(self):
            self.valid_reads, self.train_reads, self.trackers = [], set(), set()

        def after_validate(self):
            self.valid_reads.append({index[id(t)] for t in self.dls.valid.dataset.images})
            self.trackers |= {type(cb).__name__ for cb in self.learn.cbs if isinstance(cb, TrackerCallback)}

        def before_train(self):
            self.train_reads |= {index[id(t)] for t in self.dls.train.dataset.images}

    rec = Reads()
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=3, freeze_epochs=1,
                      patience=1, restore_best=True, quiet=True, seed=0, valid_pct=0.25)
    m = train.fit(ds, cfg, tmp_path / "run", cbs=[rec])
    scored = _image_ids(ds, pd.read_csv(tmp_path / "run" / "valid_predictions.csv")["image"])
    assert scored and rec.valid_reads
    assert {"EarlyStoppingCallback", "BestCheckpoint"} <= rec.trackers
    for seen in rec.valid_reads:
        assert seen and not seen & scored  # decisions read the inner split only
        assert not seen & rec.train_reads  # ... which is not trained on
    assert not rec.train_reads & scored
    assert m["protocol"]["inner_valid_images"] == len(rec.valid_reads[0])
    assert "inner split" in m["protocol"]["checkpoint"] and "inner split" in m["protocol"]["epochs"]
    assert m["protocol"]["scored_on"].startswith("validation fold")


@pytest.mark.slow
def test_fixed_schedule_scores_the_last_epoch(tmp_path):
    from classify.training import train

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3)
    ds = load_image_set(images)
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=2, freeze_epochs=1,
                      quiet=True, seed=0)
    m = train.fit(ds, cfg, tmp_path / "run")
    assert m["epochs_run"] == 3 and m["protocol"]["checkpoint"] == "last epoch (fixed)"
    assert m["protocol"]["inner_valid_images"] == 0 and "fixed schedule" in m["protocol"]["epochs"]


@pytest.mark.slow
def test_seeded_fine_tune_separates_synthetic_classes(tmp_path):
    from classify.training import train

    images = make_image_set(tmp_path / "img", n_classes=4, per_class=16, groups_per_class=8, seed=3)
    ds = load_image_set(images)
    # the whole fastai path (crops, one-cycle, BatchNorm, evaluation) on tones: seeded, it must
    # separate them. Augmentation off: 12 clips a class and 60 steps leave no room for mixup.
    off = AugmentConfig(time_masks=0, freq_masks=0, roll=False, mixup=0)
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=10, freeze_epochs=0,
                      augment=off, quiet=True, seed=0, valid_pct=0.25)
    m = train.fit(ds, cfg, tmp_path / "run")
    assert m["n_valid_clips"] >= 12 and m["accuracy"] >= 0.9, m["accuracy"]


# ------------------------------------------------------------------ head-only choices
def test_head_only_c_and_threshold_are_chosen_off_the_scored_clips(tmp_path, monkeypatch):
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=8, groups_per_class=4, multi_label=True)
    seen = []
    real = splits.inner_for

    def spy(ds, sel, cfg):
        inner = real(ds, sel, cfg)
        seen.append((set(sel.valid), set(inner.train), set(inner.valid), set(sel.train)))
        return inner

    monkeypatch.setattr(splits, "inner_for", spy)
    out = tmp_path / "run"
    assert main(["fit", str(images), "--out", str(out), *HEAD]) == 0
    # head_c stays fixed by default; the multi-label threshold is chosen on the inner split
    (scored, inner_train, inner_valid, train_part), = seen
    assert inner_valid and not inner_valid & scored and inner_valid | inner_train == train_part
    m = json.loads((out / "metrics.json").read_text())
    assert "inner split" in m["protocol"]["threshold"] and m["protocol"]["head_c"] == "fixed"
    from classify.training import headonly

    seen.clear()
    ds = load_image_set(images)
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, head_only=True, head_c=None,
                      bs=8, quiet=True)
    m = headonly.fit(ds, cfg, tmp_path / "auto")
    assert len(seen) == 1 and not seen[0][2] & seen[0][0]
    assert m["head_c"] in (0.01, 0.1, 1.0, 10.0) and "inner split" in m["protocol"]["head_c"]


# ------------------------------------------------------------------ cv
def test_cv_single_recording_class_trains_in_every_fold_and_is_never_scored(tmp_path, capsys):
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3,
                            single_group_class=True)
    out = tmp_path / "cv"
    assert main(["cv", str(images), "--out", str(out), "--folds", "2", *HEAD[:-1]]) == 0  # not -q: info lines
    text = capsys.readouterr().err
    res = json.loads((out / "cv_metrics.json").read_text())
    assert set(res["folds"]) == {"1", "2"}  # no fold 0 made of the unsplittable class
    assert not (out / "fold_0").exists()
    acc = [res["folds"][k]["accuracy"] for k in ("1", "2")]
    assert res["mean"]["accuracy"] == pytest.approx(np.mean(acc))
    assert res["trained_in_every_fold_never_scored"] == ["class2"]
    oof = pd.read_csv(out / "oof_predictions.csv", keep_default_na=False)
    assert not oof["labels"].str.contains("class2").any()
    ds = load_image_set(images)
    lonely = ds.table["labels"].map(lambda labs: labs == ["class2"]).to_numpy()
    for k in ("1", "2"):  # every image not validated in fold k trained it, the lonely class's too
        m = res["folds"][k]
        assert m["n_train_images"] == len(ds.table) - m["n_valid_images"]
        assert m["n_train_images"] >= lonely.sum()
    assert res["headline"]["value"] == res["oof"]["accuracy"] and "out-of-fold" in res["headline"]["computed_on"]
    assert res["ensemble"] is None and "--holdout-pct" in res["ensemble_note"]
    assert "out-of-fold" in text and "only with --holdout-pct" in text


def test_predefined_fold_missing_a_class_in_training_warns_and_is_scored_without_it(tmp_path, capsys):
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3, folds=2)
    man = pd.read_csv(images / "manifest.csv", keep_default_na=False)
    man.loc[man["labels"] == "class2", "fold"] = 1  # fold 2 (fold 1's training part) has no class2
    man.to_csv(images / "manifest.csv", index=False)
    out = tmp_path / "cv"
    assert main(["cv", str(images), "--out", str(out), "--predefined-folds", *HEAD]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "no training clips" in line]
    assert len(warning) == 1 and "fold 1" in warning[0] and "'class2'" in warning[0]
    res = json.loads((out / "cv_metrics.json").read_text())
    assert res["flagged_folds"] == {"1": {"classes": ["class2"], "unscored_clips": 6}}
    assert res["folds"]["1"]["unscorable_classes"] == ["class2"]
    pred = pd.read_csv(out / "fold_1" / "valid_predictions.csv", keep_default_na=False)
    assert len(pred) and "class2" not in set(pred["labels"])
    assert "2" in res["folds"] and "unscorable_classes" not in res["folds"]["2"]


def test_unscorable_names_only_classes_the_training_part_lacks(tmp_path):
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=4, groups_per_class=2, folds=2)
    ds = load_image_set(images)
    folds = ds.clip_table()["fold"].to_numpy(dtype=int)
    none = np.zeros(len(folds), bool)
    assert cvmod.unscorable(ds, folds, 1, none)[0] == []
    labels = ds.clip_table()["labels"].map(lambda labs: labs[0]).to_numpy()
    folds[labels == "class0"] = 2
    missing, drop = cvmod.unscorable(ds, folds, 2, none)
    assert missing == ["class0"] and drop.sum() == (labels == "class0").sum()


# ------------------------------------------------------------------ the ImageNet route (resnet34)
def _resnet34_in_torch_cache(monkeypatch, tmp_path):
    """A resnet34 state dict (made here) where torchvision looks for its ImageNet weights; no network."""
    import urllib.error

    import torch
    import torchvision

    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*a, **k):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    torch.manual_seed(0)
    ref = torchvision.models.resnet34()
    torch.nn.init.normal_(ref.conv1.weight)
    url = torchvision.models.get_model_weights("resnet34").DEFAULT.url
    path = hub / "checkpoints" / url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)
    return ref


def test_resnet34_imagenet_weights_from_the_torch_cache_with_the_defaults(monkeypatch, tmp_path):
    from classify.runfolder import load_model

    ref = _resnet34_in_torch_cache(monkeypatch, tmp_path)
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3)
    out = tmp_path / "run"
    assert main(["fit", str(images), "--arch", "resnet34", "--out", str(out), "--bs", "8", "-q"]) == 0
    model, info = load_model(out)
    assert info.train.pretrained and info.train.head_only  # 6 clips a class: the head-only default
    # the frozen body is the cached state dict (grey input: first conv summed over RGB)
    assert np.allclose(model.body[0].weight.detach().numpy(), ref.conv1.weight.sum(1, keepdim=True).detach().numpy(),
                       atol=1e-6)
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"]["scored_on"].startswith("validation fold") and m["protocol"]["head_c"] == "fixed"


@pytest.mark.slow
def test_resnet34_imagenet_fine_tune_from_the_torch_cache(monkeypatch, tmp_path):
    _resnet34_in_torch_cache(monkeypatch, tmp_path)
    images = make_image_set(tmp_path / "img", n_classes=3, per_class=6, groups_per_class=3)
    out = tmp_path / "ft"
    assert main(["fit", str(images), "--arch", "resnet34", "--fine-tune", "--out", str(out), "--bs", "8",
                 "--epochs", "1", "--freeze-epochs", "1", "-q"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert not m.get("head_only") and 1 <= m["epochs_run"] <= 2
    assert m["protocol"]["scored_on"].startswith("validation fold") and m["n_valid_clips"] > 0


# ------------------------------------------------------------------ probe or fine-tune (classify.training.mode)
def _probs(right: np.ndarray, targets: np.ndarray, conf: float = 0.8) -> np.ndarray:
    """Two-class probabilities that put ``conf`` on the true class where ``right``, else on the other."""
    pred = np.where(right, targets.argmax(1), 1 - targets.argmax(1))
    return np.eye(2)[pred] * (2 * conf - 1) + (1 - conf)


def test_mode_decision_keeps_the_probe_unless_a_challenger_beats_it_significantly():
    from classify.training.mode import decide, paired_wins

    n = 40
    targets = np.eye(2)[np.arange(n) % 2]
    clip, ids = np.arange(n), np.arange(n)
    probe_right = np.arange(n) >= 10                       # 30 of 40
    # the fine-tune gets all 10 the probe misses and loses none: 10 wins, p = 0.5 ** 10
    d = decide({"head-only": _probs(probe_right, targets), "fine-tune": _probs(np.ones(n, bool), targets)},
               targets, clip, multi_label=False, images=ids)
    assert d["mode"] == "fine-tune" and d["inner_scores"]["fine-tune"] == 1.0 and d["inner_scores"]["head-only"] == 0.75
    assert d["against_probe"]["fine-tune"] == {"wins": 10, "losses": 0, "p": pytest.approx(0.5 ** 10)}
    # a higher score on a few clips is noise: 3 wins, 1 loss (p = 5/16) keeps the probe
    ft_right = probe_right.copy()
    ft_right[:3], ft_right[20] = True, False
    d = decide({"head-only": _probs(probe_right, targets), "fine-tune": _probs(ft_right, targets)},
               targets, clip, multi_label=False, images=ids)
    assert d["inner_scores"]["fine-tune"] > d["inner_scores"]["head-only"] and d["mode"] == "head-only"
    assert d["against_probe"]["fine-tune"]["p"] == pytest.approx(5 / 16)
    # equal scores: the probe
    d = decide({"head-only": _probs(probe_right, targets), "fine-tune": _probs(probe_right, targets)},
               targets, clip, multi_label=False, images=ids)
    assert d["mode"] == "head-only" and not d["average_best"]
    # each mode unsure where the other is sure: the average gets every clip, each alone 20 of 40
    half = np.arange(n) < 20
    probe = np.where(half[:, None], _probs(np.ones(n, bool), targets, 0.9), _probs(np.zeros(n, bool), targets, 0.55))
    fine = np.where(half[:, None], _probs(np.zeros(n, bool), targets, 0.55), _probs(np.ones(n, bool), targets, 0.9))
    d = decide({"head-only": probe, "fine-tune": fine}, targets, clip, multi_label=False, images=ids)
    assert d["inner_scores"] == {"head-only": 0.5, "fine-tune": 0.5, "average": 1.0}
    assert d["mode"] == "average" and d["average_best"]
    # both qualify: an average only as good as the fine-tune is not kept (one network is cheaper)
    d = decide({"head-only": _probs(probe_right, targets), "fine-tune": _probs(np.ones(n, bool), targets, 0.9)},
               targets, clip, multi_label=False, images=ids)
    assert d["inner_scores"]["average"] == d["inner_scores"]["fine-tune"] == 1.0 and d["mode"] == "fine-tune"
    # multi-label: a clip is won by the lower loss; lwlrap ties (both rank every positive first), the
    # fine-tune's surer probabilities win every clip on loss but not the headline: the probe stays
    ml_t = np.eye(3)[np.arange(n) % 3]
    sure, unsure = ml_t * 0.8 + 0.1, ml_t * 0.4 + 0.3
    d = decide({"head-only": unsure, "fine-tune": sure}, ml_t, clip, multi_label=True, images=ids)
    assert d["metric"] == "lwlrap" and d["against_probe"]["fine-tune"]["wins"] == n and d["mode"] == "head-only"
    # the sign test itself: wins where the first is better and the second not
    assert paired_wins(np.array([1, 1, 0, 1], bool), np.array([0, 1, 1, 1], bool))[:2] == (1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("keep", ["head-only", "fine-tune", "average"])
def test_mode_choice_reads_only_inner_split_clips(tmp_path, monkeypatch, keep):
    from classify.training import headonly, mode, train

    images = make_image_set(tmp_path / "img", n_classes=3, per_class=8, groups_per_class=4)
    ds = load_image_set(images)
    clip_of = ds.table["clip"].to_numpy()
    read, fits = [], []
    real_decide = mode.decide

    def spy_decide(probs, targets, clip, *, multi_label, images):
        read.append({int(i) for i in images})
        return {**real_decide(probs, targets, clip, multi_label=multi_label, images=images), "mode": keep}

    def spy(fn):
        def wrapped(ds_, cfg, run_dir, *, clip_valid=None, exclude=None, **kw):
            fits.append((fn.__module__, clip_valid, exclude))
            return fn(ds_, cfg, run_dir, clip_valid=clip_valid, exclude=exclude, **kw)
        return wrapped

    monkeypatch.setattr(mode, "decide", spy_decide)
    monkeypatch.setattr(train, "fit", spy(train.fit))
    monkeypatch.setattr(headonly, "fit", spy(headonly.fit))
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, bs=8, epochs=1, freeze_epochs=1,
                      quiet=True, seed=0, valid_pct=0.25)
    m = mode.fit(ds, cfg, tmp_path / "run")
    scored = _image_ids(ds, pd.read_csv(tmp_path / "run" / "valid_predictions.csv")["image"])
    scored_clips = set(clip_of[list(scored)])
    assert len(read) == 1 and read[0] and not read[0] & scored  # the decision read inner clips only
    assert read[0] == set(m["mode_choice"]["inner_images"])
    inner_fits = fits[:2]  # the probe and the fine-tune scored on the inner split
    assert {f[0].rsplit(".", 1)[1] for f in inner_fits} == {"headonly", "train"}
    for _, clip_valid, exclude in inner_fits:
        assert set(np.flatnonzero(clip_valid & ~exclude)) == set(clip_of[list(read[0])])
        trained = set(np.flatnonzero(~clip_valid & ~exclude))
        assert trained and not trained & scored_clips and not trained & set(clip_of[list(read[0])])
    assert m["mode"] == m["mode_choice"]["mode"] == keep
    model_json = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model_json["head"] == ("linear" if keep == "head-only" else "pool")
    assert (model_json.get("probe") or {}).get("head") == ("linear" if keep == "average" else None)
    assert set(m["mode_choice"]["inner_scores"]) == {"head-only", "fine-tune", "average"}
    assert m["protocol"]["scored_on"].startswith("validation fold")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["mode_choice"]["mode"] == m["mode"]
    assert not (tmp_path / "run" / mode.WORK).exists()
