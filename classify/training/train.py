"""Training with fastai: THE ONLY MODULE THAT IMPORTS FASTAI.

The rest of the package hands this module an :class:`~classify.data.imageset.ImageSet`, a
:class:`~classify.config.TrainConfig` and a run folder path, and gets back paths, arrays and dicts.

Schedule (fastai's ``fine_tune`` shape): ``fit_one_cycle(freeze_epochs, lr)`` with the body frozen,
then ``fit_one_cycle(epochs, slice(lr / 2 / lr_mult, lr / 2))`` unfrozen over three parameter
groups (early body, late body, head). By default a fixed schedule, scored on the validation
selection after the last epoch. Early stopping (``patience``) and restoring the best checkpoint
(``restore_best``) are opt-in and decided on an inner split of the training part, never on the
scored selection (:func:`fit`).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import SuggestionMethod  # noqa: F401  (patches lr_find, fit_one_cycle)
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import AvgSmoothLoss, Learner
from fastai.metrics import AccumMetric
from fastai.optimizer import OptimWrapper
from fastai.torch_core import set_seed, to_detach
from torch import nn

from spec2img.progress import Progress

from . import distributed, loop, recipe
from .device import training_device, use_bf16
from ..scoring import metrics as M
from ..data import splits
from ..data.augment import augment_batch
from ..data.device_data import DeviceBatches
from ..config import TrainConfig
from ..data.imageset import CropDataset, ImageSet, Selection, crop_width, loss_weights, select_for
from ..scoring.evaluate import best_threshold
from ..models.archs import get_arch
from ..models.classifier import AudioClassifier, build_model, predict_windows
from ..runfolder import write_json
from .evaluate import evaluate_and_save

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ pieces
class SoftTargetLoss:
    """Weighted loss on targets ``(B, K + 1)`` (soft labels, then the sample weight).

    Single-label: soft-target cross-entropy; multi-label: binary cross-entropy averaged over
    classes. Reduction: ``sum(w * loss) / sum(w)``.
    """

    def __init__(self, multi_label: bool):
        self.multi_label = multi_label

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t, w = y[:, :-1].float(), y[:, -1].float()
        logits = logits.float()
        if self.multi_label:
            loss = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean(1)
        else:
            loss = -(t * logits.log_softmax(1)).sum(1)
        return (loss * w).sum() / w.sum().clamp_min(1e-8)


def _accuracy(logits, y):
    return (logits.argmax(1) == y[:, :-1].argmax(1)).float().mean()


def _lwlrap(logits, y):
    return torch.tensor(M.lwlrap(y[:, :-1].cpu().numpy() > 0.5, logits.float().cpu().numpy()))


class BatchPrep(Callback):
    """uint8 batch -> float [0, 1] (channels_last if asked); training batches augmented."""

    order = -5

    def __init__(self, augment, channels_last: bool):
        self.augment, self.channels_last = augment, channels_last

    def before_batch(self):
        x, y = self.xb[0].float().div_(255), self.yb[0]
        if self.training and self.augment.active:
            x, y = augment_batch(x, y, self.augment)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.learn.xb, self.learn.yb = (x,), (y,)


class Autocast(nn.Module):
    """Runs the wrapped model under bfloat16 autocast (CPU) and returns float32 logits."""

    def __init__(self, model: nn.Module, device_type: str = "cpu"):
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


class DeviceDL(DataLoader):
    """fastai's DataLoader over :class:`~classify.data.device_data.DeviceBatches`: batches cut on
    the training device (no workers, no collate, no copy). ``to_detach`` keeps losses and metric
    inputs on the device, so they are summed there and read once an epoch (no host sync a batch)."""

    def __init__(self, dataset=None, batches: DeviceBatches | None = None, **kwargs):
        super().__init__(dataset, **kwargs)
        self.batches = batches

    def __len__(self):
        return len(self.batches) if self.batches is not None else 0

    def __iter__(self):
        if self.batches is not None:
            yield from self.batches

    def to_detach(self, b, cpu=True, gather=True):
        return to_detach(b, cpu=False, gather=gather)


class TorchAdamW(OptimWrapper):
    """torch's fused (else foreach) AdamW behind fastai's optimiser interface (:func:`loop.adamw`).

    fastai sees one group per splitter group (freeze/unfreeze, discriminative rates, one-cycle
    schedules); torch holds two per group, and ``wd`` reaches only the first (weights): biases and
    norm parameters are not decayed, as with fastai's own optimiser (``wd_bn_bias=False``).
    """

    def __init__(self, params, lr=1e-3, device=None, kind: str = "auto", **_):
        params = list(params)
        groups = [params] if params and isinstance(params[0], torch.Tensor) else [list(g) for g in params]
        super().__init__(opt=loop.adamw(groups, lr=lr, device=device or torch.device("cpu"), kind=kind))

    @property
    def hypers(self):
        return super().hypers[::2]

    def _set_hyper(self, k, v):
        v = [x for x in v for _ in (0, 1)]
        if k == "wd":
            v[1::2] = [0.0] * (len(v) // 2)
        super()._set_hyper(k, v)

    @property
    def param_lists(self):
        pgs = self.opt.param_groups
        return [pgs[i]["params"] + pgs[i + 1]["params"] for i in range(0, len(pgs), 2)]


class DeviceSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed training loss, kept on the device (fastai's copies it to the CPU every batch)."""

    def accumulate(self, learn):
        self.count += 1
        loss = learn.loss.mean().detach().float()
        self.val = torch.lerp(loss, self.val.to(loss.device), self.beta)


