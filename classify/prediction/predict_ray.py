"""``classify predict --engine ray``: the local prediction path, files fanned out over a Ray cluster.

The ONNX model(s) (``classify export RUN_DIR --onnx``) are put in Ray's object store once; each
worker process builds its onnxruntime session(s) from them the first time it needs them and keeps
them. A task predicts a batch of files with :func:`classify.prediction.predict.predict_files` (the function
the local path runs) and returns its :class:`~classify.prediction.results.PredictResult`; the driver joins the
batches in input order, so the rows are those of the local path. A file that fails gets its
failed row as locally; a batch lost with its worker or node is retried by Ray, then file by file,
and a file still lost gets a ``failed`` row naming it: the run always finishes.

No torch, no fastai: onnxruntime, numpy and spec2img on the workers, which need this package
installed and the audio at the same paths (see the README, "Beyond one machine").
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from spec2img.engine_ray import TASK_RETRIES, FanOut, connect, lost_error

from ..errors import ClassifyError
from .ensemble import expand_runs, load_scorers
from .predict import PredictConfig, find_inputs, predict_files
from .results import PredictResult
from .scorer import Scorer

log = logging.getLogger(__name__)

MAX_FILES_PER_TASK = 64


# ------------------------------------------------------------------------------ worker side
_SCORERS: dict[str, list[Scorer]] = {}  # per worker process: model digest -> scorers


def worker_scorers(key: str, model_refs: list) -> list[Scorer]:
    """The scorers of ``key``, built once per worker process from the shipped ONNX bytes."""
    if key not in _SCORERS:
        import ray

        from .onnx_predict import onnx_scorer

        folder = Path(tempfile.mkdtemp(prefix="classify-onnx-"))
        scorers = []
        for k, (name, onnx_bytes, meta_bytes) in enumerate(ray.get(model_refs)):
            path = folder / f"m{k}" / "model.onnx"
            path.parent.mkdir()
            path.write_bytes(onnx_bytes)
            path.with_name("model.onnx.json").write_bytes(meta_bytes)
            scorers.append(dataclasses.replace(onnx_scorer(path, threads=1), name=name))
        _SCORERS[key] = scorers
    return _SCORERS[key]


def predict_batch(key: str, model_refs: list, batch: list, cfg: PredictConfig) -> PredictResult:
    """Runs on a Ray worker: ``batch`` is ``[(path, status, error), ...]`` in input order."""
    scorers = worker_scorers(key, model_refs)
    refused = {i: (status, error) for i, (_, status, error) in enumerate(batch) if status != "ok"}
    return predict_files(scorers, [Path(p) for p, _, _ in batch], cfg, refused=refused)


# ------------------------------------------------------------------------------ driver side
def files_per_task(n_files: int, workers: int) -> int:
    """About 4 tasks per worker (batching windows across files), at most :data:`MAX_FILES_PER_TASK`."""
    return max(1, min(MAX_FILES_PER_TASK, -(-n_files // (4 * workers))))


def ship_models(ray, run_dirs) -> tuple[str, list]:
    """Put every ONNX model (+ its JSON) in the object store once; ``(digest, refs)``."""
    from .onnx_predict import onnx_paths

    refs, h = [], hashlib.sha256()
    for r in expand_runs(run_dirs):
        model, meta = onnx_paths(r)
        onnx_bytes, meta_bytes = model.read_bytes(), meta.read_bytes()
        h.update(onnx_bytes)
        h.update(meta_bytes)
        refs.append(ray.put((str(model), onnx_bytes, meta_bytes)))
    return h.hexdigest(), refs


def join_results(parts: list[PredictResult]) -> PredictResult:
    """Batches' results (in input order) -> one result, as one local call would give."""
    first = parts[0]
    timelines = [p.timeline_rows for p in parts if p.timeline_rows is not None]
    return dataclasses.replace(
        first,
        rows=[r for p in parts for r in p.rows],
        probs=np.concatenate([p.probs for p in parts]),
        timeline_rows=[r for t in timelines for r in t] if timelines else None,
        n_windows=sum(p.n_windows for p in parts),
        feature_seconds=sum(p.feature_seconds for p in parts),
        model_seconds=sum(p.model_seconds for p in parts),
    )


def predict_ray(run_dirs, inputs, *, top_k: int = 3, aggregate: str = "mean", tta: int = 0,
                timeline: bool = False, batch_size: int = 64, follow_symlinks: bool = False,
                address: str | None = None, jobs: int | None = None,
                files_per_batch: int | None = None) -> PredictResult:
    """:func:`classify.prediction.predict.predict` with ONNX models on Ray; see the module docstring.

    ``address``: the cluster to join, else a local instance with ``jobs`` CPUs (all cores when None);
    ``files_per_batch``: files per task (default about 4 tasks per worker, at most 64).
    """
    cfg = PredictConfig(top_k=top_k, aggregate=aggregate, tta=tta, timeline=timeline, batch_size=batch_size)
    entries = find_inputs(inputs, follow_symlinks=follow_symlinks)
    scorers = load_scorers(run_dirs, backend="onnx")  # checks the exports here, before any task runs
    items = [(str(e.path), e.status, e.error) for e in entries]
    session = connect(address, num_cpus=jobs)
    try:
        ray = session.ray
        key, refs = ship_models(ray, run_dirs)
        remote = ray.remote(predict_batch).options(max_retries=TASK_RETRIES, retry_exceptions=False, num_cpus=1)
        size = files_per_batch or files_per_task(len(items), session.cpus)
        index = {id(it): i for i, it in enumerate(items)}
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        parts: dict[int, PredictResult] = {}
        fan = FanOut(session, batches, lambda b: remote.remote(key, refs, b, cfg))
        try:
            for batch, result, exc in fan:
                if exc is not None:  # one file, lost with its worker: a failed row, as a bad file gets
                    path = batch[0][0]
                    result = predict_files(scorers, [Path(path)], cfg,
                                           refused={0: ("failed", f"{path}: {lost_error(exc)}")})
                else:  # workers' log lines stay on the workers; say here what failed
                    for _, error in result.failures:
                        log.warning("failed: %s", error)
                parts[index[id(batch[0])]] = result
        finally:
            fan.close()
    except BaseException:
        session.close()
        raise
    if not parts:
        raise ClassifyError("no audio to predict: pass audio files or folders holding them")
    return join_results([parts[i] for i in sorted(parts)])
