"""Data-parallel ``classify fit`` over several processes: fastai's DDP (through accelerate).

Two ways to start it, the same training underneath (:func:`run_rank` in every process):

- ``classify fit IMAGES --out RUN --distributed N``: :func:`launch` starts N processes on this
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

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import TrainConfig
from .errors import ClassifyError

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


# ------------------------------------------------------------------------------ every process
def run_rank(cfg: TrainConfig) -> Path:
    """One process of the job: train with fastai's DDP; rank 0 writes the run folder and report."""
    from . import commands, train
    from .data import load_image_set
    from .runfolder import lock_run_dir

    if not cfg.out:
        raise ClassifyError("distributed fit needs --out RUN_DIR (every process must write to the same folder)")
    n = world_size()
    check_config(cfg, n)
    run_dir = Path(cfg.out)
    init_process_group()
    lock = lock_run_dir(run_dir) if is_main() else None
    try:
        ds = load_image_set(Path(cfg.images), relabel=cfg.relabel, drop=cfg.drop)
        cfg = commands.choose_mode(ds, cfg.replace(head_only=False))  # DDP fine-tunes; arch as fit picks it
        train.fit(ds, cfg, run_dir)
        if is_main():
            commands.build_report_quietly(run_dir)
        barrier()
    finally:
        if lock is not None:
            lock.release()
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return run_dir


# ------------------------------------------------------------------------------ the launcher
def launch(cfg: TrainConfig, nproc: int, *, timeout: float | None = None) -> Path:
    """Start ``nproc`` processes of :func:`run_rank` on this machine and wait; returns the run folder.

    They meet through a file store in a private temporary folder (no TCP rendezvous server) and
    gloo/NCCL use the loopback interface. One thread per process on CPU (``OMP_NUM_THREADS=1``
    unless set). A process that fails stops the others; its messages are on stderr.
    """
    from .commands import run_dir_for

    check_config(cfg, nproc)
    run_dir = run_dir_for(cfg)
    cfg = cfg.replace(out=str(run_dir))
    with tempfile.TemporaryDirectory(prefix="classify-ddp-") as tmp:
        job = Path(tmp) / "train_config.pkl"
        job.write_bytes(pickle.dumps(cfg))
        env = {**os.environ, "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
               INIT_ENV: f"file://{Path(tmp) / 'store'}", "MASTER_ADDR": "127.0.0.1",
               "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
               "NCCL_SOCKET_IFNAME": os.environ.get("NCCL_SOCKET_IFNAME", "lo"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        procs = [subprocess.Popen([sys.executable, "-m", "classify.distributed", str(job)],
                                  env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
                 for r in range(nproc)]
        failed = _wait(procs, timeout)
    if failed is not None:
        r, code = failed
        raise ClassifyError(f"distributed fit: process {r} of {nproc} stopped with exit code {code} "
                            "(its message is above); the others were stopped")
    return run_dir


def _wait(procs: list[subprocess.Popen], timeout: float | None) -> tuple[int, int] | None:
    """Wait for every process; on the first failure (or Ctrl-C, or timeout) stop the rest."""
    t0 = time.monotonic()
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = next(((r, c) for r, c in enumerate(codes) if c not in (None, 0)), None)
            if bad is not None:
                return bad
            if all(c == 0 for c in codes):
                return None
            if timeout is not None and time.monotonic() - t0 > timeout:
                return next(r for r, c in enumerate(codes) if c is None), -1
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _main(argv: list[str]) -> int:
    """``python -m classify.distributed TRAIN_CONFIG.pkl``: one process started by :func:`launch`."""
    from spec2img.cli import run_main

    cfg = pickle.loads(Path(argv[0]).read_bytes())  # written by launch() in its private folder
    return run_main(lambda: (run_rank(cfg), 0)[1], quiet=cfg.quiet or not is_main())


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