class History(Callback):
    """One row per epoch (both phases), the training-phase throughput, and how long: the measured
    rate and estimated total after the first batches, ``epoch k/N``, seconds, images/s and ETA
    after each epoch, and a progress bar within long epochs (:class:`spec2img.progress.Progress`:
    tqdm on a terminal, plain lines otherwise)."""

    order = 60  # after Recorder
    measure_batches = 8  # timed after 2 warm-up batches

    def __init__(self, quiet: bool, device: torch.device | None = None):
        self.rows, self.quiet = [], quiet
        self.device = device or torch.device("cpu")
        self.phase, self.train_seconds, self.train_items = "frozen", 0.0, 0
        self.planned, self.n_valid, self.rate, self.bar = 0, 0, None, None
        self.epoch_seconds, self.seconds = None, []

    def _finding(self) -> bool:
        return hasattr(self.learn, "lr_finder")

    def before_epoch(self):
        self._e0 = time.perf_counter()

    def before_train(self):
        self._t0 = time.perf_counter()
        self._batches, self._m0, self._items0 = 0, None, self.train_items
        long = self.epoch_seconds is not None and self.epoch_seconds > 30
        if not self._finding() and not self.quiet and (sys.stderr.isatty() or long):
            k = len(self.rows) + 1
            self.bar = Progress(len(self.dl), unit="batch", desc=f"epoch {k}/{self.planned or '?'}",
                                every=10.0, logger=log)

    def after_batch(self):
        if not self.training or self._finding():
            return
        n = self.x.shape[0]
        self.train_items += n
        self._batches += 1
        if self.bar is not None:
            self.bar.update()
        if self.rate is None and self.planned:
            if self._batches == 2:
                loop.sync(self.device)
                self._m0, self._mi = time.perf_counter(), 0
            elif self._m0 is not None:
                self._mi += n
                if self._batches == 2 + self.measure_batches:
                    loop.sync(self.device)
                    self._measured(self._mi / max(time.perf_counter() - self._m0, 1e-9),
                                   f"the first {self.measure_batches} batches", len(self.dl) * n)

    def _measured(self, rate: float, on: str, n_train: int) -> None:
        """Keep the first measured rate and log it with the estimated total time."""
        self.rate = rate
        total = loop.estimate_total(rate, n_train=n_train, n_valid=self.n_valid, epochs=self.planned)
        if not self.quiet:
            log.info("measured %.0f images/s on %s; estimated total %s for %d epochs", rate, on,
                     loop.fmt_seconds(total), self.planned)

    def after_train(self):
        if self._finding():
            return
        loop.sync(self.device)  # once an epoch, so the training time holds the device's work
        self._train_secs = time.perf_counter() - self._t0
        self.train_seconds += self._train_secs
        if self.rate is None and self.planned:  # epochs too short to time batches apart
            n = self.train_items - self._items0
            self._measured(n / max(self._train_secs, 1e-9), "the first epoch", n)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def after_epoch(self):
        if self._finding():
            return
        secs = time.perf_counter() - self._e0  # the Recorder has read the metrics: device work is done
        self.epoch_seconds = secs
        names = list(self.recorder.metric_names)
        row = dict(zip(names, self.recorder.log))
        row.pop("time", None)
        row["epoch"] = len(self.rows)
        row["phase"] = self.phase
        row["lr"] = float(self.opt.hypers[-1]["lr"])
        self.rows.append(row)  # history.csv: no timings, so seeded runs repeat exactly
        self.seconds.append(secs)
        if not self.quiet:
            k, total = len(self.rows), max(self.planned, len(self.rows))
            vals = "  ".join(f"{k_}={v:.4f}" for k_, v in row.items()
                             if isinstance(v, float) and k_ != "lr")
            rate = (self.train_items - self._items0) / max(self._train_secs, 1e-9)
            log.info("epoch %d/%d (%s)  %.1f s, %.0f images/s, ETA %s  %s", k, total, self.phase, secs,
                     rate, loop.fmt_seconds((total - k) * secs), vals)


