"""Demo data: a small, deterministic, labelled set of synthetic sound clips.

Six classes of everyday-synthesiser sounds, each drawn with random pitch, length (0.5-4 s), level
(peak -30..-3 dBFS), onset and background noise (SNR 0-30 dB), so that a CNN has to learn the
shape of each sound rather than its loudness or position. Classes overlap on purpose (a tone and a
bell share pitch ranges, a fast click train and a short noise burst look alike at low SNR), so a
good model gets most but not necessarily all clips right.

Layout written by :func:`synth` (folder-per-class, 16-bit PCM WAV)::

    OUT_DIR/<class>/<class>_<i>.wav
    OUT_DIR/synth.csv     fname,label,manually_verified,duration,level_dbfs,snr_db,onset

``synth.csv`` follows the Freesound 2018 layout (``fname`` relative to OUT_DIR) plus the drawn
parameters; about one clip in four is marked ``manually_verified=0`` to exercise weak-label code
(its label is still correct). The signal generators are pure: parameters and a
:class:`numpy.random.Generator` in, float32 samples out. Same seed, same bytes.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import ConfigError
from .io import write_atomic

log = logging.getLogger(__name__)

MIN_DURATION, MAX_DURATION = 0.5, 4.0  # clip length, seconds
MIN_LEVEL, MAX_LEVEL = -30.0, -3.0  # clip peak, dBFS
MIN_SNR, MAX_SNR = 0.0, 30.0  # event RMS over background RMS, dB
FADE = 0.005  # seconds of raised-cosine fade at each end of an event
CSV_NAME = "synth.csv"


# ----------------------------------------------------------------- pure signal generators
def _time(sr: int, duration: float) -> np.ndarray:
    return np.arange(int(round(sr * duration)), dtype=np.float64) / sr


def tone(freq: float, *, sr: int, duration: float, phase: float = 0.0) -> np.ndarray:
    """Pure sine of ``freq`` Hz [shape=(round(sr * duration),)], peak 1, float32."""
    return np.sin(2 * np.pi * freq * _time(sr, duration) + phase).astype(np.float32)


def chirp(f0: float, f1: float, *, sr: int, duration: float) -> np.ndarray:
    """Exponential sweep from ``f0`` to ``f1`` Hz (up if f1 > f0, else down), peak 1, float32."""
    t = _time(sr, duration)
    k = np.log(f1 / f0) / max(duration, 1e-9)
    if abs(k) < 1e-9:
        return tone(f0, sr=sr, duration=duration)
    phase = 2 * np.pi * f0 * (np.expm1(k * t)) / k
    return np.sin(phase).astype(np.float32)


def band_noise(low: float, high: float, *, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """White noise band-limited to [low, high] Hz by zeroing FFT bins, peak 1, float32."""
    n = int(round(sr * duration))
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec[(freqs < low) | (freqs > high)] = 0
    return _peak_normalise(np.fft.irfft(spec, n))


def click_train(rate: float, *, sr: int, duration: float, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """Clicks (1 ms decaying noise bursts) ``rate`` times a second, timing jittered by ``jitter``
    of a period, peak 1, float32."""
    n = int(round(sr * duration))
    out = np.zeros(n)
    period = sr / rate
    click_len = max(1, int(0.001 * sr))
    shape = np.exp(-np.arange(click_len) / (click_len / 4))
    pos = 0.0
    while pos < n:
        i = int(pos)
        seg = min(click_len, n - i)
        out[i : i + seg] += rng.choice([-1.0, 1.0]) * shape[:seg] * rng.uniform(0.6, 1.0)
        pos += period * (1 + jitter * rng.uniform(-1, 1))
    return _peak_normalise(out)


def hum(fundamental: float, *, sr: int, duration: float, n_harmonics: int = 8, rolloff: float = 0.7,
        rng: np.random.Generator) -> np.ndarray:
    """Mains-like hum: ``fundamental`` Hz and ``n_harmonics - 1`` overtones with amplitudes
    ``rolloff**k`` and random phases, peak 1, float32."""
    t = _time(sr, duration)
    out = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * fundamental >= sr / 2:
            break
        out += rolloff ** (k - 1) * np.sin(2 * np.pi * k * fundamental * t + rng.uniform(0, 2 * np.pi))
    return _peak_normalise(out)


BELL_RATIOS = (0.5, 1.0, 1.183, 1.506, 2.0, 2.514, 2.662, 3.011)  # minor-third church-bell partials


def bell(freq: float, *, sr: int, duration: float, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Struck bell: inharmonic partials ``freq * BELL_RATIOS`` (each detuned up to 1 %), decaying
    exponentially with time constant ``decay`` s (higher partials faster), peak 1, float32."""
    t = _time(sr, duration)
    out = np.zeros_like(t)
    for j, ratio in enumerate(BELL_RATIOS):
        f = freq * ratio * (1 + rng.uniform(-0.01, 0.01))
        if f >= sr / 2:
            continue
        amp = rng.uniform(0.3, 1.0)
        out += amp * np.exp(-t / (decay / (1 + 0.4 * j))) * np.sin(2 * np.pi * f * t)
    return _peak_normalise(out)


def _peak_normalise(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y / peak if peak > 0 else y).astype(np.float32)


# ----------------------------------------------------------------- classes
def _draw_tone(rng, sr, d):
    return tone(200 * 2 ** rng.uniform(0, 4), sr=sr, duration=d, phase=rng.uniform(0, 2 * np.pi))


def _draw_chirp(rng, sr, d):
    lo = 200 * 2 ** rng.uniform(0, 2)
    hi = lo * 2 ** rng.uniform(1, 3)
    return chirp(lo, hi, sr=sr, duration=d) if rng.random() < 0.5 else chirp(hi, lo, sr=sr, duration=d)


