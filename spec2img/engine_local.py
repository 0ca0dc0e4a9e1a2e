"""``spec2img -j N`` (``--engine local``): the per-clip job fanned out over N worker processes.

The counterpart of :mod:`spec2img.engine_ray`: :func:`spec2img.convert.convert` hands in the job
(a picklable ``task(clip) -> manifest row``) and reads the rows back in order; one process runs
the clips in this process. Workers use one BLAS/FFT thread each and keep their malloc heap.

The pool is a small one of our own rather than :class:`multiprocessing.Pool`, whose ``imap``
waits forever for the task of a worker that died (``kill -9``, the OOM killer). Here each worker
has its own pipe and the parent watches the pipes and the workers' exit sentinels together, so it
knows which job a dead worker held: that job gets ``lost(job, message)`` (a ``failed`` row naming
the worker and how it ended), the rest of the worker's share goes to a fresh worker, and the run
goes on. Workers ignore SIGINT; Ctrl-C reaches the parent, which stops them (:func:`close`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait


def run_jobs(todo: list, task: Callable[[object], dict], n_jobs: int, *,
             lost: Callable[[object, str], dict] | None = None) -> Iterable[dict]:
    """``task(job)`` for every job of ``todo`` in order, in this process (``n_jobs=1``) or in
    ``n_jobs`` worker processes; :func:`close` stops the workers.

    A job whose worker dies while running it yields ``lost(job, message)`` instead (by default a
    :class:`RuntimeError` naming the worker is raised).
    """
    if n_jobs == 1:
        _keep_heap()
        return (task(j) for j in todo)
    return _Pool(todo, task, n_jobs, lost or _raise_lost)


def _raise_lost(job, message: str):
    raise RuntimeError(message)


def close(results) -> None:
    """Stop the workers behind what :func:`run_jobs` returned (nothing to do in one process)."""
    if hasattr(results, "close"):
        results.close()


class _Pool:
    """``n_jobs`` workers, each fed chunks of job indices over its own pipe; rows come back one by
    one as ``(index, ok, row_or_exception)`` and are yielded in job order."""

    def __init__(self, todo: list, task, n_jobs: int, lost):
        self.todo, self.task, self.lost = todo, task, lost
        self.ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        self.chunk = max(1, min(16, len(todo) // (8 * n_jobs) or 1))
        self.queue = deque(range(len(todo)))
        self.workers: dict[object, tuple] = {}  # sentinel -> (process, conn, deque of held indices)
        self.n_jobs = n_jobs

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(child, self.todo, self.task), daemon=True)
        p.start()
        child.close()
        self.workers[p.sentinel] = (p, parent, deque())

    def _feed(self, key) -> None:
        """Keep a worker's next chunk of job indices waiting in its pipe while it works on one, so
        that it never waits for this process (busy on a loaded machine) between chunks."""
        p, conn, held = self.workers[key]
        if len(held) > self.chunk or not self.queue:
            return
        take = [self.queue.popleft() for _ in range(min(self.chunk, len(self.queue)))]
        try:
            conn.send(take)
        except OSError:  # it died before taking them: they go back, its sentinel tells the rest
            self.queue.extendleft(reversed(take))
            return
        held.extend(take)

    def __iter__(self) -> Iterator[dict]:
        done: dict[int, dict] = {}
        nxt = 0
        try:
            for _ in range(min(self.n_jobs, len(self.todo))):
                self._start()
            while True:
                while nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
                if nxt >= len(self.todo):
                    return
                for key in list(self.workers):
                    self._feed(key)
                conns = {w[1]: key for key, w in self.workers.items()}
                ready = wait([*conns, *self.workers])
                for r in ready:
                    if r in conns:
                        self._receive(conns[r], done)
                for key in [k for k in self.workers if k in ready]:
                    self._reap(key, done)
                if self.queue and len(self.workers) < self.n_jobs:
                    self._start()  # in place of a worker that died
        finally:
            self.close()

    def _receive(self, key, done: dict) -> None:
        """Take every row a worker has sent (its exception, if the task raised one)."""
        p, conn, held = self.workers[key]
        try:
            while conn.poll():
                i, ok, value = conn.recv()
                if not ok:
                    raise value
                held.remove(i)
                done[i] = value
        except (EOFError, OSError):  # the worker is gone; its sentinel says so
            pass

    def _reap(self, key, done: dict) -> None:
        """A worker ended: the job it was running is lost, the rest of its chunk goes back."""
        self._receive(key, done)
        p, conn, held = self.workers.pop(key)
        p.join()
        conn.close()
        if not held:
            return
        i = held.popleft()
        code = p.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            how += ", e.g. by the out-of-memory killer"
        done[i] = self.lost(self.todo[i], f"lost with its worker process (pid {p.pid}, {how}) while it "
                                          "processed this file; rerun to retry it")
        self.queue.extendleft(reversed(held))

    def close(self) -> None:
        """Stop every worker: idle ones leave at once, busy ones (Ctrl-C, a stop) are terminated."""
        import time

        for _, conn, _ in self.workers.values():
            try:
                conn.send(None)
            except OSError:
                pass
        end = time.monotonic() + 0.5
        for p, conn, _ in self.workers.values():
            p.join(timeout=max(0.0, end - time.monotonic()))
            if p.is_alive():
                p.terminate()
        for p, conn, _ in self.workers.values():
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
            conn.close()
        self.workers.clear()


def _worker(conn, todo: list, task) -> None:
    """A worker's loop: take a chunk of job indices, send back each row as it is made; stop on
    ``None`` or when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    init_worker()
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for i in chunk:
            try:
                msg = (i, True, task(todo[i]))
            except Exception as exc:  # a bug in the task: the parent raises it
                msg = (i, False, exc)
            try:
                conn.send(msg)
            except (EOFError, OSError):
                return
            except Exception as exc:  # could not pickle the row or the exception
                conn.send((i, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


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
