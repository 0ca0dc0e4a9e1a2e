"""The DSP path against librosa as an oracle, and the pixel <-> dB mapping."""

import librosa
import numpy as np
import pytest

from spec2img import features, image
from spec2img.config import SpectrogramConfig, from_preset
from spec2img.errors import AudioError, ConfigError
from tests.conftest import tone


@pytest.mark.slow
def test_log_mel_matches_librosa():
    cfg = from_preset("logmel", sr=22050)
    y = tone(440, sr=22050, noise=0.05)
    ours = features.log_mel(y, cfg)
    S = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128, fmin=20.0,
                                       fmax=11025.0, pad_mode="constant")
    ref = librosa.power_to_db(S, ref=np.max, top_db=80.0)
    assert ours.shape == ref.shape == (128, 1 + y.size // 512)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


@pytest.mark.slow
def test_pixels_invert_to_librosa_db_within_one_grey_level():
    cfg = from_preset("logmel", sr=22050)
    y = tone(1000, sr=22050, noise=0.1, seed=3)
    img = image.render(features.feature_planes(y, cfg), cfg)
    assert img.dtype == np.uint8 and img.shape == (128, 1 + y.size // 512)
    S = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128, fmin=20.0,
                                       pad_mode="constant")
    ref_db = librosa.power_to_db(S, ref=np.max, top_db=80.0)
    back = image.unrender(img, cfg)[0]
    grey_level = 80.0 / 255
    assert np.max(np.abs(back - ref_db)) <= grey_level / 2 + 1e-4
    # the documented formula, by hand: p = round(255 * (dB + 80) / 80)
    assert img[-1 - 5, 7] == np.clip(np.rint(255 * (ref_db[5, 7] + 80) / 80), 0, 255)


def test_low_frequencies_are_at_the_bottom():
    cfg = from_preset("logmel", sr=22050)
    low = image.render(features.feature_planes(tone(100, sr=22050), cfg), cfg)
    rows = low.mean(axis=1)
    assert np.argmax(rows) > 100  # bright rows near the bottom (row 127 = lowest band)


def test_deltas_mode_has_three_planes_and_mfcc_has_n_mfcc_rows():
    y = tone(440, sr=22050, noise=0.05)
    d = from_preset("logmel", sr=22050, mode="deltas")
    assert image.render(features.feature_planes(y, d), d).shape == (128, 44, 3)
    m = from_preset("logmel", sr=22050, feature="mfcc", n_mfcc=40)
    planes = features.feature_planes(y, m)
    ref = librosa.feature.mfcc(S=features.log_mel(y, m), n_mfcc=40)
    np.testing.assert_allclose(planes[0], ref, atol=1e-3)
    assert image.render(planes, m).shape == (40, 44)


def test_colormap_mode_is_rgb():
    cfg = from_preset("logmel", sr=22050, mode="colormap", cmap="viridis")
    img = image.render(features.feature_planes(tone(440, sr=22050), cfg), cfg)
    assert img.shape == (128, 44, 3) and img.dtype == np.uint8


def test_too_short_clip_is_rejected_with_a_hint():
    cfg = from_preset("logmel", sr=22050)
    with pytest.raises(AudioError, match="shorter than one analysis window.*--duration"):
        features.feature_planes(np.ones(100, np.float32), cfg)


def test_silent_tile_renders_black_not_white():
    cfg = from_preset("logmel", sr=22050)
    img = image.render(features.feature_planes(np.zeros(22050, np.float32), cfg), cfg)
    assert img.max() == 0


@pytest.mark.parametrize(
    "changes, match",
    [({"hop_length": 0}, "hop_length=0 must be a positive integer"),
     ({"fmax": 30000.0}, "fmax=30000.0 must be <= sr/2"),
     ({"mode": "rainbow"}, "mode='rainbow'"),
     ({"tile_hop": 1.0}, "tile_hop needs tile"),
     ({"win_length": 4096}, "win_length=4096 must be <= n_fft=2048")],
)
def test_bad_settings_name_the_value(changes, match):
    with pytest.raises(ConfigError, match=match):
        SpectrogramConfig(**changes)


def test_config_round_trips_through_json(tmp_path):
    cfg = from_preset("efficientat", tile=2.0)
    cfg.save(tmp_path)
    assert SpectrogramConfig.load(tmp_path) == cfg
    assert cfg.digest() != from_preset("logmel").digest()


def test_top_db_sets_the_image_range():
    cfg = from_preset("logmel", top_db=60.0)
    assert (cfg.vmin, cfg.vmax) == (-60.0, 0.0)
