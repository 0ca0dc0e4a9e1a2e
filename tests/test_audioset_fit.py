"""``--arch efficientat_mn04`` in fit / cv (fine-tuning and ``--head-only``) on tiny synthetic data.

Mechanics run everywhere on a randomly initialised EfficientAT MobileNet (``--no-pretrained``);
the AudioSet weights are used only by the ``realdata`` test and the weights are never downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from classify.errors import ClassifyError
import torch

from classify.models import archs
from classify.models.backbones import weights as W
from classify.models.backbones.efficientat import FlipFrequency
from classify.cli import main
from classify.config import TrainConfig
from classify.data.imageset import load_image_set, select
from classify.training.headonly import fit_logistic, probabilities
from classify.models.classifier import FINE_TUNE_BN_MOMENTUM, LinearHead, build_model, predict_windows
from classify.runfolder import load_model
from conftest import SHARED_WEIGHTS, require
from imageset import make_image_set
from spec2img.config import from_preset
from spec2img.image import unrender

CHECKPOINT = SHARED_WEIGHTS / "efficientat" / "mn04_as_mAP_432.pt"
RANDOM = ["--arch", "efficientat_mn04", "--no-pretrained", "--bs", "4", "-q"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")




@pytest.fixture(scope="module")
def eat_images(tmp_path_factory):
    """3 classes x 6 one-second tone clips rendered with the efficientat preset (128 x 101)."""
    return make_image_set(tmp_path_factory.mktemp("eat"), n_classes=3, per_class=6, groups_per_class=3,
                          **from_preset("efficientat").to_dict())


def assert_run_predicts_its_csv(run_dir, images_dir):
    """load_model on the run folder reproduces valid_predictions.csv."""
    model, info = load_model(run_dir)
    pred = pd.read_csv(run_dir / "valid_predictions.csv", keep_default_na=False)
    ds = load_image_set(images_dir)
    index = {im: i for i, im in enumerate(ds.table["image"])}
    probs, emb = predict_windows(model, [ds.images[index[im]] for im in pred["image"]],
                                 width=info.model.crop_width, multi_label=info.model.multi_label)
    assert np.allclose(probs.numpy(), pred[[f"p_{c}" for c in info.classes]].to_numpy(), atol=1e-4)
    assert np.allclose(emb.numpy(), np.load(run_dir / "valid_embeddings.npy"), atol=1e-4)
    return info


def test_images_reach_the_network_as_efficientat_log_mels(eat_images):
    """[0, 1] pixels -> vmin..vmax -> rows flipped to band order == the decoded log-mel's features."""
    ds = load_image_set(eat_images)
    torch.manual_seed(0)
    model = build_model(archs.get_arch("efficientat_mn04"), n_classes=3, in_channels=1, pretrained=False,
                        value_range=(ds.cfg.vmin, ds.cfg.vmax)).eval()
    assert isinstance(model.body[0], FlipFrequency) and model.mean is None
    bns = [m for m in model.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == FINE_TUNE_BN_MOMENTUM for m in bns)
    img = ds.images[0]
    logmel = unrender(img.numpy().transpose(1, 2, 0)[..., 0], ds.cfg)[0]  # band 0 first, as EfficientAT
    with torch.no_grad():
        ours = model.body(model.prepare(img[None].float() / 255))
        ref = model.body[1](torch.from_numpy(logmel)[None, None].float())
    assert torch.allclose(ours, ref, atol=1e-4)


@pytest.mark.slow
def test_freeze_trains_only_the_head_and_unfreeze_uses_three_rates(eat_images, tmp_path):
    from classify.training.train import make_learner

    ds = load_image_set(eat_images)
    cfg = TrainConfig(images=str(eat_images), arch="efficientat_mn04", pretrained=False, bs=4, quiet=True)
    sel = select(ds, valid_pct=0.34)
    learn, model, _, _ = make_learner(ds, sel, cfg, tmp_path, torch.device("cpu"))
    conv = model.body[1][3].block[0][0].weight  # a convolution deep in the body
    before_conv, before_head = conv.detach().clone(), model.head.fc.weight.detach().clone()
    learn.freeze()
    learn.fit_one_cycle(1, 1e-2)
    assert torch.equal(conv, before_conv) and not torch.equal(model.head.fc.weight, before_head)
    learn.unfreeze()
    learn.fit_one_cycle(1, slice(1e-4, 1e-3))
    assert not torch.equal(conv, before_conv)
    lrs = [h["lr"] for h in learn.opt.hypers]
    assert len(lrs) == 3 and lrs[0] < lrs[1] < lrs[2]


