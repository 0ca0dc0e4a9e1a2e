"""Pure feature computation: audio samples in, feature planes out. No files, no images.

Shapes follow librosa: a spectrogram is ``(n_bins, t)`` with ``t`` frames; :func:`feature_planes`
returns ``(channels, n_rows, t)``.

Numerics match librosa (``stft``, ``filters.mel``, ``power_to_db``, ``feature.mfcc``,
``feature.delta``; tests use it as the oracle, images agree within one grey level) but this module
never imports librosa: librosa's ``util`` module JIT-compiles numba ufuncs when it is imported, which
costs every fresh process 2 s with a warm numba cache and ~15 s with a cold or unwritable one
(a new venv, a read-only install, a container). Here a clip is framed with a strided view,
windowed and transformed in float32 with ``scipy.fft`` (single thread) a block of frames at a time,
and projected onto cached, banded mel filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import scipy.fft

from .config import SpectrogramConfig
from .errors import AudioError


@lru_cache(maxsize=16)
def window_function(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """Analysis window [shape=(n_fft,)], float64, zero-padded to n_fft and centred, as librosa does.

    ``hann`` is the periodic Hann (librosa/scipy default); ``hann_symmetric`` the symmetric one
    (``torch.hann_window(periodic=False)``, as EfficientAT uses); other names go to
    ``scipy.signal.get_window(name, win_length, fftbins=True)``.
    """
    if name == "hann":
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    elif name == "hann_symmetric":
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / max(win_length - 1, 1))
    else:
        import scipy.signal  # 1-2 s to import; only for unusual windows

        win = scipy.signal.get_window(name, win_length, fftbins=True)
    lpad = (n_fft - win_length) // 2
    return np.pad(np.asarray(win, dtype=np.float64), (lpad, n_fft - win_length - lpad))


# Slaney's auditory-toolbox mel scale (librosa's default, htk=False): linear below 1 kHz, log above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Hz -> Slaney mel (``librosa.hz_to_mel(htk=False)``), float64."""
    f = np.asarray(frequencies, dtype=np.float64)
    mels = f / _F_SP
    log_t = f >= _MIN_LOG_HZ
    return np.where(log_t, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Slaney mel -> Hz (``librosa.mel_to_hz(htk=False)``), float64."""
    m = np.asarray(mels, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def slaney_mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters [shape=(n_mels, 1 + n_fft // 2)], float32,
    the same matrix as ``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=)``."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


@lru_cache(maxsize=16)
def mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, mel_scale: str) -> np.ndarray:
    """Mel filterbank [shape=(n_mels, 1 + n_fft // 2)], float32, cached per parameter set."""
    if mel_scale == "kaldi":
        return kaldi_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return slaney_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


# Frames are transformed and projected in blocks of this many: every temporary stays in the
# L2 cache and below glibc's mmap threshold, so a clip costs no page faults (whole-clip arrays
# of 3.5 MB made the STFT 2-3x slower than its arithmetic, and two workers fought for memory).
BLOCK_FRAMES = 32
# Mel bands are projected in groups of this many, each over the FFT bins its filters touch.
BAND_GROUP = 16


@lru_cache(maxsize=16)
def _band_groups(**kwargs) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The filterbank cut into groups of :data:`BAND_GROUP` consecutive bands.

    Each group is ``(m0, m1, lo, hi, w)``: bands ``m0:m1`` are zero outside FFT bins ``lo:hi``,
    and ``w`` [shape=(2 * (hi - lo), m1 - m0)] is their weights with every row repeated, so that
    ``squares[:, 2 lo:2 hi] @ w`` projects the interleaved (re**2, im**2) of a complex spectrum
    straight onto the bands. Triangular filters touch few bins, so this is far fewer
    multiply-adds than a dense projection (default bands: 13% of the dense work), with the same
    float32 result up to rounding.
    """
    fb = mel_filters(**kwargs)
    groups = []
    for m0 in range(0, fb.shape[0], BAND_GROUP):
        block = fb[m0 : m0 + BAND_GROUP]
        touched = np.flatnonzero(block.any(axis=0))
        lo, hi = (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, 1)
        w = np.repeat(np.ascontiguousarray(block[:, lo:hi].T), 2, axis=0)
        groups.append((m0, m0 + block.shape[0], lo, hi, w))
    return tuple(groups)


def kaldi_mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi-style triangular mel filters (mel = 1127 ln(1 + f / 700)), unnormalised.

    Triangles are evaluated on the mel value of each FFT bin centre; the Nyquist bin gets zero
    weight (torchaudio's ``kaldi.get_mel_banks`` plus a zero column, as EfficientAT builds it).
    """

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    n_bins = n_fft // 2
    bin_mel = mel(np.arange(n_bins) * sr / n_fft)
    edges = mel(fmin) + np.arange(n_mels + 2) * (mel(fmax) - mel(fmin)) / (n_mels + 1)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bin_mel - left) / (centre - left)
    down = (right - bin_mel) / (right - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    return np.pad(fb, ((0, 0), (0, 1))).astype(np.float32)


def preemphasize(y: np.ndarray, *, coef: float) -> np.ndarray:
    """``y[n] - coef * y[n - 1]`` for n >= 1 (one sample shorter, like a valid-mode convolution)."""
    return (y[1:] - coef * y[:-1]).astype(np.float32, copy=False)


@lru_cache(maxsize=16)
def _window32(name: str, win_length: int, n_fft: int) -> np.ndarray:
    return window_function(name, win_length, n_fft).astype(np.float32)


def stft_frames(y: np.ndarray, *, n_fft: int, hop_length: int, center: bool,
                pad_mode: str = "constant") -> np.ndarray:
    """Read-only strided view of ``y``'s frames [shape=(t, n_fft)]; ``center`` pads ``n_fft // 2``
    samples at both ends, with zeros (``pad_mode="constant"``, librosa's default) or mirrored
    samples (``"reflect"``, torch.stft's default)."""
    if center:
        y = np.pad(y, n_fft // 2, mode=pad_mode)
    return np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]


def stft_power_blocks(
    y: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None, window: str, center: bool,
    pad_mode: str = "constant",
) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
    """The one STFT: ``(t, blocks)``, ``t`` frames and an iterator of ``(start, sq)`` over
    :data:`BLOCK_FRAMES` frames at a time.

    ``sq`` [shape=(n, 2 * (1 + n_fft // 2))] float32 holds the squared real and imaginary parts of
    each windowed frame's ``rfft``, interleaved (``re0**2, im0**2, re1**2, ...``); it is a buffer
    the next block overwrites. Framing and scaling as ``librosa.stft`` (see :func:`stft_frames`).
    """
    win = _window32(window, win_length or n_fft, n_fft)
    frames = stft_frames(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop_length, center=center,
                         pad_mode=pad_mode)
    t = frames.shape[0]

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        windowed = np.empty((BLOCK_FRAMES, n_fft), dtype=np.float32)
        squares = np.empty((BLOCK_FRAMES, 2 * (1 + n_fft // 2)), dtype=np.float32)
        for start in range(0, t, BLOCK_FRAMES):
            n = min(BLOCK_FRAMES, t - start)
            np.multiply(frames[start : start + n], win, out=windowed[:n])
            spec = scipy.fft.rfft(windowed[:n], axis=-1, workers=1)
            np.square(spec.view(np.float32), out=squares[:n])
            yield start, squares[:n]

    return t, blocks()


def power_spectrogram(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    window: str,
    center: bool,
    pad_mode: str = "constant",
) -> np.ndarray:
    """``|STFT(y)|**2`` [shape=(1 + n_fft // 2, t)], float32 (``librosa.stft`` framing and scaling).

    With ``center`` the ends are padded by ``n_fft // 2``: zeros for ``pad_mode="constant"``
    (librosa's default), mirrored samples for ``"reflect"`` (torch.stft's default). The same
    blocks :func:`mel_power` projects (:func:`stft_power_blocks`), summed per bin.
    """
    t, blocks = stft_power_blocks(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                                  center=center, pad_mode=pad_mode)
    out = np.empty((t, 1 + n_fft // 2), dtype=np.float32)
    for start, sq in blocks:
        np.add(sq[:, 0::2], sq[:, 1::2], out=out[start : start + len(sq)])
    return np.ascontiguousarray(out.T)


def mel_power(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Mel power spectrogram [shape=(n_mels, t)] of ``y`` sampled at ``cfg.sr``, float32.

    ``mel_filters @ |STFT(y)|**2``, computed :data:`BLOCK_FRAMES` frames at a time
    (:func:`stft_power_blocks`) into one output array (see :func:`_band_groups` for the projection).
    """
    if cfg.preemphasis:
        y = preemphasize(y, coef=cfg.preemphasis)
    n_fft = cfg.n_fft
    t, blocks = stft_power_blocks(y, n_fft=n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                                  window=cfg.window, center=cfg.center, pad_mode=cfg.pad_mode)
    groups = _band_groups(sr=cfg.sr, n_fft=n_fft, n_mels=cfg.n_mels, fmin=float(cfg.fmin),
                          fmax=cfg.fmax_hz, mel_scale=cfg.mel_scale)
    out = np.empty((t, cfg.n_mels), dtype=np.float32)
    for start, sq in blocks:
        for m0, m1, lo, hi, w in groups:
            np.matmul(sq[:, 2 * lo : 2 * hi], w, out=out[start : start + len(sq), m0:m1])
    return np.ascontiguousarray(out.T)


def power_to_db(S: np.ndarray, *, ref: float | None = None, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(amin, S) / max(amin, ref))`` floored at ``max - top_db``, as
    ``librosa.power_to_db``; ``ref=None`` means ``np.max(S)`` (librosa's ``ref=np.max``)."""
    S = np.asarray(S)
    ref_value = np.max(S) if ref is None else ref
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(np.maximum(amin, ref_value))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


def log_scale(M: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Log compression of a power spectrogram, in the config's units.

    ``scale="db"``: ``power_to_db(M, ref=max, amin, top_db)``, dB re the loudest bin.
    ``scale="ln"``: ``(ln(M + amin) + ln_offset) / ln_divisor`` (absolute; EfficientAT's scaling).
    """
    if cfg.scale == "ln":
        return ((np.log(M + cfg.amin) + cfg.ln_offset) / cfg.ln_divisor).astype(np.float32)
    if not np.any(M > cfg.amin):  # digital silence (a silent tile): the floor, not 0 dB everywhere
        return np.full(M.shape, -cfg.top_db, dtype=np.float32)
    return power_to_db(M, amin=cfg.amin, top_db=cfg.top_db).astype(np.float32, copy=False)


def log_mel(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Log-mel spectrogram [shape=(n_mels, t)] of ``y`` (float32 at ``cfg.sr``)."""
    return log_scale(mel_power(y, cfg), cfg)


def mfcc(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """MFCCs [shape=(n_mfcc, t)]: DCT-II (ortho) of the log-mel, as ``librosa.feature.mfcc``."""
    return scipy.fft.dct(log_mel(y, cfg), axis=-2, type=2, norm="ortho")[: cfg.n_mfcc].astype(np.float32)


def delta(data: np.ndarray, *, width: int = 9, order: int = 1) -> np.ndarray:
    """Savitzky-Golay time derivative along the last axis, as
    ``librosa.feature.delta(data, width=, order=, mode="nearest")``."""
    import scipy.signal

    return scipy.signal.savgol_filter(data, width, polyorder=order, deriv=order, axis=-1, mode="nearest")


def min_samples(cfg: SpectrogramConfig) -> int:
    """Fewest samples (at ``cfg.sr``) that fill one analysis window."""
    return (cfg.win_length or cfg.n_fft) + (1 if cfg.preemphasis else 0)


def feature_planes(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Feature planes [shape=(channels, n_rows, t)] in the config's units.

    ``mode="deltas"`` stacks the feature with its first and second time derivatives
    (``librosa.feature.delta``, width 9, per frame); the other modes have one plane.
    """
    if y.size < min_samples(cfg):
        ms = 1000 * min_samples(cfg) / cfg.sr
        raise AudioError(
            f"is shorter than one analysis window ({1000 * y.size / cfg.sr:.1f} ms < {ms:.1f} ms); "
            "pass --duration SECONDS to pad short clips"
        )
    plane = mfcc(y, cfg) if cfg.feature == "mfcc" else log_mel(y, cfg)
    if cfg.mode != "deltas":
        return plane[None]
    width = min(9, plane.shape[1] - (1 - plane.shape[1] % 2))
    if width < 3:
        d1 = d2 = np.zeros_like(plane)
    else:
        d1 = delta(plane, width=width, order=1)
        d2 = delta(plane, width=width, order=2)
    return np.stack([plane, d1, d2]).astype(np.float32)