class FrozenNorm(Callback):
    """Keeps the body's BatchNorm layers in eval mode while training (``TrainConfig.freeze_bn``): their
    running statistics stay the pretrained ones instead of drifting to the statistics of small,
    augmented batches; their scale and shift still train when their group is unfrozen."""

    order = -5  # after fastai's TrainEvalCallback (-10) has put the model in training mode

    def __init__(self, body: nn.Module):
        self.norms = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def before_train(self):
        for m in self.norms:
            m.eval()


class Averaging(Callback):
    """Drives a :class:`classify.training.recipe.WeightAverage` (EMA) through one fit."""

    def __init__(self, ema: recipe.WeightAverage):
        self.ema = ema

    def before_fit(self):
        self.ema.start(len(self.dls.train))

    def after_step(self):
        self.ema.update()

    def after_fit(self):
        self.ema.finish()


class BestCheckpoint(SaveModelCallback):
    """fastai's SaveModelCallback, kept across the frozen and unfrozen fits, logging not printing."""

    def after_epoch(self):
        super(SaveModelCallback, self).after_epoch()  # TrackerCallback: updates best/new_best
        if self.new_best:
            log.debug("best %s %.4f at epoch %d", self.monitor, self.best, self.epoch)
            self._save(self.fname)

    def _save(self, name):
        """fastai's ``learn.save(name, with_opt=False)`` through the one atomic writer: a full disk
        leaves no torn checkpoint and says which file."""
        import io

        from fastai.torch_core import get_model

        from spec2img.io import write_atomic

        buf = io.BytesIO()
        torch.save(get_model(self.learn.model).state_dict(), buf)
        write_atomic(Path(self.learn.path) / self.learn.model_dir / f"{name}.pth", buf.getvalue())