def test_lr_groups_cut_the_body_by_depth_for_a_layer_wise_decay(eat_images, tmp_path):
    from classify.training.train import make_learner

    ds = load_image_set(eat_images)
    cfg = TrainConfig(images=str(eat_images), arch="efficientat_mn04", pretrained=False, bs=4, quiet=True,
                      lr_groups=6)
    learn, model, _, _ = make_learner(ds, select(ds, valid_pct=0.34), cfg, tmp_path, torch.device("cpu"))
    learn.create_opt()
    groups = [{id(p) for p in g} for g in learn.opt.param_lists]
    body = [id(p) for p in model.body.parameters()]
    assert len(groups) == 6 and sorted(map(len, groups[:-1]))[-1] - sorted(map(len, groups[:-1]))[0] <= 1
    at = 0
    for g in groups[:-1]:  # contiguous chunks of the body in depth order, all of it
        assert g == set(body[at:at + len(g)])
        at += len(g)
    assert at == len(body) and groups[-1] == {id(p) for p in model.head.parameters()}
    learn.freeze()
    assert not any(p.requires_grad for p in model.body.parameters() if p.ndim > 1)  # every body group frozen
    assert all(p.requires_grad for p in model.head.parameters())
    learn.unfreeze()
    learn.opt.set_hyper("lr", slice(1e-4, 1e-2))
    lrs = [h["lr"] for h in learn.opt.hypers]
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]  # geometric: the same factor, 100 ** (1 / 5)
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-2)
    assert ratios == pytest.approx([100 ** 0.2] * 5)
    with pytest.raises(ClassifyError, match="lr-groups"):
        TrainConfig(images="x", lr_groups=1)


@pytest.mark.slow
def test_fine_tune_run_folder_loads_and_predicts(eat_images, tmp_path):
    out = tmp_path / "ft"
    assert main(["fit", str(eat_images), "--out", str(out), "--epochs", "1", "--freeze-epochs", "1", *RANDOM]) == 0
    hist = pd.read_csv(out / "history.csv")
    assert list(hist["phase"]) == ["frozen", "unfrozen"]
    info = assert_run_predicts_its_csv(out, eat_images)
    assert info.model.arch == "efficientat_mn04" and info.model.head == "pool"
    assert info.spectrogram.preset == "efficientat"


@pytest.mark.slow
def test_head_only_run_folder_loads_and_predicts(eat_images, tmp_path):
    out = tmp_path / "ho"
    assert main(["fit", str(eat_images), "--out", str(out), "--head-only", *RANDOM]) == 0
    info = assert_run_predicts_its_csv(out, eat_images)
    assert info.model.head == "linear" and info.train.head_only
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == ["train_loss", "valid_loss", "accuracy", "epoch", "phase"]
    assert list(hist["phase"]) == ["head-only"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["head_only"] and metrics["accuracy"] >= 2 / 3  # tones: separable even at random init
    assert np.load(out / "valid_embeddings.npy").shape[1] == 384


@pytest.mark.slow
def test_head_only_multi_label_and_cv(tmp_path):
    imgs = make_image_set(tmp_path / "ml", n_classes=3, per_class=6, groups_per_class=3, multi_label=True,
                          **from_preset("efficientat").to_dict())
    out = tmp_path / "ml_run"
    assert main(["fit", str(imgs), "--out", str(out), "--head-only", *RANDOM]) == 0
    info = assert_run_predicts_its_csv(out, imgs)
    assert info.model.multi_label and 0 < info.model.threshold < 1
    assert main(["cv", str(imgs), "--out", str(tmp_path / "cv"), "--folds", "2", "--head-only", *RANDOM]) == 0
    res = json.loads((tmp_path / "cv" / "cv_metrics.json").read_text())
    assert set(res["folds"]) == {"1", "2"} and "lwlrap" in res["mean"]


def test_folded_logistic_head_is_sklearns(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)) * 3 + 1
    for k in (2, 4):  # binary (sklearn's one coefficient row) and multinomial
        y = rng.integers(0, k, 40)
        Y = np.eye(5)[y]  # class 4 (and 2, 3 when k == 2) never seen: logit -30
        shift, scale, Wt, b = fit_logistic(X, Y, multi_label=False)
        ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y).predict_proba(X)
        ours = probabilities((X - shift) / scale, Wt, b, multi_label=False)
        assert np.allclose(ours[:, :k], ref, atol=1e-6) and (ours[:, k:] < 1e-12).all()
    Y = (rng.random((40, 3)) < 0.5).astype(float)
    Y[:, 2] = 1  # always present
    shift, scale, Wt, b = fit_logistic(X, Y, multi_label=True)
    p = probabilities((X - shift) / scale, Wt, b, multi_label=True)
    assert p.shape == (40, 3) and (p[:, 2] > 0.999).all()
    head = LinearHead(6, 3)
    with torch.no_grad():
        for t, v in ((head.shift, shift), (head.scale, scale), (head.fc.weight, Wt), (head.fc.bias, b)):
            t.copy_(torch.from_numpy(v))
        logits = head(torch.from_numpy(X).float()[:, :, None, None])
    assert np.allclose(torch.sigmoid(logits).numpy(), p, atol=1e-5)


