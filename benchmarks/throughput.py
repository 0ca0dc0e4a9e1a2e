"""Training throughput (images/s): classify's fastai loop vs a plain PyTorch loop, on CPU or GPU.

Same images (a spec2img folder), same model (``classify.training.train.make_learner``'s), same
crops, augmentation, loss, optimiser (torch AdamW, fused where torch has it) and precision:

- ``classify``: ``make_learner`` then ``learn.fit(1)`` after one warm-up epoch; images/s of the
  training phase (History's count and time, the device synced at the end of it).
- ``plain``: a hand-written loop over the same model: the images padded into one uint8 tensor on
  the device, random crops cut there per batch, ``x / 255`` -> SpecAugment/roll/mixup ->
  forward under the same autocast -> loss -> backward -> ``step`` -> ``zero_grad``; no callbacks.
  Its own few lines (not classify's data path), so it runs unchanged against older checkouts.
- ``fastai``: ``ImageDataLoaders.from_df`` decoding every PNG each batch, ``Resize(224)`` +
  ``aug_transforms()``, ``vision_learner`` (optional; slow).

``cpu_ms_per_image``: the process's CPU time (all threads) per training image (the classify
epoch also scores 64 validation images, counted as a third of a training image each): on a
loaded shared machine, where wall-clock rates mostly measure the wait for a core, with
``--threads 1`` this is the work itself. On CUDA the GPU's busy share during the timed epoch is sampled (``torch.cuda.utilization``, else
``nvidia-smi``) every 0.2 s; on CPU it is ``n/a``. Results are printed as JSON lines and appended
to ``benchmarks/results/throughput.jsonl`` with the commit, versions and load average.

Usage::

    uv run python benchmarks/throughput.py /work/bench/fsdd_eat --device cpu --archs efficientat_mn04 --n 320
    python3 benchmarks/throughput.py IMAGES --device cuda --archs efficientat_mn04,resnet34 --n 20000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch


def _pick(ds, m: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(len(ds.images))[:m]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Busy:
    """Mean GPU utilisation (%) while active: ``torch.cuda.utilization`` or ``nvidia-smi``, every 0.2 s."""

    def __init__(self, device: torch.device):
        self.device, self.samples, self.how = device, [], "n/a"
        self._stop = threading.Event()

    def _read(self):
        try:
            self.how = "torch.cuda.utilization"
            return float(torch.cuda.utilization(self.device))
        except Exception:
            if shutil.which("nvidia-smi") is None:
                return None
            self.how = "nvidia-smi"
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                  "-i", str(self.device.index or 0)], capture_output=True, text=True).stdout
            return float(out.strip().splitlines()[0]) if out.strip() else None

    def _run(self):
        while not self._stop.wait(0.2):
            v = self._read()
            if v is not None:
                self.samples.append(v)

    def __enter__(self):
        if self.device.type == "cuda":
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.device.type == "cuda":
            self._t.join()

    @property
    def share(self):
        if self.device.type != "cuda":
            return "n/a"
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def _config(ds, arch: str, bs: int, device: torch.device):
    from classify.config import TrainConfig

    cfg = TrainConfig(images=str(ds.root), arch=arch, pretrained=arch != "resnet34", bs=bs, quiet=True)
    return cfg.resolved(ds, np.arange(len(ds.images)))


def _precision(cfg, device: torch.device):
    """(autocast dtype or None, name) as classify's loop uses for this device."""
    if device.type == "cuda":
        return (torch.bfloat16, "bf16") if torch.cuda.is_bf16_supported() else (torch.float16, "fp16")
    from classify.training.device import use_bf16

    return (torch.bfloat16, "bf16") if use_bf16(cfg, device) else (None, "fp32")


