"""A trained run as a Python object: :class:`Run` (``classify.load(run_dir)``, or what
``classify.fit`` / ``classify.cv`` return) and the functions behind ``classify predict`` and
``classify export`` (:func:`predict`, :func:`export`). Loading a run reads no weights and imports
no torch; predicting, exporting and the report load what they need when called.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ClassifyError
from .runfolder import check_run_path, fold_dirs, read_json, read_table

#: What :meth:`Run.predict` takes: audio files or folders, sample arrays, or a list mixing them.
AudioInputs = str | Path | np.ndarray | Sequence[str | Path | np.ndarray]

if TYPE_CHECKING:
    import pandas as pd

    from .config import TrainConfig
    from .prediction.results import PredictResult
    from .runfolder import RunInfo


@dataclass(frozen=True)
class Run:
    """A run folder written by ``classify fit`` or ``classify cv`` (contract in ARCHITECTURE.md).

    Attributes:
        path: the run folder.

    Files are read when a property is first asked for, through the run folder's typed readers
    (:mod:`classify.runfolder`); a cv run's folds are :attr:`folds`.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def is_cv(self) -> bool:
        """Whether this is a cv run folder (``fold_<k>/`` runs and out-of-fold predictions)."""
        return not (self.path / "model.json").is_file() and bool(fold_dirs(self.path))

    @property
    def folds(self) -> list[Run]:
        """The fold runs of a cv run, in fold order (``[]`` for a single fit)."""
        return [Run(p) for p in fold_dirs(self.path)] if self.is_cv else []

    def _first(self) -> Path:
        return self.folds[0].path if self.is_cv else self.path

    @property
    def classes(self) -> list[str]:
        """Class names in the model's output order (``classes.json``)."""
        from .runfolder import check_class_list

        path = self._first() / "classes.json"
        return check_class_list(path, read_json(path))

    @property
    def metrics(self) -> dict:
        """``metrics.json`` of a fit (validation scores per clip, ``per_image``, protocol, timings),
        or ``cv_metrics.json`` of a cv run (``headline``, ``oof``, ``folds``, ``mean``, ``std``)."""
        return read_json(self.path / ("cv_metrics.json" if self.is_cv else "metrics.json"), {}) or {}

    @property
    def config(self) -> TrainConfig:
        """The training config the run was made with (``train.json``; a cv run: its first fold's)."""
        from .config import TrainConfig

        return TrainConfig.load(self._first())

    @property
    def info(self) -> RunInfo:
        """Every settings file of the run checked and typed (:func:`classify.runfolder.read_info`;
        a cv run: its first fold's)."""
        from .runfolder import read_info

        return read_info(self._first())

    @property
    def history(self) -> pd.DataFrame | None:
        """``history.csv``: one row per epoch (``train_loss``, ``valid_loss``, the metric, ``phase``)."""
        return read_table(self._first() / "history.csv")

    @property
    def predictions(self) -> pd.DataFrame | None:
        """Validation predictions: ``valid_predictions.csv`` (``oof_predictions.csv`` for a cv
        run): ``image, source, offset, labels, pred, loss, p_<class>...``, one row per image."""
        return read_table(self.path / ("oof_predictions.csv" if self.is_cv else "valid_predictions.csv"))

    def predict(self, inputs: AudioInputs, *, sr: int | None = None, top_k: int = 3, aggregate: str = "mean",
                tta: int = 0, batch_size: int = 64, onnx: bool = False,
                unknown_threshold: float | None = None) -> pd.DataFrame:
        """Label audio with this run (a cv run: the geometric mean of its folds), as ``classify predict``.

        Args:
            inputs: an audio file or folder, a list of them, or audio arrays: a float array
                ``[shape=(n_samples,)]`` or ``[shape=(n_samples, channels)]`` at ``sr`` Hz, or a
                list of such arrays (files and arrays can be mixed).
            sr: sample rate of the arrays, Hz (required with arrays).
            top_k: labels per row.
            aggregate: ``mean`` or ``max`` of a file's window probabilities.
            tta: extra shifted crops per window.
            batch_size: windows per model call.
            onnx: score with the ONNX export (``model.onnx``, from :meth:`export_onnx`) instead of torch.
            unknown_threshold: a top probability below it labels the row ``unknown`` (default: the
                run's own, ``openset.json``, when it has one; 0: never).

        Returns:
            One row per input, in order: ``file`` (``<array i>`` for arrays), ``label_1``,
            ``prob_1``, ... (multi-label runs: ``labels`` and a ``p_<class>`` column per class),
            ``status`` (``ok``/``failed``), ``error``.
        """
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        with tempfile.TemporaryDirectory(prefix="classify-predict-") as tmp:
            paths, names = [], {}
            for i, item in enumerate(items):
                if isinstance(item, np.ndarray):
                    paths.append(_array_wav(item, sr, Path(tmp) / f"array_{i}.wav"))
                    names[len(paths) - 1] = f"<array {i}>"
                else:
                    paths.append(Path(item))
            result = predict([self.path], paths, top_k=top_k, aggregate=aggregate, tta=tta,
                             batch_size=batch_size, backend="onnx" if onnx else "torch",
                             unknown_threshold=unknown_threshold)
        table = result.table
        for row, name in names.items():
            table.loc[row, "file"] = name
        return table

    def report(self, *, out: str | Path | None = None, images_dir: str | Path | None = None,
               audio_dir: str | Path | None = None, **options: Any) -> Path:
        """Write the HTML report (``classify report``); returns ``report/index.html``.

        Args:
            out: output folder (default ``RUN_DIR/report``).
            images_dir: the spec2img images folder, if not where ``train.json`` says.
            audio_dir: the audio folder the manifest's sources are relative to.
            **options: ``worst`` (worst items listed, default 50), ``max_per_cell`` (12),
                ``audio`` (``copy``/``link``/``none``), ``max_audio_mb`` (100 MB), ``tsne``
                (True), ``force`` (False): :class:`classify.report.ReportConfig`'s fields, named
                like the ``classify report`` flags.

        Show it in a notebook with ``IPython.display.IFrame(path, width, height)``.
        """
        import dataclasses

        from .options import check_names
        from .report import ReportConfig, build_report

        check_run_path(self.path, onnx_ok=False)
        if "worst" in options:
            options["top_n"] = options.pop("worst")
        check_names(options, [f.name for f in dataclasses.fields(ReportConfig)], "Run.report")
        return build_report(self.path, out_dir=out, images_dir=images_dir, audio_dir=audio_dir,
                            config=ReportConfig(**options))

    def export_onnx(self, out: str | Path | None = None) -> Path:
        """Export the model to ONNX (``classify export``): ``model.onnx`` (default in the run
        folder) and ``model.onnx.json`` (classes and settings); returns the ``.onnx`` path. A cv
        run exports every fold into its own folder and returns the cv folder (which ``predict``
        with ``onnx=True`` and ``classify serve`` take as it is)."""
        paths = export(self.path, out)
        return self.path if self.is_cv else paths[0]


