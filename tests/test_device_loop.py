"""The training loop at hardware speed (issue 22): batches cut on the training device, torch's
fused/foreach AdamW behind fastai's optimiser interface, the batch-size rule, and the timing lines.
GPU tests (``gpu``) skip without CUDA."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest
import torch
from torch import nn

from classify.config import TrainConfig
from classify.data.device_data import DeviceBatches, crop_batch, crop_starts
from classify.training import loop
from spec2img.window import crop_offset, take

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def images(seed=0, n=12, widths=(5, 9, 20, 31, 40)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 256, (2, 3, widths[i % len(widths)]), generator=g, dtype=torch.uint8) for i in range(n)]


# ------------------------------------------------------------------------------ device data
def test_crop_batch_is_take_for_every_start_inside_and_outside():
    ims = images()
    db = DeviceBatches(ims, torch.zeros(len(ims), 3), width=16, bs=4, train=True)
    idx = torch.arange(len(ims)).repeat(3)
    g = torch.Generator().manual_seed(1)
    starts = torch.randint(-20, 30, (len(idx),), generator=g)
    got = crop_batch(db.frames, db.offsets, db.widths, idx, starts, 16)
    want = np.stack([take(ims[i].numpy(), start=int(s), size=16) for i, s in zip(idx, starts)])
    assert got.dtype == torch.uint8 and got.shape == (len(idx), 2, 3, 16)
    np.testing.assert_array_equal(got.numpy(), want)


def test_crop_starts_follow_spec2img_crop_rule():
    widths = torch.tensor([5, 16, 17, 40, 3])
    centre = crop_starts(widths, 16, train=False)
    assert centre.tolist() == [crop_offset(int(w), size=16, crop="center") for w in widths]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([crop_starts(widths, 16, train=True, generator=g) for _ in range(400)])
    for j, w in enumerate(widths.tolist()):
        lo, hi = (0, w - 16) if w >= 16 else (-(16 - w), 0)
        seen = set(draws[:, j].tolist())
        assert min(seen) == lo and max(seen) == hi and seen == set(range(lo, hi + 1))  # every start, none outside
    a = crop_starts(widths, 16, train=True, generator=torch.Generator().manual_seed(3))
    b = crop_starts(widths, 16, train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_training_batches_see_each_image_once_a_pass_with_its_target():
    ims = images(n=10)
    y = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)  # target row i holds i
    torch.manual_seed(0)
    db = DeviceBatches(ims, y, width=8, bs=4, train=True, drop_last=False)
    seen = []
    for x, yb in db:
        assert x.shape[1:] == (2, 3, 8)
        for xi, row in zip(x, yb):
            i = int(row[0])
            seen.append(i)
            # the crop is a window of image i (or zeros padded around it)
            w = ims[i].shape[-1]
            ok = any(np.array_equal(xi.numpy(), take(ims[i].numpy(), start=s, size=8)) for s in range(min(0, w - 8), max(0, w - 8) + 1))
            assert ok
    assert sorted(seen) == list(range(10)) and len(db) == 3
    assert len(DeviceBatches(ims, y, width=8, bs=4, train=True, drop_last=True)) == 2
    assert sum(len(x) for x, _ in DeviceBatches(ims, y, width=8, bs=4, train=True, drop_last=True)) == 8


def test_validation_batches_are_the_centre_crops_in_order():
    ims = images(n=7)
    db = DeviceBatches(ims, torch.zeros(7, 2), width=16, bs=3, train=False)
    got = torch.cat([x for x, _ in db])
    want = np.stack([take(im.numpy(), start=crop_offset(im.shape[-1], size=16, crop="center"), size=16) for im in ims])
    np.testing.assert_array_equal(got.numpy(), want)


def test_seeded_passes_repeat():
    ims = images(n=9)
    y = torch.zeros(9, 2)

    def one_pass():
        torch.manual_seed(5)
        return torch.cat([x for x, _ in DeviceBatches(ims, y, width=12, bs=4, train=True)])

    assert torch.equal(one_pass(), one_pass())


# ------------------------------------------------------------------------------ loop choices
def test_gpu_batch_rule_scales_the_learning_rate_and_says_so():
    cfg = TrainConfig(images="x")
    gpu = torch.device("cuda")
    out = loop.batch_for_device(cfg, gpu, n_train=2500)
    assert out.bs == 256 and out.lr == pytest.approx(cfg.lr * (256 / 32) ** 0.5)
    assert "sqrt(256/32)" in out.lr_rule and "2.83" in out.lr_rule
    assert loop.batch_for_device(out, gpu, n_train=2500) == out  # applying it twice changes nothing
    assert loop.batch_for_device(cfg, torch.device("cpu"), n_train=2500) == cfg
    small = loop.batch_for_device(cfg, gpu, n_train=600)  # eight steps an epoch at least
    assert small.bs == 64
    assert loop.batch_for_device(cfg, gpu, n_train=100) == cfg  # never below bs
    assert loop.batch_for_device(cfg.replace(gpu_bs=None), gpu, n_train=2500) == cfg.replace(gpu_bs=None)
    assert loop.batch_for_device(cfg.replace(lr=None), gpu, n_train=2500).lr is None


def test_decay_split_keeps_biases_and_norms_undecayed():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    groups = loop.decay_split([list(net[0].parameters()) + list(net[1].parameters()), list(net[2].parameters())], 0.1)
    assert [len(g["params"]) for g in groups] == [1, 3, 1, 1]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.1, 0.0]


def _groups(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 4), nn.Linear(4, 3))
    return net, [list(net[0].parameters()) + list(net[1].parameters()), list(net[2].parameters()),
                 list(net[3].parameters())]


@pytest.mark.parametrize("kind", ["fused", "foreach"])
def test_torch_adamw_steps_like_fastai_adam_with_discriminative_rates_and_wd(kind):
    from fastai.optimizer import Adam

    from classify.training.train import TorchAdamW

    if kind == "fused" and not loop.fused_supported(torch.device("cpu")):
        pytest.skip("this torch has no fused CPU AdamW")
    net_a, ga = _groups()
    net_b, gb = _groups()
    ref = Adam(ga, lr=1e-3)  # fastai's defaults: mom 0.9, sqr_mom 0.99, eps 1e-5, decoupled wd
    new = TorchAdamW(gb, lr=1e-3, device=torch.device("cpu"), kind=kind)
    for opt, net in ((ref, net_a), (new, net_b)):
        opt.set_hyper("lr", slice(1e-3, 1e-2))  # three rates, spread geometrically
        opt.set_hypers(wd=0.1, mom=0.85)
        assert [round(h["lr"], 6) for h in opt.hypers] == [0.001, 0.003162, 0.01]
    # fastai: biases and norm weights are not decayed (Learner sets do_wd=False for them)
    for p in [net_a[0].bias, net_a[1].weight, net_a[1].bias, net_a[2].bias, net_a[3].bias]:
        ref.state[p]["do_wd"] = False
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for opt, net in ((ref, net_a), (new, net_b)):
            net.train()
            net(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    assert not torch.equal(net_b[0].weight, _groups()[0][0].weight)  # it did move


def test_torch_adamw_freezes_like_fastai():
    from classify.training.train import TorchAdamW

    net, g = _groups()
    opt = TorchAdamW(g, lr=1e-3, device=torch.device("cpu"))
    opt.freeze()  # all but the last group
    assert [p.requires_grad for p in net.parameters()] == [False] * 4 + [False, False] + [True, True]
    opt.unfreeze()
    assert all(p.requires_grad for p in net.parameters())


# ------------------------------------------------------------------------------ the loop itself
def _tiny_learner(device, *, new_loop: bool, seed=0, n=192, bs=16):
    """A small CNN on two separable classes (bright top rows vs bright bottom rows)."""
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.torch_core import set_seed

    from classify.data.imageset import CropDataset
    from classify.training.train import DeviceDL, History, SoftTargetLoss, TorchAdamW

    g = np.random.default_rng(seed)
    ims, targets = [], np.zeros((n, 2), np.float32)
    for i in range(n):
        im = g.integers(0, 80, (1, 16, 24)).astype(np.uint8)
        rows = slice(0, 8) if i % 2 else slice(8, 16)
        im[:, rows] += 120
        ims.append(torch.from_numpy(im))
        targets[i, i % 2] = 1
    set_seed(seed, reproducible=True)
    tr = CropDataset(ims[:160], targets[:160], np.ones(160, np.float32), width=16, train=True)
    va = CropDataset(ims[160:], targets[160:], np.ones(n - 160, np.float32), width=16, train=False)
    if new_loop:
        dls = DataLoaders(DeviceDL(tr, DeviceBatches(tr.images, tr.y, width=16, bs=bs, device=device, train=True,
                                                     drop_last=True), bs=bs, drop_last=True),
                          DeviceDL(va, DeviceBatches(va.images, va.y, width=16, bs=bs, device=device, train=False), bs=bs),
                          device=device)
    else:
        dls = DataLoaders(DataLoader(tr, bs=bs, shuffle=True, drop_last=True), DataLoader(va, bs=bs), device=device)

    class Prep(nn.Module):
        def forward(self, x):
            return x.float() / 255

    net = nn.Sequential(Prep(), nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d((4, 1)), nn.Flatten(), nn.Linear(32, 2)).to(device)
    hist = History(quiet=False, device=device)
    opt = {"opt_func": functools.partial(TorchAdamW, device=device)} if new_loop else {}
    learn = Learner(dls, net, loss_func=SoftTargetLoss(False), cbs=[hist], **opt)
    learn.logger = lambda *a, **k: None
    from fastai.callback.progress import ProgressCallback

    learn.remove_cb(ProgressCallback)
    return learn, hist


def _final_train_loss(learn, epochs=4):
    learn.fit_one_cycle(epochs, 1e-2)
    return float(learn.recorder.values[-1][0]), float(learn.recorder.values[-1][1])


def test_new_loop_trains_a_small_network_to_the_old_loops_loss():
    old_train, old_valid = _final_train_loss(_tiny_learner(torch.device("cpu"), new_loop=False)[0])
    new_train, new_valid = _final_train_loss(_tiny_learner(torch.device("cpu"), new_loop=True)[0])
    assert old_valid < 0.4 and new_valid < 0.4  # both learned (chance: ln 2 = 0.69)
    assert abs(new_train - old_train) < 0.1 and abs(new_valid - old_valid) < 0.1


def test_timing_lines_say_how_long(caplog):
    learn, hist = _tiny_learner(torch.device("cpu"), new_loop=True, n=400, bs=16)  # 15 batches an epoch
    hist.planned, hist.n_valid = 3, 240
    with caplog.at_level(logging.INFO, logger="classify.training.train"):
        learn.fit_one_cycle(3, 1e-2)
    text = caplog.text
    assert "images/s on the first 8 batches; estimated total" in text
    for k in (1, 2, 3):
        assert f"epoch {k}/3 (frozen)" in text
    assert text.count("ETA") == 3 and "images/s, ETA" in text
    assert len(hist.rows) == 3 and len(hist.seconds) == 3 and hist.rate > 0


def test_short_epochs_are_timed_whole(caplog):
    learn, hist = _tiny_learner(torch.device("cpu"), new_loop=True, n=192, bs=32)  # 5 batches an epoch
    hist.planned = 2
    with caplog.at_level(logging.INFO, logger="classify.training.train"):
        learn.fit_one_cycle(2, 1e-2)
    assert "images/s on the first epoch; estimated total" in caplog.text and "epoch 2/2" in caplog.text


# ------------------------------------------------------------------------------ GPU
@cuda
@pytest.mark.gpu
def test_device_batches_on_the_gpu_match_the_cpu_ones_under_one_seed():
    ims = images(n=20)
    y = torch.rand(20, 3)

    def batches(device):
        torch.manual_seed(7)
        return [(x.cpu(), yb.cpu()) for x, yb in DeviceBatches(ims, y, width=16, bs=6, device=device, train=True)]

    for (xa, ya), (xb, yb) in zip(batches("cpu"), batches("cuda")):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@cuda
@pytest.mark.gpu
def test_augmentation_runs_on_the_gpu_and_keeps_its_rules():
    from classify.config import AugmentConfig
    from classify.data.augment import augment_batch

    torch.manual_seed(0)
    x = torch.rand(64, 1, 32, 40, device="cuda") + 0.1
    y = torch.nn.functional.one_hot(torch.arange(64, device="cuda") % 4, 4).float()
    xa, ya = augment_batch(x, y, AugmentConfig())
    assert xa.device.type == "cuda" and ya.device.type == "cuda"
    torch.testing.assert_close(ya.sum(1), torch.ones(64, device="cuda"))  # mixup keeps targets a distribution
    assert (xa == 0).any()  # masks zero bands


@cuda
@pytest.mark.gpu
def test_autocast_and_fused_adamw_on_the_gpu():
    device = torch.device("cuda")
    learn, hist = _tiny_learner(device, new_loop=True, n=400)
    prec = loop.precision(TrainConfig(images="x"), device)
    learn.to_bf16() if prec == "bf16" else learn.to_fp16()
    hist.planned = 2
    learn.fit_one_cycle(2, 1e-2)
    assert learn.opt.opt.param_groups[0]["fused"] is True
    assert float(learn.recorder.values[-1][1]) < 0.4


@cuda
@pytest.mark.gpu
@pytest.mark.slow
def test_short_fit_on_the_gpu_records_device_precision_and_batch(tiny_images, tmp_path):
    import json

    from classify.data.imageset import load_image_set
    from classify.training.train import fit

    ds = load_image_set(tiny_images)
    cfg = TrainConfig(images=str(tiny_images), arch="resnet18", pretrained=False, epochs=1, freeze_epochs=1,
                      quiet=True, lr=1e-3)
    m = fit(ds, cfg, tmp_path / "run")
    assert m["device"].startswith("cuda") and m["precision"] in ("bf16", "fp16")
    assert m["optimizer"] == "AdamW (fused)"
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["bs"] == m["bs"]