def _draw_noise_burst(rng, sr, d):
    centre = 300 * 2 ** rng.uniform(0, 4.5)
    width = 2 ** rng.uniform(0.5, 2.5)
    return band_noise(centre / np.sqrt(width), min(centre * np.sqrt(width), sr / 2), sr=sr, duration=d, rng=rng)


def _draw_click_train(rng, sr, d):
    return click_train(2 ** rng.uniform(np.log2(4), np.log2(60)), sr=sr, duration=d, rng=rng)


def _draw_hum(rng, sr, d):
    base = rng.choice([50.0, 60.0]) * (1 + rng.uniform(-0.02, 0.02))
    mult = rng.choice([1, 2, 3])  # hum, buzzing transformer (2x), motor whine
    return hum(base * mult, sr=sr, duration=d, n_harmonics=int(rng.integers(4, 12)),
               rolloff=rng.uniform(0.5, 0.85), rng=rng)


def _draw_bell(rng, sr, d):
    return bell(300 * 2 ** rng.uniform(0, 3), sr=sr, duration=d, decay=rng.uniform(0.2, 1.2), rng=rng)


Drawer = Callable[[np.random.Generator, int, float], np.ndarray]
CLASSES: dict[str, Drawer] = {
    "tone": _draw_tone,
    "chirp": _draw_chirp,
    "noise_burst": _draw_noise_burst,
    "click_train": _draw_click_train,
    "hum": _draw_hum,
    "bell": _draw_bell,
}


@dataclass(frozen=True)
class ClipParams:
    """What was drawn for one clip: length (s), peak level (dBFS), SNR (dB), event onset (s)."""

    duration: float
    level_dbfs: float
    snr_db: float
    onset: float


def make_clip(name: str, rng: np.random.Generator, *, sr: int) -> tuple[np.ndarray, ClipParams]:
    """One clip of class ``name``: an event of random length at a random onset over background
    noise, scaled to a random peak level. Returns float32 [shape=(n,)] and its parameters."""
    duration = float(rng.uniform(MIN_DURATION, MAX_DURATION))
    n = int(round(duration * sr))
    event_len = float(rng.uniform(0.3, 1.0)) * duration
    onset = float(rng.uniform(0, duration - event_len))
    event = CLASSES[name](rng, sr, event_len)
    event *= _fades(event.size, int(FADE * sr))
    y = np.zeros(n)
    start = min(int(round(onset * sr)), n - event.size)
    y[start : start + event.size] = event
    snr = float(rng.uniform(MIN_SNR, MAX_SNR))
    event_rms = np.sqrt(np.mean(event.astype(np.float64) ** 2))
    background = band_noise(20, sr / 2, sr=sr, duration=duration, rng=rng)[:n]
    background *= event_rms / np.sqrt(np.mean(background.astype(np.float64) ** 2)) / 10 ** (snr / 20)
    y += background
    level = float(rng.uniform(MIN_LEVEL, MAX_LEVEL))
    y *= 10 ** (level / 20) / np.max(np.abs(y))
    return y.astype(np.float32), ClipParams(n / sr, level, snr, start / sr)


def _fades(n: int, fade: int) -> np.ndarray:
    env = np.ones(n, dtype=np.float32)
    fade = min(fade, n // 2)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        env[:fade] = ramp
        env[n - fade :] = ramp[::-1]
    return env


def wav_bytes(y: np.ndarray, *, sr: int) -> bytes:
    """16-bit PCM WAV bytes of float32 ``y`` (deterministic: no timestamps in the header)."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ----------------------------------------------------------------- writer
def synth(
    out_dir: Path,
    *,
    n_per_class: int = 12,
    sr: int = 44100,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write ``n_per_class`` clips of each class under ``out_dir`` (layout in the module docstring).

    Clip ``i`` of class ``c`` depends only on ``(seed, c, i)``, so adding clips or classes leaves the
    others unchanged. Returns ``out_dir``. The default set (6 x 12 clips at 44.1 kHz, about 160 s of
    audio, 14 MB) converts and trains in about a minute on two CPU cores.
    """
    names = list(CLASSES) if classes is None else list(classes)
    unknown = [c for c in names if c not in CLASSES]
    if unknown:
        raise ConfigError(f"unknown synth class(es) {', '.join(unknown)}; choose from {', '.join(CLASSES)}")
    if not isinstance(n_per_class, int) or n_per_class <= 0:
        raise ConfigError(f"n_per_class={n_per_class!r} must be a positive integer")
    if not isinstance(sr, int) or sr < 8000:
        raise ConfigError(f"sr={sr!r} must be an integer >= 8000 Hz")
    out_dir = Path(out_dir)
    rows = []
    for name in names:
        ci = list(CLASSES).index(name)
        for i in range(n_per_class):
            rng = np.random.default_rng([seed, ci, i])
            y, p = make_clip(name, rng, sr=sr)
            rel = f"{name}/{name}_{i}.wav"
            write_atomic(out_dir / rel, wav_bytes(y, sr=sr))
            verified = int(rng.random() >= 0.25)
            rows.append([rel, name, verified, f"{p.duration:.4f}", f"{p.level_dbfs:.2f}", f"{p.snr_db:.2f}", f"{p.onset:.4f}"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["fname", "label", "manually_verified", "duration", "level_dbfs", "snr_db", "onset"])
    writer.writerows(rows)
    write_atomic(out_dir / CSV_NAME, buf.getvalue().encode())
    log.info("wrote %d synthetic clips in %d classes to %s", len(rows), len(names), out_dir)
    return out_dir
