"""Pure feature computation: audio samples in, feature planes out. No files, no images.

Shapes follow librosa: a spectrogram is ``(n_bins, t)`` with ``t`` frames; :func:`feature_planes`
returns ``(channels, n_rows, t)``.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import scipy.signal

from .config import SpectrogramConfig
from .errors import AudioError


@lru_cache(maxsize=16)
def window_function(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """Analysis window [shape=(n_fft,)], zero-padded to n_fft and centred, as librosa does.

    ``hann`` is the periodic Hann (librosa/scipy default); ``hann_symmetric`` the symmetric one
    (``torch.hann_window(periodic=False)``, as EfficientAT uses).
    """
    if name == "hann_symmetric":
        win = scipy.signal.get_window("hann", win_length, fftbins=False)
    else:
        win = librosa.filters.get_window(name, win_length, fftbins=True)
    return librosa.util.pad_center(win.astype(np.float64), size=n_fft)


@lru_cache(maxsize=16)
def mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, mel_scale: str) -> np.ndarray:
    """Mel filterbank [shape=(n_mels, 1 + n_fft // 2)], float32, cached per parameter set."""
    if mel_scale == "kaldi":
        return kaldi_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


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


def power_spectrogram(
    y: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None, window: str, center: bool
) -> np.ndarray:
    """``|STFT(y)|**2`` [shape=(1 + n_fft // 2, t)], float32, zero-padded centring like torch.stft."""
    win = window_function(window, win_length or n_fft, n_fft)
    stft = librosa.stft(
        y, n_fft=n_fft, hop_length=hop_length, window=win, center=center, pad_mode="constant"
    )
    return (stft.real**2 + stft.imag**2).astype(np.float32, copy=False)


def mel_power(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Mel power spectrogram [shape=(n_mels, t)] of ``y`` sampled at ``cfg.sr``."""
    if cfg.preemphasis:
        y = preemphasize(y, coef=cfg.preemphasis)
    S = power_spectrogram(
        y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=cfg.window,
        center=cfg.center,
    )
    fb = mel_filters(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=float(cfg.fmin),
                     fmax=cfg.fmax_hz, mel_scale=cfg.mel_scale)
    return fb @ S


def log_scale(M: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Log compression of a power spectrogram, in the config's units.

    ``scale="db"``: ``librosa.power_to_db(M, ref=np.max, amin, top_db)``, dB re the loudest bin.
    ``scale="ln"``: ``(ln(M + amin) + ln_offset) / ln_divisor`` (absolute; EfficientAT's scaling).
    """
    if cfg.scale == "ln":
        return ((np.log(M + cfg.amin) + cfg.ln_offset) / cfg.ln_divisor).astype(np.float32)
    if not np.any(M > cfg.amin):  # digital silence (a silent tile): the floor, not 0 dB everywhere
        return np.full(M.shape, -cfg.top_db, dtype=np.float32)
    return librosa.power_to_db(M, ref=np.max, amin=cfg.amin, top_db=cfg.top_db).astype(np.float32)


def log_mel(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Log-mel spectrogram [shape=(n_mels, t)] of ``y`` (float32 at ``cfg.sr``)."""
    return log_scale(mel_power(y, cfg), cfg)


def mfcc(y: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """MFCCs [shape=(n_mfcc, t)]: DCT-II (ortho) of the log-mel, as ``librosa.feature.mfcc``."""
    return librosa.feature.mfcc(S=log_mel(y, cfg), n_mfcc=cfg.n_mfcc).astype(np.float32)


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
        d1 = librosa.feature.delta(plane, width=width, order=1, mode="nearest")
        d2 = librosa.feature.delta(plane, width=width, order=2, mode="nearest")
    return np.stack([plane, d1, d2]).astype(np.float32)