def time_classify(ds, arch: str, n: int, bs: int, device: torch.device) -> dict:
    from classify.data.imageset import Selection
    from classify.training.train import make_learner

    idx = _pick(ds, n + 64)
    sel = Selection(train=idx[:n], valid=idx[n:n + 64])
    cfg = _config(ds, arch, bs, device)
    learn, model, width, hist = make_learner(ds, sel, cfg, Path("/tmp/bench/tp_run"), device)
    learn.unfreeze()
    learn.fit(1, 1e-4)  # warm-up
    hist.train_items, hist.train_seconds = 0, 0.0
    with Busy(device) as busy:
        c = time.process_time()
        learn.fit(1, 1e-4)
        _sync(device)
        cpu = time.process_time() - c
    n_valid = len(sel.valid)
    return {"images_per_second": hist.train_items / hist.train_seconds, "gpu_busy_pct": busy.share,
            "cpu_ms_per_image": 1000 * cpu / (hist.train_items + n_valid / 3),
            "input": f"{ds.cfg.channels}x{ds.cfg.n_rows}x{width}", "precision": _precision(cfg, device)[1],
            "bs": cfg.bs, "optimizer": _opt_name(learn.opt)}


def _opt_name(opt) -> str:
    inner = getattr(opt, "opt", None)  # fastai's OptimWrapper around a torch optimiser
    if isinstance(inner, torch.optim.Optimizer):
        d = inner.defaults
        return f"{type(inner).__name__} ({'fused' if d.get('fused') else 'foreach' if d.get('foreach') else 'loop'})"
    return f"fastai {type(opt).__name__}"


def time_plain(ds, arch: str, n: int, bs: int, device: torch.device) -> dict:
    """The plain PyTorch loop (module docstring) over make_learner's model and crops."""
    from classify.data.augment import augment_batch
    from classify.data.imageset import Selection, crop_width
    from classify.training.train import SoftTargetLoss, make_learner

    idx = _pick(ds, n + 64)
    sel = Selection(train=idx[:n], valid=idx[n:n + 64])
    cfg = _config(ds, arch, bs, device)
    _, model, width, _ = make_learner(ds, sel, cfg, Path("/tmp/bench/tp_run"), device)
    model = model.to(device)
    dtype, prec = _precision(cfg, device)
    # the training images padded into one uint8 tensor on the device
    ims = [ds.images[i] for i in sel.train]
    wmax = max(max(int(im.shape[-1]) for im in ims), width)
    store = torch.zeros(len(ims), *ims[0].shape[:-1], wmax, dtype=torch.uint8)
    for j, im in enumerate(ims):
        store[j, ..., :im.shape[-1]] = im
    store = store.to(device)
    widths = torch.tensor([int(im.shape[-1]) for im in ims], device=device)
    y = torch.from_numpy(np.concatenate([ds.targets[sel.train], np.ones((len(ims), 1), np.float32)], 1)).to(device)
    loss_fn = SoftTargetLoss(ds.multi_label)
    fused = device.type == "cuda" or tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01,
                            **({"fused": True} if fused else {"foreach": True}))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    cols = torch.arange(width, device=device)

    def epoch():
        model.train()
        perm = torch.randperm(len(ims), device=device)
        k = 0
        for b in range(len(ims) // bs):
            i = perm[b * bs:(b + 1) * bs]
            start = (torch.rand(len(i), device=device) * (widths[i] - width).clamp_min(0).add(1)).long()
            c = (start[:, None] + cols[None]).clamp_max(wmax - 1)
            x = store[i][torch.arange(len(i), device=device)[:, None], :, :, c]  # (B, width, C, H)
            x = x.permute(0, 2, 3, 1).float().div_(255)
            x, t = augment_batch(x, y[i], cfg.augment)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_fn(model(x).float(), t)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            k += len(i)
        return k

    epoch()  # warm-up
    _sync(device)
    with Busy(device) as busy:
        t, c = time.perf_counter(), time.process_time()
        k = epoch()
        _sync(device)
        secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {"images_per_second": k / secs, "gpu_busy_pct": busy.share, "cpu_ms_per_image": 1000 * cpu / k, "input": f"{ds.cfg.channels}x{ds.cfg.n_rows}x{width}",
            "precision": prec, "bs": bs, "optimizer": "AdamW (fused)" if fused else "AdamW (foreach)"}


def time_fastai(ds, arch: str, n: int, bs: int, device: torch.device) -> dict:
    import pandas as pd
    import torchvision
    from fastai.vision.all import (Callback, ImageDataLoaders, Resize, aug_transforms, model_meta,
                                   vision_learner)

    from accuracy import _lite0

    pick = np.concatenate([_pick(ds, n), _pick(ds, 32)])  # validation repeats training images: labels known
    df = pd.DataFrame({"fname": [str(ds.root / ds.table["image"][i]) for i in pick],
                       "label": [ds.table["labels"][i][0] for i in pick]})
    df["is_valid"] = np.arange(len(df)) >= n
    dls = ImageDataLoaders.from_df(df, path="/", fn_col="fname", label_col="label", valid_col="is_valid",
                                   item_tfms=Resize(224), batch_tfms=aug_transforms(), bs=bs, num_workers=0,
                                   device=device)

    class Timer(Callback):
        def before_train(self):
            self.t0, self.k = time.perf_counter(), 0

        def after_batch(self):
            if self.training:
                self.k += len(self.x)

        def after_train(self):
            _sync(device)
            self.rate = self.k / (time.perf_counter() - self.t0)

    if arch == "efficientnet_lite0":
        model_meta[_lite0] = {"cut": lambda m: m, "split": lambda m: [list(m[0].parameters()), list(m[1].parameters())],
                              "stats": ([0.5] * 3, [0.5] * 3)}
        from fastai.vision.all import create_head

        learn = vision_learner(dls, _lite0, pretrained=True, custom_head=create_head(1280, dls.c))
    else:
        learn = vision_learner(dls, getattr(torchvision.models, arch), pretrained=False)
    learn.unfreeze()
    timer = Timer()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-4)
        with Busy(device) as busy:
            learn.fit(1, 1e-4, cbs=timer)
    return {"images_per_second": timer.rate, "gpu_busy_pct": busy.share, "input": "3x224x224", "precision": "fp32",
            "bs": bs, "optimizer": "fastai Adam"}