def layer_groups(model: AudioClassifier, n: int = 3) -> list[list[nn.Parameter]]:
    """Parameter groups for discriminative rates: the body's parameters in depth order cut into
    ``n - 1`` contiguous groups of (nearly) equal length, then the head. ``n=3`` is fastai's
    ``fine_tune`` shape (body halves, head); more groups make the geometric spread of
    ``slice(lo, hi)`` a layer-wise decay (each group ``(hi / lo) ** (1 / (n - 1))`` below the next)."""
    inner = model.model if isinstance(model, Autocast) else model
    body = list(inner.body.parameters())
    cuts = np.linspace(0, len(body), n, dtype=int)
    return [body[a:b] for a, b in zip(cuts[:-1], cuts[1:])] + [list(inner.head.parameters())]


# ------------------------------------------------------------------------------------ learner
def make_learner(ds: ImageSet, sel: Selection, cfg: TrainConfig, run_dir: Path,
                 device: torch.device) -> tuple[Learner, AudioClassifier, int, History]:
    """Datasets, loaders, model and Learner for one run."""
    get_arch(cfg.arch).check_images(ds.cfg)
    if cfg.crop_seconds == "auto":  # decided from the training images' widths (callers usually did)
        cfg = cfg.replace(crop_seconds=cfg.resolved(ds, sel.train).crop_seconds)
    width = crop_width(ds.cfg, cfg.crop_seconds, ds.max_width)
    w = loss_weights(ds, unverified_weight=cfg.unverified_weight)
    tr = CropDataset([ds.images[i] for i in sel.train], ds.targets[sel.train], w[sel.train],
                     width=width, train=True)
    va = CropDataset([ds.images[i] for i in sel.valid], ds.targets[sel.valid],
                     np.ones(len(sel.valid), np.float32), width=width, train=False)
    bs = cfg.bs // distributed.world_size()  # --bs is global: each of N processes takes bs / N
    drop_last = len(tr) > cfg.bs
    if distributed.world_size() > 1:  # fastai's DistributedDL shards a plain DataLoader
        dls = DataLoaders(DataLoader(tr, bs=bs, shuffle=True, drop_last=drop_last, num_workers=0),
                          DataLoader(va, bs=bs * 2, num_workers=0), device=device)
    else:  # the images on the training device, batches cut there
        dls = DataLoaders(
            DeviceDL(tr, DeviceBatches(tr.images, tr.y, width=width, bs=bs, device=device, train=True,
                                       drop_last=drop_last), bs=bs, drop_last=drop_last),
            DeviceDL(va, DeviceBatches(va.images, va.y, width=width, bs=bs * 2, device=device, train=False),
                     bs=bs * 2), device=device)
    model = build_model(get_arch(cfg.arch), n_classes=len(ds.classes), in_channels=ds.cfg.channels,
                        pretrained=cfg.pretrained, weights_file=Path(cfg.weights) if cfg.weights else None,
                        input_height=cfg.input_height, dropout=cfg.dropout,
                        value_range=(ds.cfg.vmin, ds.cfg.vmax), cut=cfg.cut or 0, arch=cfg.arch,
                        **recipe.head_kwargs(cfg))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if use_bf16(cfg, device):
        net = Autocast(model)
    metric = (AccumMetric(_lwlrap, flatten=False, name="lwlrap") if ds.multi_label
              else AccumMetric(_accuracy, flatten=False, name="accuracy"))
    hist = History(cfg.quiet, device)
    hist.n_valid = len(va)
    learn = Learner(dls, net, loss_func=SoftTargetLoss(ds.multi_label),
                    splitter=functools.partial(layer_groups, n=cfg.lr_groups),
                    metrics=[metric], wd=cfg.wd, path=run_dir, model_dir="checkpoints",
                    opt_func=functools.partial(TorchAdamW, device=device),
                    cbs=[BatchPrep(cfg.augment, cfg.channels_last), hist]
                    + ([FrozenNorm(model.body)] if cfg.freeze_bn else []))
    learn.recorder.smooth_loss = DeviceSmoothLoss(learn.recorder.smooth_loss.beta)
    # History reports progress (spec2img.progress) and one line an epoch; fastai's bar and table
    # would read the loss every batch (a host sync)
    learn.remove_cb(ProgressCallback)
    learn.logger = lambda *a, **k: None
    if device.type == "cuda":
        learn.to_bf16() if loop.precision(cfg, device) == "bf16" else learn.to_fp16()
    return learn, model, width, hist


