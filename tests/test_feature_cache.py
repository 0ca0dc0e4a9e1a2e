"""The frozen-feature cache: reused across folds and runs, invalidated by the image, the weights
and the window; ``classify cv --head-only`` runs the network over each image once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from classify.data.imageset import load_image_set
from classify.models.archs import get_arch
from classify.models.classifier import build_model
from classify.training import featurecache
from imageset import make_image_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def computed(monkeypatch):
    """Every call of the one function that runs the network: the number of images it was given."""
    calls = []
    real = featurecache._compute

    def counting(model, images, **kw):
        calls.append(len(images))
        return real(model, images, **kw)

    monkeypatch.setattr(featurecache, "_compute", counting)
    return calls


def _model(ds, seed=0):
    torch.manual_seed(seed)
    return build_model(get_arch("resnet18"), n_classes=len(ds.classes), in_channels=ds.cfg.channels,
                       pretrained=False, head="linear", arch="resnet18").eval()


def test_cache_reuses_features_and_is_invalidated_by_image_weights_and_window(tmp_path, computed):
    ds = load_image_set(make_image_set(tmp_path / "img", n_classes=2, per_class=3, groups_per_class=3))
    idx = np.arange(len(ds.images))
    model = _model(ds)
    X, owner = featurecache.cached_window_features(model, ds, idx, width=24, bs=4)
    assert computed == [len(idx)] and (tmp_path / "img" / ".features").is_dir()

    X2, owner2 = featurecache.cached_window_features(model, ds, idx, width=24, bs=4)  # a second run
    assert computed == [len(idx)]
    np.testing.assert_allclose(X2, X, rtol=1e-6)  # stored float32
    assert (owner2 == owner).all()

    featurecache.cached_window_features(model, ds, idx, width=16, bs=4)  # another window
    assert computed[-1] == len(idx)

    with torch.no_grad():  # other weights (same arch, same file names): a different key
        next(model.body.parameters()).add_(0.01)
    featurecache.cached_window_features(model, ds, idx, width=24, bs=4)
    assert computed[-1] == len(idx)

    changed = ds.images[0].clone()
    changed[..., 0] ^= 1
    ds2 = dataclasses.replace(ds, images=[changed] + ds.images[1:])
    featurecache.cached_window_features(model, ds2, idx, width=24, bs=4)
    assert computed[-1] == 1  # only the image that changed
    assert len(computed) == 4  # first run, window, weights, image


def test_cache_folder_falls_back_to_the_user_cache_and_can_be_turned_off(tmp_path, monkeypatch):
    images = tmp_path / "img"
    images.mkdir()
    monkeypatch.delenv(featurecache.ENV, raising=False)
    assert featurecache.cache_root(images) == images / ".features"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    real = featurecache._writable
    monkeypatch.setattr(featurecache, "_writable", lambda p: not str(p).startswith(str(images)) and real(p))
    assert featurecache.cache_root(images) == tmp_path / "user" / "classify" / "features"
    monkeypatch.setenv(featurecache.ENV, "off")
    assert featurecache.cache_root(images) is None
    monkeypatch.setenv(featurecache.ENV, str(tmp_path / "elsewhere"))
    assert featurecache.cache_root(images) == tmp_path / "elsewhere"


def test_cv_head_only_runs_the_network_over_each_image_once(tmp_path, computed, monkeypatch):
    from classify import commands
    from classify.config import TrainConfig
    from classify.models import classifier
    from classify.training.cv import CVConfig

    def no_second_pass(*a, **k):
        raise AssertionError("head-only scores the validation images from the cached features")

    monkeypatch.setattr(classifier, "predict_windows", no_second_pass)
    monkeypatch.setattr(commands, "build_report_quietly", lambda run_dir: None)
    images = make_image_set(tmp_path / "img", n_classes=2, per_class=10, groups_per_class=5)
    n = len(load_image_set(images).images)
    train = TrainConfig(images=str(images), out=str(tmp_path / "cv"), arch="resnet18", pretrained=False,
                        head_only=True, bs=8, quiet=True, seed=0)
    out = commands.cv(CVConfig(train=train, folds=5))
    assert sorted(p.name for p in out.glob("fold_*")) == [f"fold_{k}" for k in range(1, 6)]
    assert computed == [n]  # one feature pass for five folds

    commands.cv(CVConfig(train=train.replace(out=str(tmp_path / "cv2")), folds=5))
    assert computed == [n]  # and none for a second run on the same images
