"""Reading audio: any format libsndfile decodes, any rate, bit depth and channel count.

Everything comes back as mono float32 at the requested rate, checked for the problems that break
spectrograms (empty, NaN/Inf, silent), with errors that name the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .paths import AUDIO_EXTENSIONS, regular_file_error, walk_audio

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-6  # about -120 dBFS: below this a clip has nothing to draw
# A multichannel mix this far (60 dB) below its loudest channel means the channels cancel
# (antiphase stereo): the mix would be "silent", so one channel is used instead.
CANCEL_RATIO = 1e-3
# Integer PCM is read as integers and scaled here: libsndfile's own int-to-float conversion costs
# 3.5x more (0.54 against 0.16 ms for a 5 s 16-bit clip) and gives the same values.
_INT_READ = {"PCM_S8": ("int16", 2.0**-15), "PCM_U8": ("int16", 2.0**-15), "PCM_16": ("int16", 2.0**-15),
             "PCM_24": ("int32", 2.0**-31), "PCM_32": ("int32", 2.0**-31)}


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says: native rate (Hz), channels, length in frames and seconds."""

    path: Path
    samplerate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


def probe(path: Path) -> AudioInfo:
    """Read the header of ``path`` without decoding samples."""
    path = Path(path)
    _check_regular(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(_unreadable(path, exc)) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: holds no samples (zero-length audio); record or export it again")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype)


def load(
    path: Path,
    *,
    sr: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    check: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` [offset, offset + duration) seconds, mix to mono, resample to ``sr``.

    Returns ``(y, sr)`` with ``y`` float32 [shape=(n,)], full scale +-1. Only the requested part of
    the file is read, so tiles of an hour-long recording stay small. ``sr=None`` keeps the native
    rate. With ``check`` the signal is rejected when empty, non-finite or silent.
    """
    path = Path(path)
    _check_regular(path)
    try:
        with sf.SoundFile(str(path)) as fh:
            native = int(fh.samplerate)
            start = int(round(offset * native))
            stop = fh.frames if duration is None else min(fh.frames, start + int(round(duration * native)))
            if start:
                fh.seek(min(start, fh.frames))
            dtype, scale = _INT_READ.get(fh.subtype, ("float32", 1.0))
            data = fh.read(max(0, stop - start), dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(_unreadable(path, exc)) from None
    y = _mono(data, path) if data.shape[1] > 1 else data[:, 0]
    if scale != 1.0:
        y = np.multiply(y, np.float32(scale), dtype=np.float32)
    if check:
        check_signal(y, path)
    if sr is not None and sr != native:
        y = resample(y, orig_sr=native, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32), (native if sr is None else sr)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with soxr at high quality (librosa's default resampler)."""
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def check_signal(y: np.ndarray, path: Path) -> None:
    """Raise :class:`AudioError` when ``y`` cannot make a meaningful spectrogram."""
    if y.size == 0:
        raise AudioError(f"{path}: holds no samples (zero-length audio); record or export it again")
    lo, hi = float(y.min()), float(y.max())  # NaN and +-inf surface here; no temporaries
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int((~np.isfinite(y)).sum())
        raise AudioError(
            f"{path}: {bad} of {y.size} samples are NaN or infinite; re-export it as integer PCM"
        )
    if max(-lo, hi) < SILENCE_PEAK:
        raise AudioError(f"{path}: is silent (peak below -120 dBFS); nothing to draw, remove it")


def find_audio(folder: Path, *, follow_symlinks: bool = False) -> list[Path]:
    """The readable audio files under ``folder``, recursively, sorted (the ``ok`` entries of
    :func:`spec2img.paths.walk_audio`; see there for links, hidden and special files)."""
    return [e.path for e in walk_audio(folder, follow_symlinks=follow_symlinks) if e.ok]


_warned: set[str] = set()


def _mono(data: np.ndarray, path: Path) -> np.ndarray:
    """Mix ``data`` [shape=(n, channels)] to mono; when the channels cancel (antiphase stereo),
    the loudest channel instead, with a warning (once per file)."""
    y = data.mean(axis=1, dtype=np.float32)
    peak_mix = float(np.abs(y).max(initial=0))
    peaks = np.maximum(data.max(axis=0).astype(np.float64), -data.min(axis=0).astype(np.float64))
    scale = 1.0 if data.dtype.kind == "f" else float(np.iinfo(data.dtype).max)
    loud = int(peaks.argmax())
    if peaks[loud] / scale >= SILENCE_PEAK * 10 and peak_mix < CANCEL_RATIO * peaks[loud]:
        if str(path) not in _warned:
            _warned.add(str(path))
            log.warning("%s: the channels cancel when mixed (antiphase stereo); using channel %d alone",
                        path, loud + 1)
        return data[:, loud].astype(np.float32)
    return y


def _check_regular(path: Path) -> None:
    """Never hand libsndfile a FIFO, device or folder (opening a FIFO blocks forever)."""
    bad = regular_file_error(path)
    if bad:
        raise AudioError(bad)


def _unreadable(path: Path, exc: Exception) -> str:
    bad = regular_file_error(path)
    if bad:
        return bad
    if path.stat().st_size == 0:
        return f"{path}: empty file (0 bytes); record or export it again"
    reason = str(exc).split(":")[-1].strip().rstrip(".") or type(exc).__name__
    return (
        f"{path}: not audio that libsndfile can decode ({reason}); "
        "convert it to WAV, FLAC, OGG, MP3 or AIFF"
    )
