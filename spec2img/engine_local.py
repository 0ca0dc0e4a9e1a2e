"""``spec2img -j N`` (``--engine local``): the per-clip job fanned out over N worker processes.

The counterpart of :mod:`spec2img.engine_ray`: :func:`spec2img.convert.convert` hands in the job
(a picklable ``task(clip) -> manifest row``) and reads the rows back in order; one process runs
the clips in this process. Workers use one BLAS/FFT thread each and keep their malloc heap.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator


def run_jobs(todo: list, task: Callable[[object], dict], n_jobs: int) -> Iterable[dict]:
    """``task(job)`` for every job of ``todo`` in order, in this process (``n_jobs=1``) or in a
    pool of ``n_jobs`` worker processes; :func:`close` stops the pool."""
    if n_jobs == 1:
        _keep_heap()
        return (task(j) for j in todo)
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ctx.Pool(n_jobs, initializer=init_worker)
    it = pool.imap(task, todo, chunksize=max(1, min(16, len(todo) // (8 * n_jobs) or 1)))
    return _PoolIter(pool, it)


class _PoolIter:
    def __init__(self, pool, it):
        self.pool, self.it = pool, it

    def __iter__(self) -> Iterator[dict]:
        return iter(self.it)

    def close(self):
        self.pool.terminate()
        self.pool.join()


def close(results) -> None:
    """Stop the workers behind what :func:`run_jobs` returned (nothing to do in one process)."""
    if hasattr(results, "close"):
        results.close()


def init_worker() -> None:
    """One BLAS/FFT thread per worker: -j N uses N cores, not N x N."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    _keep_heap()


def _keep_heap() -> None:
    """Ask glibc's malloc to serve the per-clip arrays (audio, padded signal, spectrogram: 0.2-4 MB
    each) from the heap and keep freed memory for the next clip, instead of mapping and unmapping
    each one. Fresh mappings cost page faults on every clip: 1.5-2 ms of a 6 ms clip in a worker
    process (kernel time) before this. Elsewhere (macOS, musl) this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD: blocks up to 16 MB come from the heap
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD: keep up to 64 MB of freed heap
    except (OSError, AttributeError):
        pass
