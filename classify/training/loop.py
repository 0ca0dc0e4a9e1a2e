"""The training loop's hardware choices, in plain torch: optimiser, precision, batch size, timing.

:mod:`classify.training.train` (fastai) calls these; nothing here imports fastai.

- Optimiser: torch's AdamW, fused where torch has a fused kernel for the device (CUDA, and CPU
  since torch 2.4), else ``foreach``: one kernel launch for all parameters instead of fastai's
  Python step per parameter. Each fastai parameter group becomes two torch groups, the weights
  (decayed) and the biases and norm parameters (1-D tensors, never decayed: fastai's
  ``wd_bn_bias=False``), with fastai Adam's defaults (betas 0.9/0.99, eps 1e-5).
- Precision: bfloat16 autocast on GPUs that have it, fp16 with loss scaling on other GPUs, on
  the CPU bfloat16 autocast where the CPU computes it natively (:mod:`classify.training.device`).
- Batch size: on a GPU ``TrainConfig.gpu_bs`` (at most an eighth of the training images, never
  below ``bs``), learning rates scaled by the square root of the batch ratio (the usual rule for
  Adam-type optimisers); the rule applied is written to ``train.json`` (``lr_rule``).
- ``torch.compile`` and CUDA graphs are not used: not measured to pay on the GPU yet.
"""

from __future__ import annotations

import inspect
import math

import torch

from ..config import TrainConfig
from .device import use_bf16

#: fastai Adam's defaults, kept so the switch to torch's AdamW changes speed, not the recipe.
BETAS, EPS = (0.9, 0.99), 1e-5


def fused_supported(device: torch.device) -> bool:
    """Whether this torch has a fused AdamW kernel for ``device`` (CUDA; CPU from torch 2.4)."""
    if "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return False
    if device.type == "cuda":
        return True
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    return device.type == "cpu" and (major, minor) >= (2, 4)


def decay_split(groups: list[list[torch.nn.Parameter]], wd: float = 0.0) -> list[dict]:
    """Two torch parameter groups per group: weights (``weight_decay=wd``), then 1-D tensors (0)."""
    out = []
    for g in groups:
        g = list(g)
        out.append({"params": [p for p in g if p.ndim > 1], "weight_decay": wd})
        out.append({"params": [p for p in g if p.ndim <= 1], "weight_decay": 0.0})
    return out


def adamw(groups: list[list[torch.nn.Parameter]], lr: float, device: torch.device, wd: float = 0.0,
          kind: str = "auto") -> torch.optim.AdamW:
    """torch AdamW over :func:`decay_split` groups; ``kind``: ``auto`` (fused where supported, else
    foreach), ``fused``, ``foreach`` or ``loop`` (torch's per-parameter loop)."""
    if kind == "auto":
        kind = "fused" if fused_supported(device) else "foreach"
    opts = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[kind]
    return torch.optim.AdamW(decay_split(groups, wd), lr=lr, betas=BETAS, eps=EPS, **opts)


def precision(cfg: TrainConfig, device: torch.device) -> str:
    """``"bf16"`` (autocast), ``"fp16"`` (autocast + loss scaling) or ``"fp32"`` for ``device``."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if use_bf16(cfg, device) else "fp32"


def describe(device: torch.device) -> str:
    """``cpu (N threads)`` or ``cuda:0 (NVIDIA H200)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def batch_for_device(cfg: TrainConfig, device: torch.device, n_train: int) -> TrainConfig:
    """``cfg`` with the batch size for ``device`` and learning rates scaled to it (see module doc).

    On the CPU, or with ``gpu_bs`` None, ``cfg`` unchanged. Else the batch is ``gpu_bs``, at most
    the power of two <= ``n_train / 8`` (eight steps an epoch), never below ``bs``; ``lr`` and
    ``unfrozen_lr`` (when set) are multiplied by ``sqrt(new / bs)`` and ``lr_rule`` says so.
    """
    if device.type != "cuda" or not cfg.gpu_bs or cfg.gpu_bs <= cfg.bs:
        return cfg
    cap = 2 ** int(math.floor(math.log2(max(n_train / 8, 1))))
    bs = max(cfg.bs, min(cfg.gpu_bs, cap))
    if bs == cfg.bs:
        return cfg
    k = math.sqrt(bs / cfg.bs)
    lr = cfg.lr * k if cfg.lr is not None else None
    ulr = cfg.unfrozen_lr * k if cfg.unfrozen_lr is not None else None
    rule = (f"GPU batch {bs} (gpu_bs {cfg.gpu_bs}, at most n_train/8) from bs {cfg.bs}: "
            f"learning rates x sqrt({bs}/{cfg.bs}) = x{k:.3g}"
            + (f" (lr {cfg.lr:g} -> {lr:.4g})" if lr is not None else " (lr from lr_find at the new batch)"))
    return cfg.replace(bs=bs, lr=lr, unfrozen_lr=ulr, lr_rule=rule)


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (for a timing; never inside the batch loop)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fmt_seconds(s: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def estimate_total(rate: float, *, n_train: int, n_valid: int, epochs: int) -> float:
    """Seconds for ``epochs`` passes over ``n_train`` training images at ``rate`` images/s, plus
    validation at three times that rate (forward only) — a first guess, replaced every epoch."""
    return epochs * (n_train / rate + n_valid / (3 * rate)) if rate > 0 else float("nan")