def load(run_dir: str | Path) -> Run:
    """Load the run in a fit or cv run folder as a Run.

    Raises:
        RunFolderError: no such folder, or no ``model.json`` in it or its ``fold_*`` folders.
    """
    return Run(check_run_path(Path(run_dir), onnx_ok=False))


def predict(runs: str | Path | Sequence[str | Path], inputs: str | Path | Sequence[str | Path], *, top_k: int = 3, aggregate: str = "mean", tta: int = 0, timeline: bool = False,
            batch_size: int = 64, backend: str = "torch", follow_symlinks: bool = False,
            engine: str = "local", address: str | None = None,
            unknown_threshold: float | None = None) -> PredictResult:
    """Label audio files with one run or an ensemble of runs, as classify predict does.

    ``runs``: run folders, cv run folders or ``.onnx`` exports (several: the geometric mean of
    their probabilities); ``inputs``: files and folders.

    Args:
        runs: a run folder or ``.onnx`` file, or a list of them.
        inputs: audio files and/or folders (searched recursively).
        top_k: labels per file.
        aggregate: ``mean`` or ``max`` of a file's window probabilities.
        tta: extra shifted crops per window.
        timeline: also score every window (``result.timeline``: ``start``/``end`` in s).
        batch_size: windows per model call.
        backend: ``torch`` (``model.pt``) or ``onnx`` (``model.onnx``; also for ``.onnx`` paths).
        follow_symlinks: also read links leading out of a given folder.
        engine: ``local`` or ``ray`` (batches of files on a Ray cluster at ``address``; ONNX).
        unknown_threshold: label a file ``unknown`` when its top probability is below it (default:
            the runs' own, ``openset.json``; 0: never). Local engine only.

    Returns:
        :class:`classify.prediction.results.PredictResult`: ``table`` (one row per file),
        ``probs`` ``[shape=(n_files, n_classes)]``, ``failures``, ``timeline``.
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    for r in runs:
        check_run_path(r)
    if address and engine != "ray":
        raise ClassifyError(f"--address {address} needs --engine ray")
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if engine == "ray":  # the same rows, batches of files on a Ray cluster (ONNX export)
        from .prediction.predict_ray import predict_ray

        return predict_ray(runs, inputs, address=address, top_k=top_k, aggregate=aggregate, tta=tta,
                           timeline=timeline, batch_size=batch_size, follow_symlinks=follow_symlinks)
    from .prediction.predict import predict as run_predict

    if any(Path(r).suffix == ".onnx" for r in runs):
        backend = "onnx"
    return run_predict(runs, inputs, top_k=top_k, aggregate=aggregate, tta=tta, timeline=timeline,
                       batch_size=batch_size, backend=backend, follow_symlinks=follow_symlinks,
                       unknown_threshold=unknown_threshold)


def export(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Export a run (every fold of a cv run) to ONNX, as classify export does.

    Returns the ``.onnx`` files written (each with its ``.onnx.json``)."""
    check_run_path(Path(run_dir), onnx_ok=False)  # one line, before torch loads
    from .prediction.export import export_runs

    return export_runs(Path(run_dir), None if out is None else Path(out))


def _array_wav(y: np.ndarray, sr: int | None, path: Path) -> Path:
    """Audio samples ``y`` ``[shape=(n,) or (n, channels)]`` at ``sr`` Hz as a float WAV at ``path``."""
    import soundfile as sf

    if sr is None or int(sr) <= 0:
        raise ClassifyError("predicting audio arrays needs their sample rate: pass sr=<Hz>")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise ClassifyError(f"an audio array must be (n_samples,) or (n_samples, channels); got shape {y.shape}")
    sf.write(path, y, int(sr), subtype="FLOAT")
    return path