def main() -> None:
    import logging
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from record import RESULTS, environment

    ap = argparse.ArgumentParser()
    ap.add_argument("images", type=Path)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--archs", default="efficientat_mn04")
    ap.add_argument("--n", type=int, default=320, help="training images per timed epoch")
    ap.add_argument("--bs", type=int, default=None, help="batch size (default: 32 on cpu, 256 on cuda)")
    ap.add_argument("--variants", default="classify,plain", help="classify, plain, fastai (comma-separated)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each variant, interleaved")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1: CPU time per image is pure work, even on a loaded machine)")
    ap.add_argument("--note", default="", help="free text stored with each result")
    ap.add_argument("--no-record", action="store_true", help="print only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from classify.data.imageset import load_image_set

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: torch sees no CUDA device here")
    bs = args.bs or (256 if device.type == "cuda" else 32)
    torch.manual_seed(0)
    ds = load_image_set(args.images)
    env = environment()
    for arch in args.archs.split(","):
        for r in range(args.repeat):
            for v in args.variants.split(","):
                fn = {"classify": time_classify, "plain": time_plain, "fastai": time_fastai}[v]
                res = fn(ds, arch, args.n, bs, device)
                rec = {"benchmark": "throughput", "dataset": args.images.name, "arch": arch, "variant": v,
                       "device": args.device, "n": args.n, "repeat": r,
                       **{k: (round(x, 2) if isinstance(x, float) else x) for k, x in res.items()},
                       **env, "load_avg_now": round(__import__("os").getloadavg()[0], 2), "note": args.note}
                print(json.dumps(rec), flush=True)
                if not args.no_record:
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    with open(RESULTS / "throughput.jsonl", "a") as fh:
                        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