def run_lr_find(learn: Learner, run_dir: Path, num_it: int = 100) -> float:
    """fastai's lr_find; writes ``lr_find.json`` (suggestion + curve) and ``lr_find.png``."""
    from .plots import plot_lr_find

    sugg = learn.lr_find(num_it=num_it, show_plot=False)
    lrs = [float(v) for v in learn.recorder.lrs]
    losses = [float(v) for v in learn.recorder.losses]
    lr = float(sugg.valley)
    write_json(run_dir / "lr_find.json", {"suggestion": lr, "method": "valley", "lrs": lrs, "losses": losses})
    plot_lr_find(np.array(lrs), np.array(losses), {"suggestion": lr}, run_dir / "lr_find.png")
    log.info("lr_find suggests lr=%.2e (lr_find.png)", lr)
    return lr


@functools.lru_cache(maxsize=1)
def data_parallel(learn: Learner, device: torch.device) -> Callback | None:
    """Under a distributed launch (:mod:`classify.training.distributed`), fastai's DistributedTrainer
    (DDP through accelerate) added to ``learn``; else None. On CPU (gloo) the loaders' index
    broadcast stays on the CPU (fastai's moves it to CUDA, for NCCL) and BatchNorm is not synced."""
    if distributed.world_size() <= 1:
        return None
    from fastai.distributed import DistributedDL, DistributedTrainer

    class CpuDistributedDL(DistributedDL):
        def _broadcast(self, t, rank):
            t = torch.tensor(t, dtype=torch.long)
            torch.distributed.broadcast(t, rank)
            return t.tolist()

    class Trainer(DistributedTrainer):
        def _wrap_dl(self, dl):
            if isinstance(dl, DistributedDL):
                return dl
            kind = CpuDistributedDL if device.type == "cpu" else DistributedDL
            return kind(dl, device=self.learn.model.device)

    cb = Trainer(sync_bn=device.type == "cuda", cpu=device.type == "cpu")
    learn.add_cb(cb)
    if not distributed.is_main():
        learn.remove_cb(ProgressCallback)
    return cb


# ------------------------------------------------------------------------------------ fit
def protocol(cfg: TrainConfig, sel: Selection, inner: Selection | None, *, multi_label: bool,
             n_valid_clips: int, epochs_run: int, stopped_early: bool) -> dict:
    """What the reported metrics were computed on and where every choice came from (metrics.json)."""
    where = (f"inner split ({len(inner.valid)} images carved from the training part, not trained on)"
             if inner is not None else None)
    sched = f"{recipe.frozen_epochs(cfg)} frozen + {cfg.epochs} unfrozen one-cycle epochs"
    return {
        "scored_on": f"validation fold: {n_valid_clips} clips, never trained on and never used for a choice",
        "epochs": (f"early stopping (patience {cfg.patience}, {cfg.monitor}) on the {where}; "
                   f"{epochs_run} epochs run" + (", stopped early" if stopped_early else "")
                   if cfg.patience > 0 else f"fixed schedule: {sched}"),
        "checkpoint": f"best {cfg.monitor} on the {where}" if cfg.restore_best else "last epoch (fixed)",
        "lr": "fixed" if cfg.lr is not None else "lr_find suggestion (reads training batches only)",
        "threshold": ((f"best micro-F1 on the {where}" if inner is not None else "fixed 0.5")
                      if multi_label else None),
        "curves": ("history.csv's valid columns: the " + (where or "validation fold, recorded only (no choice reads them)")),
        "inner_valid_images": int(len(inner.valid)) if inner is not None else 0,
    }


