"""Where training runs and in what precision (torch only; no fastai, so it can be asked cheaply)."""

from __future__ import annotations

import torch

from ..config import TrainConfig
from . import distributed


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX), where autocast
    roughly doubles training speed. Elsewhere it is emulated and gains nothing."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bfloat16 autocast for CPU training: ``cfg.bf16`` when set, else :func:`cpu_has_bf16`."""
    if device.type != "cpu":
        return False
    return cpu_has_bf16() if cfg.bf16 is None else cfg.bf16


def training_device() -> torch.device:
    """The GPU of this process's rank under a distributed launch, the GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", distributed.local_rank()) if distributed.world_size() > 1 else torch.device("cuda")
    return torch.device("cpu")