def test_other_spectrograms_are_refused_in_one_line(tiny_images, capsys):
    for extra in ([], ["--head-only"]):
        assert main(["fit", str(tiny_images), "--out", "/nonexistent/never", *RANDOM, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: images made with sr=8000")
        assert err[0].endswith("re-run spec2img with --preset efficientat")


def test_offline_without_weights_is_one_error_line(eat_images, tmp_path, monkeypatch, capsys):
    import classify.models.assets

    monkeypatch.setattr(classify.models.assets, "asset_root", lambda: None)  # an installation without the shipped copy
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    monkeypatch.setattr(W, "URL", "http://127.0.0.1:9/mn04_as_mAP_432.pt")  # nothing listens there
    for extra in ([], ["--head-only"]):
        rc = main(["fit", str(eat_images), "--out", str(tmp_path / "x"), "--arch", "efficientat_mn04", "-q", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1
        assert err[0].startswith("error: EfficientAT weights mn04_as_mAP_432.pt not found") and "--weights FILE" in err[0]
    rc = main(["fit", str(eat_images), "--out", str(tmp_path / "y"), "--arch", "efficientat_mn04", "-q",
               "--weights", str(tmp_path / "nope.pt")])
    assert rc == 2 and "nope.pt: no such file" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
def test_audioset_weights_fine_tune_and_head_only(eat_images, tmp_path):
    """Real AudioSet weights via --weights: head-only separates the tones; a fine-tune run loads."""
    weights = str(require(CHECKPOINT))
    ho = tmp_path / "ho"
    assert main(["fit", str(eat_images), "--out", str(ho), "--arch", "efficientat_mn04", "--weights", weights,
                 "--head-only", "-q"]) == 0
    assert json.loads((ho / "metrics.json").read_text())["accuracy"] == 1.0
    assert_run_predicts_its_csv(ho, eat_images)
    ft = tmp_path / "ft"
    assert main(["fit", str(eat_images), "--out", str(ft), "--arch", "efficientat_mn04", "--weights", weights,
                 "--fine-tune", "--epochs", "1", "--freeze-epochs", "1", "--bs", "4", "-q"]) == 0
    assert_run_predicts_its_csv(ft, eat_images)
    assert json.loads((ft / "model.json").read_text())["head"] == "pool"


def test_freeze_bn_keeps_the_pretrained_running_statistics_while_the_weights_train(eat_images, tmp_path):
    from classify.training.train import make_learner

    ds = load_image_set(eat_images)
    stats = {}
    for frozen in (True, False):
        cfg = TrainConfig(images=str(eat_images), arch="efficientat_mn04", pretrained=False, bs=4, quiet=True,
                          freeze_bn=frozen)
        learn, model, _, _ = make_learner(ds, select(ds, valid_pct=0.34), cfg, tmp_path, torch.device("cpu"))
        bns = [m for m in model.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        before = [(m.running_mean.clone(), m.running_var.clone(), m.weight.detach().clone()) for m in bns]
        learn.unfreeze()
        learn.fit_one_cycle(1, 1e-3)
        kept = all(torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
                   for m, (mean, var, _) in zip(bns, before))
        trained = any(not torch.equal(m.weight, w) for m, (_, _, w) in zip(bns, before))
        stats[frozen] = (kept, trained)
    assert stats[True] == (True, True)   # statistics kept, scale and shift trained
    assert stats[False] == (False, True)  # the default: statistics follow the training batches
