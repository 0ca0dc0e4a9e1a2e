"""Where this process stands in a data-parallel ``classify fit`` (rank, world size, barrier,
process group) and what such a run needs (:func:`check_config`). Imported by :mod:`classify.training.train`
for its hooks; starting the processes is :mod:`classify.fit_distributed`.

Two ways to start a run, the same training underneath (``fit_distributed.run_rank`` in every process):

- ``classify fit IMAGES --out RUN --distributed N``: ``fit_distributed.launch`` starts N processes on this
  machine (gloo on CPU, NCCL on GPUs, one GPU per process); they meet through a file in a private
  temporary folder and talk over the loopback interface only.
- ``torchrun --nproc_per_node N [--nnodes ...] -m classify.cli fit IMAGES --out RUN`` or
  ``accelerate launch -m classify.cli fit ...``: the launcher sets ``RANK``/``WORLD_SIZE``/
  ``MASTER_ADDR``, and ``classify fit`` joins (``env://``). Several machines: RUN and IMAGES on
  storage every node sees.

``--bs`` stays the global batch size (each of N processes takes ``bs / N`` per step), so a run on
N processes follows the single-process schedule. Rank 0 alone takes the run folder's lock and
writes the run folder and the report; the others train and exit. Importing this module loads
neither torch nor fastai.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from ..config import TrainConfig
from ..errors import ClassifyError

log = logging.getLogger(__name__)

INIT_ENV = "CLASSIFY_DIST_INIT"  # init_method of the process group (file:// from launch(); else env://)


# ------------------------------------------------------------------------------ where am I
def world_size() -> int:
    """Processes in this training job (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """Whether this process writes (rank 0, or not distributed)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def init_process_group() -> None:
    """Join the job's process group: gloo on CPU, NCCL with CUDA; ``$CLASSIFY_DIST_INIT`` or env://."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, init_method=os.environ.get(INIT_ENV, "env://"),
                            rank=rank(), world_size=world_size())


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """``with process_group():`` joined to the job's process group while inside (a no-op for a
    single process); the group is destroyed on the way out, however the block ends."""
    if world_size() <= 1:
        yield
        return
    init_process_group()
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def check_config(cfg: TrainConfig, n: int) -> None:
    """What data-parallel fastai training needs; a user error names the flag."""
    if n < 2:
        raise ClassifyError(f"--distributed {n}: give 2 or more processes (1 is plain classify fit)")
    if cfg.bs % n:
        raise ClassifyError(f"--bs {cfg.bs} is the global batch size and must divide by the {n} processes; "
                            f"use e.g. --bs {max(n, cfg.bs // n * n)}")
    if cfg.lr is None:
        raise ClassifyError("--lr auto (lr_find) runs on one process; run classify lr-find first and "
                            "pass its suggestion as --lr")
    if cfg.head_only:
        raise ClassifyError("--head-only fits a logistic regression on one process; drop --distributed "
                            "(or pass --fine-tune)")
