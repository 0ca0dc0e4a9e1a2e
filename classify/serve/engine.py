"""What ``classify serve`` computes: audio bytes -> labels, window timeline, spectrogram (ONNX only).

The engine never imports torch or fastai. Models are ONNX exports scored by onnxruntime
(:func:`classify.prediction.onnx_predict.onnx_scorer`); a run folder without ``model.onnx`` (or whose
``model.pt`` is newer) is exported once by ``classify export --onnx`` in a child process, so torch
is loaded there and leaves with it. Several runs, or the folds of a cv run, are an ensemble
combined exactly as ``classify predict`` combines them (geometric mean of probabilities).

One request = one clip: the bytes are written to a file whose name the server makes (nothing the
client sends becomes a path), cut into windows by :func:`classify.prediction.windows.file_windows` and scored
as :func:`classify.prediction.predict.predict_files` scores one file, so the numbers equal
``classify predict --onnx --timeline`` for the same audio.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from spec2img import audio
from spec2img.errors import AudioError
from spec2img.io import encode_png

from ..errors import ClassifyError, RunFolderError
from ..prediction.ensemble import check_compatible, ensemble_threshold, ensemble_unknown_threshold, expand_runs
from ..prediction.onnx_predict import onnx_paths, onnx_scorer
from ..prediction.predict import PredictConfig, score_file
from ..prediction.scorer import Scorer
from ..prediction.windows import file_windows
from ..scoring.openset import open_labels

log = logging.getLogger(__name__)

MAX_SPECTROGRAM_COLUMNS = 20000  # a long upload's picture is thinned to this many columns


class UploadError(ClassifyError):
    """A client sent something the server cannot label; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServeConfig:
    """How ``classify serve`` runs (its flags).

    ``window``/``hop``: seconds of microphone audio the live page sends, and how often.
    ``max_mb``/``max_seconds``: caps on one upload's size and duration.
    ``workers``: requests scored at the same time (the rest wait); ``threads``: onnxruntime
    intra-op threads per model call. ``unknown_threshold``: overrides the models' open-set threshold.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    window: float = 4.0
    hop: float = 1.0
    top_k: int = 5
    max_mb: float = 50.0
    max_seconds: float = 600.0
    batch_size: int = 64
    workers: int = 0  # 0: one per CPU core
    threads: int = 1
    unknown_threshold: float | None = None  # None: the models' own (openset.json)

    def __post_init__(self) -> None:
        if not 0 < self.window <= 60:
            raise ClassifyError(f"--window={self.window} must be between 0 and 60 seconds")
        if not 0 < self.hop <= self.window:
            raise ClassifyError(f"--hop={self.hop} must be > 0 and at most --window={self.window}")
        if self.top_k < 1:
            raise ClassifyError(f"--top-k={self.top_k} must be at least 1")
        if self.max_mb <= 0 or self.max_seconds <= 0:
            raise ClassifyError(f"--max-mb={self.max_mb} and --max-seconds={self.max_seconds} must be > 0")
        if self.max_seconds < self.window:
            raise ClassifyError(f"--max-seconds={self.max_seconds} must be at least --window={self.window}")
        if not 0 <= self.port < 65536:
            raise ClassifyError(f"--port={self.port} must be between 0 (any free port) and 65535")
        if self.workers < 0 or self.threads < 1 or self.batch_size < 1:
            raise ClassifyError("--workers must be >= 0, --threads and batch size >= 1")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


# ------------------------------------------------------------------------------ models
def _stale(run_dir: Path) -> bool:
    model, meta = onnx_paths(run_dir)
    if not (model.is_file() and meta.is_file()):
        return True
    pt = run_dir / "model.pt"
    return pt.is_file() and pt.stat().st_mtime > model.stat().st_mtime


def export_in_child(run_dir: Path, out: Path | None = None, *, timeout: float = 900.0) -> Path:
    """``classify export RUN_DIR --onnx [--out OUT]`` in a child process; return the .onnx path.

    torch is imported in the child only. ``out=None`` writes ``RUN_DIR/model.onnx`` (as the
    ``classify export`` default) when the folder is writable, else a file in a temporary folder.
    """
    run_dir = Path(run_dir)
    if out is None and not os.access(run_dir, os.W_OK):
        out = Path(tempfile.mkdtemp(prefix="classify-serve-onnx-")) / "model.onnx"
    cmd = [sys.executable, "-m", "classify.cli", "export", str(run_dir), "--onnx"]
    if out is not None:
        cmd += ["--out", str(out)]
    log.warning("%s: no up-to-date model.onnx; exporting it once (classify export --onnx) ...", run_dir)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFolderError(f"{run_dir}: ONNX export took over {timeout:.0f} s; run classify export "
                             f"{run_dir} --onnx yourself, then serve the .onnx") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunFolderError(f"{run_dir}: ONNX export failed ({last}); run classify export {run_dir} "
                             "--onnx to see why")
    path = out if out is not None else run_dir / "model.onnx"
    log.warning("exported %s in %.1f s", path, time.perf_counter() - t0)
    return path


def resolve_models(paths: list[Path]) -> list[Path]:
    """``.onnx`` files for run folders, cv run folders and ``.onnx`` paths (exporting when needed)."""
    out = []
    for r in expand_runs([Path(p) for p in paths]):
        if r.suffix == ".onnx":
            if not r.is_file():
                raise RunFolderError(f"{r}: no such ONNX model; pass a run folder or a classify export")
            out.append(r)
        elif r.is_dir() and ((r / "model.json").is_file() or (r / "model.onnx").is_file()):
            out.append(export_in_child(r) if _stale(r) else onnx_paths(r)[0])
        else:
            raise RunFolderError(f"{r}: not a run folder (no model.json or model.onnx) nor an .onnx file; "
                                 "pass the --out folder of classify fit/cv or a classify export")
    return out


# ------------------------------------------------------------------------------ the engine
class Engine:
    """Scores uploads with a list of ONNX :class:`Scorer` s (an ensemble when several)."""

    def __init__(self, scorers: list[Scorer], config: ServeConfig | None = None):
        self.config = config or ServeConfig()
        self.scorers: list[Scorer] = []
        self.classes: list[str] = []
        self.teach = None  # teach mode's description (a callable), set by classify.teach
        if scorers:
            self.swap(scorers)
        self._slots = threading.BoundedSemaphore(self.config.n_workers)
        self._tmp = Path(tempfile.mkdtemp(prefix="classify-serve-"))
        self._count = threading.Lock()
        self.requests = 0  # clips labelled

    def swap(self, scorers: list[Scorer]) -> None:
        """Serve ``scorers`` from the next request on (teach mode swaps in each newly trained model)."""
        check_compatible(scorers)
        groups = {(s.spectrogram, s.crop_width) for s in scorers}
        if len(groups) > 1:
            raise ClassifyError("the served runs need the same spectrogram settings and crop width (their "
                                "windows differ); serve them separately")
        first = scorers[0]
        self.spectrogram = first.spectrogram
        self.crop_width = first.crop_width
        self.multi_label = first.multi_label
        self.threshold = ensemble_threshold(scorers)
        self.unknown_threshold = ensemble_unknown_threshold(scorers, self.config.unknown_threshold)
        self.classes = list(first.classes)
        self.scorers = scorers
        # one assignment: a request that started before a swap finishes with the models it began with
        self.live = (scorers, self.classes, self.unknown_threshold, self.threshold)

    @classmethod
    def load(cls, paths: list[Path], config: ServeConfig | None = None) -> Engine:
        config = config or ServeConfig()
        return cls([onnx_scorer(p, threads=config.threads) for p in resolve_models(paths)], config)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -------------------------------------------------------------- description
    @property
    def model_window_seconds(self) -> float:
        return (self.crop_width - 1) * self.spectrogram.hop_length / self.spectrogram.sr

    def describe(self) -> dict:
        """``GET /api/model``."""
        c = self.config
        teach = self.teach() if self.teach is not None else None
        if not self.scorers:
            return {"classes": [], "n_models": 0, "teach": teach, "live": {"window": c.window, "hop": c.hop},
                    "limits": {"max_bytes": c.max_bytes, "max_seconds": c.max_seconds}, "top_k": c.top_k}
        return {
            "teach": teach, "unknown_threshold": self.unknown_threshold,
            "classes": self.classes, "multi_label": self.multi_label, "threshold": self.threshold,
            "models": [Path(s.name).parent.name + "/" + Path(s.name).name for s in self.scorers],
            "n_models": len(self.scorers), "crop_width": self.crop_width,
            "model_window_seconds": round(self.model_window_seconds, 4),
            "seconds_per_column": self.spectrogram.hop_length / self.spectrogram.sr,
            "spectrogram": self.spectrogram.to_dict(),
            "live": {"window": c.window, "hop": c.hop},
            "limits": {"max_bytes": c.max_bytes, "max_seconds": c.max_seconds},
            "top_k": c.top_k,
        }

    # -------------------------------------------------------------- scoring
    def score_file(self, path: Path, scorers: list[Scorer] | None = None) -> tuple:
        """``(FileWindows, window probabilities (n_windows, K), file probabilities (K,))`` for one
        file, by :func:`classify.prediction.predict.score_file` (tta 0, mean aggregate), as
        ``classify predict`` scores it."""
        scorers = scorers or self.scorers
        w = file_windows(path, scorers[0].spectrogram, scorers[0].crop_width)
        win_p, file_p = score_file(scorers, w, PredictConfig(batch_size=self.config.batch_size))
        return w, win_p, file_p

    def predict_bytes(self, data: bytes, *, top_k: int | None = None, timeline: bool = True,
                      spectrogram: bool = True) -> dict:
        """``POST /api/predict``: label one clip given as the bytes of an audio file.

        Raises :class:`UploadError` (with an HTTP status) for anything the client got wrong."""
        c = self.config
        if not self.scorers:
            raise UploadError("no model yet: teach at least two classes and press Train", 409)
        if not data:
            raise UploadError("the upload is empty (0 bytes); send the bytes of an audio file "
                              "(WAV, FLAC, OGG, MP3, AIFF)", 400)
        if len(data) > c.max_bytes:
            raise UploadError(f"the upload is {len(data) / 2**20:.1f} MB; this server takes at most "
                              f"{c.max_mb:g} MB (classify serve --max-mb)", 413)
        t0 = time.perf_counter()
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".audio")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            with self._slots:
                out = self._predict_path(path, top_k=top_k or c.top_k, timeline=timeline,
                                         spectrogram=spectrogram)
        except AudioError as exc:
            raise UploadError(str(exc).replace(str(path), "the upload"), 422) from None
        finally:
            path.unlink(missing_ok=True)
        with self._count:
            self.requests += 1
        out["elapsed_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return out

    def _predict_path(self, path: Path, *, top_k: int, timeline: bool, spectrogram: bool) -> dict:
        info = audio.probe(path)
        if info.duration > self.config.max_seconds:
            raise UploadError(f"the upload is {info.duration:.1f} s long; this server takes at most "
                              f"{self.config.max_seconds:g} s (classify serve --max-seconds); cut it shorter", 413)
        check_decodes(path, info)
        scorers, classes, unknown, threshold = self.live
        multi = scorers[0].multi_label
        w, win_p, file_p = self.score_file(path, scorers)
        order = np.argsort(-file_p, kind="stable")[:min(top_k, len(classes))]
        (label,), (score,) = open_labels(file_p[None], classes, unknown)
        win_labels, _ = open_labels(win_p, classes, unknown)
        out: dict = {
            "label": label, "score": float(score), "unknown": label == "unknown", "unknown_threshold": unknown,
            "duration": round(info.duration, 4), "sample_rate": info.samplerate, "channels": info.channels,
            "windows": len(w.start),
            "labels": [{"label": classes[j], "prob": float(file_p[j])} for j in order],
            "probs": {c: float(v) for c, v in zip(classes, file_p)},
        }
        if multi:
            out["above_threshold"] = [c for c, v in zip(classes, file_p) if v >= threshold]
        if timeline:
            top = win_p.argmax(1)
            out["timeline"] = [
                {"start": round(float(s), 3), "end": round(float(e), 3), "label": classes[j],
                 "open_label": ol, "prob": float(p[j]), "probs": [float(v) for v in p],
                 **({"above_threshold": [c for c, v in zip(classes, p) if v >= threshold]}
                    if multi else {})}
                for s, e, j, p, ol in zip(w.start, w.end, top, win_p, win_labels)]
        if spectrogram:
            out["spectrogram"] = self.picture(w)
        return out

    def picture(self, w) -> dict:
        """The pixels the model was fed, window by window, pasted at their time (PNG, base64)."""
        cfg = self.spectrogram
        imgs = w.images  # (n, C, H, W) uint8, exactly what the scorers received
        cols = np.round(w.start * cfg.sr / cfg.hop_length).astype(int)
        width = int(max(cols + imgs.shape[-1]))
        canvas = np.zeros(imgs.shape[1:3] + (width,), dtype=np.uint8)
        for c0, img in zip(cols, imgs):
            canvas[..., c0:c0 + img.shape[-1]] = img
        step = max(1, -(-width // MAX_SPECTROGRAM_COLUMNS))
        canvas = canvas[..., ::step]
        img = canvas[0] if canvas.shape[0] == 1 else np.moveaxis(canvas[:3], 0, -1)
        return {"png": base64.b64encode(encode_png(np.ascontiguousarray(img))).decode("ascii"),
                "width": int(img.shape[1]), "height": int(img.shape[0]), "step": step,
                "seconds_per_column": step * cfg.hop_length / cfg.sr,
                "window_columns": self.crop_width}


def check_decodes(path: Path, info) -> None:
    """Reject an upload whose samples stop before its header says (a truncated file)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            tail = max(0, info.frames - 1)
            fh.seek(tail)
            got = len(fh.read(1, dtype="float32", always_2d=True))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        got = 0
        log.debug("seek/read failed: %s", exc)
    if got == 0 or _wav_short(path):
        raise UploadError(f"the upload is truncated: its header promises {info.duration:.2f} s of audio but "
                          "the samples stop early; send the whole file", 422)


def _wav_short(path: Path) -> bool:
    """A RIFF/WAVE file whose ``data`` chunk declares more bytes than the file holds (libsndfile
    quietly decodes the part that is there)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            n = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                return n != 0xFFFFFFFF and pos + 8 + n > size
            pos += 8 + n + (n & 1)
    return False
