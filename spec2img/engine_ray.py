"""``spec2img --engine ray``: the per-clip work of :func:`spec2img.convert.convert` fanned out over a
Ray cluster instead of a local process pool.

Only the fan-out differs from ``-j N``: each Ray task runs the task the pool runs
(``spec2img.convert._Task``, i.e. :func:`spec2img.convert.process`, handed in by ``convert``: this
module imports nothing of it) on a batch of clips and returns their manifest rows; the driver keeps
the manifest, the resumability and the accounting of :func:`~spec2img.convert.convert`. So the PNG
bytes and the manifest rows are those of ``-j N``.

Failures: a task whose worker or node dies is retried by Ray (``max_retries``); a batch that still
fails is split and its clips are retried one task each, so a clip that crashes the decoder fails
alone, with a ``failed`` manifest row that names it (a rerun retries it; everything else is kept).

Without an address a local Ray instance is started in this process (loopback only, no dashboard)
and shut down at the end; with ``address`` (``ray://host:10001``, ``host:6379`` or ``auto``) the
job joins that cluster, and every node needs this package installed (same Python) and sees
AUDIO_DIR and IMAGES_DIR at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .errors import Spec2ImgError

log = logging.getLogger(__name__)

TASK_RETRIES = 3  # Ray's retries of a task whose worker process or node died
IN_FLIGHT_PER_CPU = 2  # queued tasks per cluster CPU: keeps workers busy without queueing millions
MAX_BATCH = 16  # clips per task, as the -j pool's chunk size
START_ATTEMPTS = 2  # a local instance on a loaded machine can miss Ray's 30 s raylet start window


# ------------------------------------------------------------------------------ the cluster
@dataclass
class RaySession:
    """A connection to Ray; ``owned`` when this process started the instance (and stops it)."""

    ray: object
    owned: bool

    @property
    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def import_ray(*, local: bool = True):
    """``import ray``, with Ray's ``uv run`` hook off (it would upload the current folder, which may
    be a data folder, to the cluster as the job's working directory). ``local``: a single-machine
    instance whose servers listen on 127.0.0.1 only (Ray otherwise binds every interface and
    advertises the machine's address); these settings are read when ray is first imported."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node address = 127.0.0.1
    try:
        import ray
    except ImportError:
        raise Spec2ImgError("--engine ray needs the ray package: pip install 'ray>=2.9' "
                            "(or use -j N for local worker processes)") from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> RaySession:
    """Join the Ray instance this process already has, the cluster at ``address``, or start a local
    one with ``num_cpus`` CPUs (all cores when None) bound to 127.0.0.1."""
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return RaySession(ray, owned=False)
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **common)
            return RaySession(ray, owned=True)
        except Exception as exc:  # Ray raises bare Exception when its raylet starts too slowly
            if ray.is_initialized():
                ray.shutdown()
            if attempt < START_ATTEMPTS and "timed out" in str(exc):
                log.warning("Ray did not start in time (%s); trying again", " ".join(str(exc).split())[:120])
                continue
            where = f"the Ray cluster at --address {address}" if address else "a local Ray instance"
            raise Spec2ImgError(f"cannot start or reach {where} ({' '.join(str(exc).split())[:200]}); "
                                "start one with `ray start --head` and pass its address, omit --address "
                                "for a local instance, or use -j N") from None
    raise AssertionError("unreachable")


def lost_error(exc: BaseException) -> str:
    """The manifest's error text for work lost with a Ray worker or node."""
    first = " ".join(str(exc).split())[:160]
    return f"lost with its Ray worker ({type(exc).__name__}: {first}); rerun to retry it"


# ------------------------------------------------------------------------------ the task
_worker_ready = False


def run_batch(task, items: list, init, cwd: str | None) -> list:
    """Runs on a Ray worker: ``init()`` once per worker process, then ``task(item)`` for each item."""
    global _worker_ready
    if not _worker_ready and init is not None:
        init()  # e.g. one BLAS/FFT thread and the heap kept between clips, as a -j worker
    _worker_ready = True
    if cwd and os.getcwd() != cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # relative AUDIO_DIR/IMAGES_DIR resolve as on the driver (same rows as -j)
    return [task(item) for item in items]


def batch_size(n_items: int, workers: int) -> int:
    """Items per task: about 8 tasks a worker, at most :data:`MAX_BATCH` (as the -j pool's chunks)."""
    return max(1, min(MAX_BATCH, n_items // (8 * workers) or 1))


class FanOut:
    """Run ``task(batch)`` over Ray for each batch, a bounded number in flight; iterate to get
    ``(batch, result, None)`` or, for work lost with its worker after Ray's retries, ``(batch, None,
    error)`` with a batch of one (a failed batch is split and retried one item per task)."""

    def __init__(self, session: RaySession, batches, submit):
        self.ray, self.session, self.submit = session.ray, session, submit
        self.waiting = deque(batches)
        self.limit = IN_FLIGHT_PER_CPU * session.cpus
        self.running: dict = {}  # ObjectRef -> batch

    def _fill(self) -> None:
        while self.waiting and len(self.running) < self.limit:
            batch = self.waiting.popleft()
            self.running[self.submit(batch)] = batch

    def __iter__(self):
        ray = self.ray
        self._fill()
        while self.running:
            done, _ = ray.wait(list(self.running), num_returns=1)
            for ref in done:
                batch = self.running.pop(ref)
                try:
                    yield batch, ray.get(ref), None
                except (ray.exceptions.RayError, OSError) as exc:  # worker/node lost after retries
                    if len(batch) > 1:
                        log.warning("a Ray task of %d items failed (%s); retrying them one by one",
                                    len(batch), type(exc).__name__)
                        self.waiting.extendleft([item] for item in reversed(batch))
                    else:
                        yield batch, None, exc
            self._fill()

    def close(self) -> None:
        """Cancel what is still queued or running; stop the instance if this process started it."""
        for ref in self.running:
            try:
                self.ray.cancel(ref, force=self.session.owned)
            except Exception:  # already finished, or its worker is gone
                pass
        self.running.clear()
        self.waiting.clear()
        self.session.close()


class RayResults:
    """Results in completion order, with ``close()``: what the -j pool gives convert(). An item
    lost with its worker after the retries yields ``lost(item, message)``."""

    def __init__(self, session: RaySession, todo: list, task, *, lost, init=None):
        ray = session.ray
        remote = ray.remote(run_batch).options(max_retries=TASK_RETRIES, retry_exceptions=False, num_cpus=1)
        task_ref, cwd = ray.put(task), os.getcwd()
        size = batch_size(len(todo), session.cpus)
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        self.lost = lost
        self.fan = FanOut(session, batches, lambda items: remote.remote(task_ref, items, init, cwd))

    def __iter__(self):
        for items, rows, exc in self.fan:
            yield from rows if exc is None else [self.lost(items[0], lost_error(exc))]

    def close(self) -> None:
        self.fan.close()


def run_jobs(todo: list, task, *, lost, init=None, jobs: int | None = None,
             address: str | None = None) -> RayResults:
    """The Ray counterpart of the -j pool in :func:`spec2img.convert.convert`: ``task(job) -> row``
    (picklable), ``lost(job, message) -> row``, ``init()`` once per worker. ``jobs``: CPUs of the
    local instance (ignored with ``address``: the cluster decides)."""
    session = connect(address, num_cpus=jobs)
    try:
        return RayResults(session, todo, task, lost=lost, init=init)
    except BaseException:
        session.close()
        raise
