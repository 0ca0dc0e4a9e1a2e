"""Starting a data-parallel ``classify fit``: :func:`launch` (``--distributed N``, processes on this
machine) and :func:`run_rank` (every process, also under torchrun / accelerate launch). See
:mod:`classify.training.distributed` for the rules; rank 0 alone locks and writes the run folder and report.
Importing this module loads neither torch nor fastai.
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
from .training.distributed import INIT_ENV, check_config, is_main

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ every process
def run_rank(cfg: TrainConfig) -> Path:
    """One process of the job: :func:`classify.commands.fit`, the same fit body as a single
    process (the same mode choice; rank 0 writes the run folder and report)."""
    from . import commands

    return commands.fit(cfg)


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
        procs = [subprocess.Popen([sys.executable, "-m", "classify.fit_distributed", str(job)],
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
    """``python -m classify.fit_distributed TRAIN_CONFIG.pkl``: one process started by :func:`launch`."""
    from spec2img.cli import run_main

    cfg = pickle.loads(Path(argv[0]).read_bytes())  # written by launch() in its private folder
    return run_main(lambda: (run_rank(cfg), 0)[1], quiet=cfg.quiet or not is_main())


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
