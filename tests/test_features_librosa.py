"""features.py re-implements librosa's numerics without importing it; librosa is the oracle."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from spec2img import features, image
from spec2img.config import from_preset


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    sr = 44100
    t = np.arange(int(1.3 * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin", [(44100, 2048, 128, 20.0), (22050, 1024, 64, 0.0), (16000, 512, 40, 50.0)])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels, fmin):
    ours = features.slaney_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2)
    np.testing.assert_array_equal(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2))


@pytest.mark.parametrize("center", [True, False])
def test_power_spectrogram_matches_librosa_stft(clip, center):
    ours = features.power_spectrogram(clip, n_fft=2048, hop_length=512, win_length=1600, window="hann", center=center)
    ref = np.abs(librosa.stft(clip, n_fft=2048, hop_length=512, win_length=1600, center=center, pad_mode="constant")) ** 2
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * ref.max())


def test_power_to_db_equals_librosa(clip):
    S = np.abs(librosa.stft(clip)) ** 2
    np.testing.assert_array_equal(features.power_to_db(S, amin=1e-10, top_db=80.0),
                                  librosa.power_to_db(S, ref=np.max, amin=1e-10, top_db=80.0))


@pytest.mark.parametrize("preset,extra", [("default", {}), ("default", {"mode": "deltas"}), ("mfcc", {}), ("efficientat", {}),
                                          ("imagenet", {"mode": "grey"})])
def test_images_within_one_grey_level_of_librosa(clip, preset, extra):
    cfg = from_preset(preset, **extra)
    y = clip if cfg.sr == 44100 else librosa.resample(clip, orig_sr=44100, target_sr=cfg.sr)
    if cfg.preemphasis:
        y = features.preemphasize(y, coef=cfg.preemphasis)
    win = features.window_function(cfg.window, cfg.win_length or cfg.n_fft, cfg.n_fft)
    S = np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window=win, pad_mode=cfg.pad_mode)) ** 2
    M = features.mel_filters(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax_hz,
                             mel_scale=cfg.mel_scale) @ S
    if cfg.scale == "ln":
        ref = (np.log(M + cfg.amin) + cfg.ln_offset) / cfg.ln_divisor
    else:
        ref = librosa.power_to_db(M, ref=np.max, amin=cfg.amin, top_db=cfg.top_db)
    if cfg.feature == "mfcc":
        ref = librosa.feature.mfcc(S=ref, n_mfcc=cfg.n_mfcc)
    planes = [ref]
    if cfg.mode == "deltas":
        planes += [librosa.feature.delta(ref, width=9, order=k, mode="nearest") for k in (1, 2)]
    expected = image.render(np.stack(planes).astype(np.float32), cfg).astype(int)
    got = image.render(features.feature_planes(clip if cfg.sr == 44100 else y_resampled(clip, cfg), cfg), cfg).astype(int)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1
    assert (got != expected).mean() < 1e-3


def y_resampled(clip, cfg):
    return librosa.resample(clip, orig_sr=44100, target_sr=cfg.sr)


def test_feature_path_never_imports_librosa_or_numba():
    code = (
        "import sys, numpy as np\n"
        "from spec2img import audio, features, image, io\n"
        "from spec2img.config import SpectrogramConfig\n"
        "c = SpectrogramConfig(mode='deltas')\n"
        "io.encode_png(image.render(features.feature_planes(np.ones(5000, np.float32), c), c))\n"
        "print(sorted(m for m in ('librosa', 'numba') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_imagenet_preset_is_the_magma_picture_of_a_1024_hop_log_mel(clip):
    import matplotlib

    cfg = from_preset("imagenet")
    grey_cfg = cfg.replace(mode="grey")
    grey = image.render(features.feature_planes(clip, grey_cfg), grey_cfg)
    rgb = image.render(features.feature_planes(clip, cfg), cfg)
    assert rgb.shape == (128, 1 + clip.size // 1024, 3)
    lut = (matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(rgb, lut[grey])