def fit(ds: ImageSet, cfg: TrainConfig, run_dir: Path, *,
        clip_valid: np.ndarray | None = None, exclude: np.ndarray | None = None, cbs=()) -> dict:
    """Train one model and write the run folder; returns the metrics dict (also metrics.json).
    A write that fails (a full disk) removes the checkpoints and raises the OSError naming the file;
    every run-folder file is written whole or not at all (:func:`spec2img.io.write_atomic`).

    The validation selection is only scored: with ``cfg.needs_inner_split`` (early stopping or
    best checkpoint) fastai trains on the inner training part and validates on the inner split
    (:func:`classify.data.splits.inner_for`); otherwise the schedule is fixed and the per-epoch validation curves on
    the validation fold are recorded, never read by a choice. ``cbs``: extra fastai callbacks.
    """
    try:
        return _fit(ds, cfg, Path(run_dir), clip_valid=clip_valid, exclude=exclude, cbs=cbs)
    except OSError:
        _cleanup(Path(run_dir))
        raise


def _fit(ds: ImageSet, cfg: TrainConfig, run_dir: Path, *, clip_valid, exclude, cbs) -> dict:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.resolved()
    if cfg.seed is not None:
        set_seed(cfg.seed, reproducible=True)
    sel = select_for(ds, cfg, clip_valid=clip_valid, exclude=exclude)
    cfg = cfg.resolved(ds, sel.train)
    inner = splits.inner_for(ds, sel, cfg) if cfg.needs_inner_split else None
    device = training_device()
    cfg = loop.batch_for_device(cfg, device, len((inner if inner is not None else sel).train))
    learn, model, width, hist = make_learner(ds, inner if inner is not None else sel, cfg, run_dir, device)
    for cb in cbs:
        learn.add_cb(cb)
    fitted = inner if inner is not None else sel
    lpft = recipe.start_head_from_probe(model, ds, fitted.train, cfg, width) if cfg.lp_ft else {}
    log.info("%s: %d training / %d validation images (%d classes%s), crops %d frames (%.1f s), %s",
             cfg.arch, len(sel.train), len(sel.valid), len(ds.classes),
             ", multi-label" if ds.multi_label else "", width, cfg.crop_seconds or 0, device.type)
    if inner is not None:
        log.info("choices (early stop / best checkpoint%s) made on an inner split of %d training images, "
                 "which are not trained on; the %d validation images are only scored",
                 " / threshold" if ds.multi_label else "", len(inner.valid), len(sel.valid))

    lr = cfg.lr if cfg.lr is not None else run_lr_find(learn, run_dir, cfg.lr_find_iters)
    metric_name = "lwlrap" if ds.multi_label else "accuracy"
    monitor = cfg.monitor if cfg.monitor in ("valid_loss", metric_name) else "valid_loss"
    cbs = [EarlyStoppingCallback(monitor=monitor, patience=cfg.patience)] if cfg.patience > 0 else []
    if cfg.restore_best:
        learn.add_cb(BestCheckpoint(monitor=monitor, fname="best", reset_on_fit=False))
    planned = recipe.frozen_epochs(cfg) + cfg.epochs
    hist.planned = planned
    prec = loop.precision(cfg, device)
    opt_kind = "fused" if loop.fused_supported(device) else "foreach"
    log.info("fine-tune on %s, precision %s, batch %d, AdamW (%s): %d epochs (%d frozen + %d unfrozen) of %d "
             "images%s", loop.describe(device), prec, cfg.bs, opt_kind, planned, recipe.frozen_epochs(cfg),
             cfg.epochs, len(learn.dls.train) * cfg.bs, f"; {cfg.lr_rule}" if cfg.lr_rule else "")
    t0 = time.perf_counter()
    ddp = data_parallel(learn, device)
    try:
        if recipe.frozen_epochs(cfg):
            hist.phase = "frozen"
            learn.freeze()
            learn.fit_one_cycle(cfg.freeze_epochs, lr, cbs=cbs)
        hist.phase = "unfrozen"
        learn.unfreeze()
        top = cfg.unfrozen_lr if cfg.unfrozen_lr is not None else lr / 2
        ema = [Averaging(recipe.WeightAverage(model, cfg.ema_epochs))] if cfg.ema_epochs else []
        learn.fit_one_cycle(cfg.epochs, slice(top / cfg.lr_mult, top), cbs=cbs + ema)
    except CancelFitException:
        pass
    if ddp is not None:
        learn.remove_cb(ddp)
    seconds = time.perf_counter() - t0
    if cfg.restore_best:
        best_path = run_dir / "checkpoints" / "best.pth"
        if best_path.exists():
            learn.load("best", with_opt=False)
    model = model.float().to(memory_format=torch.contiguous_format)
    threshold = None
    if ds.multi_label and inner is not None:
        model.eval()
        p, _ = predict_windows(model, [ds.images[i] for i in inner.valid], width=width, device=device,
                               multi_label=True)
        threshold = best_threshold(p.numpy(), ds.targets[inner.valid])

    if not distributed.is_main():  # rank 0 writes the run folder; the others are done
        distributed.barrier()
        return {}
    n_valid_clips = len(np.unique(ds.table["clip"].to_numpy()[sel.valid]))
    proto = protocol(cfg, sel, inner, multi_label=ds.multi_label, n_valid_clips=n_valid_clips,
                     epochs_run=len(hist.rows), stopped_early=len(hist.rows) < planned)
    result = evaluate_and_save(ds, sel, cfg, run_dir, model, width, device, history=hist.rows,
                               threshold=threshold,
                               extra={"lr": lr, "train_seconds": seconds,
                                      "train_images_per_second": hist.train_items / max(hist.train_seconds, 1e-9),
                                      "epochs_run": len(hist.rows), "monitor": monitor,
                                      "bf16": use_bf16(cfg, device), "device": loop.describe(device),
                                      "precision": prec, "optimizer": f"AdamW ({opt_kind})", "bs": cfg.bs,
                                      "protocol": proto, **lpft})
    from .headonly import check_fine_tuned

    check_fine_tuned(ds, sel, cfg, run_dir, width=width, result=result)
    log.info("scored on the validation fold only (%d clips); epochs: %s; checkpoint: %s",
             n_valid_clips, proto["epochs"], proto["checkpoint"])
    if cfg.export_learner:
        try:
            learn.export(run_dir / "learner.pkl")
        except Exception as exc:  # convenience only; the run folder is complete without it
            (run_dir / "learner.pkl").unlink(missing_ok=True)  # never a torn pickle (a full disk)
            log.warning("learner.pkl not written (%s: %s)", type(exc).__name__, exc)
    distributed.barrier()  # every process has loaded the best checkpoint before it is removed
    _cleanup(run_dir)
    return result


def lr_find(ds: ImageSet, cfg: TrainConfig, run_dir: Path) -> float:
    """Run only lr_find (body frozen, as for the first phase); writes lr_find.json/png."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.seed is not None:
        set_seed(cfg.seed, reproducible=True)
    sel = select_for(ds, cfg)
    cfg = cfg.resolved(ds, sel.train)
    device = training_device()
    cfg = loop.batch_for_device(cfg, device, len(sel.train))
    learn, *_ = make_learner(ds, sel, cfg, run_dir, device)
    if cfg.freeze_epochs:
        learn.freeze()
    lr = run_lr_find(learn, run_dir, cfg.lr_find_iters)
    _cleanup(run_dir)
    return lr


def _cleanup(run_dir: Path) -> None:
    ckpt = Path(run_dir) / "checkpoints"
    if ckpt.is_dir():
        for p in ckpt.glob("*.pth"):
            p.unlink()
        try:
            ckpt.rmdir()
        except OSError:
            pass

