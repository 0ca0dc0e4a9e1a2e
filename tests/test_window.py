"""spec2img.window: the one windowing module (units, start rule, crop/pad, the Windows plan), and
that every place which cuts windows gets its windows from it."""

from __future__ import annotations

import numpy as np
import pytest

from spec2img import window
from spec2img.window import (Windows, columns_to_seconds, crop_offset, plan_windows, seconds_to_columns,
                             seconds_to_samples, shift_start, take, tile_starts)


# ----------------------------------------------------------------------------- units
def test_unit_conversions():
    assert seconds_to_samples(1.5, sr=32000) == 48000
    assert seconds_to_samples(0.1, sr=22050) == 2205  # 2204.9999... rounds to nearest
    # 1 s at 32 kHz, hop 320: frame centres 0, 320, ..., 32000 -> 101 columns span exactly 1 s
    assert seconds_to_columns(1.0, sr=32000, hop_length=320) == 101
    assert columns_to_seconds(101, sr=32000, hop_length=320) == pytest.approx(1.0)
    assert seconds_to_columns(1.001, sr=32000, hop_length=320) == 102  # rounded up: never shorter
    for cols in (2, 17, 63, 500):  # the two are inverse on whole columns
        assert seconds_to_columns(columns_to_seconds(cols, sr=44100, hop_length=512), sr=44100,
                                  hop_length=512) == cols
    assert window.column_offset_seconds(31, sr=16000, hop_length=160) == pytest.approx(0.31)


def test_window_seconds_of_images():
    assert window.image_seconds(tile=2.0, duration=5.0) == 2.0
    assert window.image_seconds(tile=None, duration=5.0) == 5.0
    assert window.image_seconds(tile=None, duration=None) is None


# ----------------------------------------------------------------------------- start rule
def test_tile_starts_every_hop_plus_one_aligned_to_the_end():
    assert tile_starts(100, size=63, hop=31) == [0, 31, 37]
    assert tile_starts(100, size=50, hop=25) == [0, 25, 50]  # ends exactly: no extra window
    assert tile_starts(63, size=63, hop=31) == [0]
    assert tile_starts(10, size=63, hop=31) == [0]  # short clip, padded after
    assert tile_starts(10, size=63, hop=31, pad="center") == [-26]  # 53 zeros: 26 before, 27 after
    with pytest.raises(ValueError, match="hop=0"):
        tile_starts(10, size=4, hop=0)


@pytest.mark.parametrize("n,size,hop", [(1000, 63, 31), (1001, 100, 100), (64, 63, 1), (5000, 7, 3)])
def test_tile_starts_cover_every_sample_once_in_order(n, size, hop):
    starts = tile_starts(n, size=size, hop=hop)
    covered = np.zeros(n, bool)
    for s in starts:
        assert 0 <= s <= n - size
        covered[s:s + size] = True
    assert covered.all() and starts == sorted(set(starts))
    assert all(b - a <= hop for a, b in zip(starts, starts[1:]))


# ----------------------------------------------------------------------------- crop and pad
def test_crop_offset_rules():
    assert crop_offset(100, size=60, crop="start") == 0
    assert crop_offset(100, size=60, crop="center") == 20
    assert crop_offset(101, size=60, crop="center") == 20
    assert crop_offset(10, size=15, crop="center") == -2  # 5 zeros: 2 before, 3 after
    rng = np.random.default_rng(3)
    draws = [crop_offset(100, size=60, crop="random", rng=rng) for _ in range(400)]
    assert min(draws) == 0 and max(draws) == 40  # every legal start reachable, none beyond
    draws = [crop_offset(10, size=15, crop="random", rng=rng) for _ in range(200)]
    assert min(draws) == -5 and max(draws) == 0
    assert crop_offset(100, size=60, crop="random") == crop_offset(100, size=60, crop="random")  # seeded
    with pytest.raises(ValueError, match="middle"):
        crop_offset(100, size=60, crop="middle")


def test_take_pads_outside_the_clip_on_the_last_axis():
    y = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(take(y, start=-2, size=9), [0, 0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(take(y, start=3, size=4), [4, 5, 0, 0])
    np.testing.assert_array_equal(take(y, start=7, size=2), [0, 0])
    img = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = take(img, start=-1, size=6)
    assert out.shape == (2, 3, 6) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 1:5], img)
    assert not out[..., [0, 5]].any()
    np.testing.assert_array_equal(take(img, start=1, size=2), img[..., 1:3])


def test_short_images_are_centred_in_a_centre_window():
    """Validation, head-only features and prediction pad a narrow image on both sides."""
    img = np.ones((1, 2, 4), np.uint8)
    plan = plan_windows([4], size=9)
    (out,) = plan.cut([img])
    assert out.shape == (1, 2, 9) and out[0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]


def test_shift_start_stays_inside():
    assert shift_start(10, 5, n=100, size=60) == 15
    assert shift_start(35, 10, n=100, size=60) == 40  # clamped at the end
    assert shift_start(3, -5, n=100, size=60) == 0
    # narrow clip (4 of 9): centred at -2; a shift of +1 moves the clip right inside the canvas
    assert shift_start(-2, 1, n=4, size=9) == -3
    assert shift_start(-2, 9, n=4, size=9) == -5 and shift_start(-2, -9, n=4, size=9) == 0


# ----------------------------------------------------------------------------- the plan
def test_plan_windows_starts_and_owners():
    plan = plan_windows([100, 10, 63], size=63)  # hop 31 by default
    assert isinstance(plan, Windows) and len(plan) == 5
    assert plan.starts.tolist() == [0, 31, 37, -26, 0]
    assert plan.owner.tolist() == [0, 0, 0, 1, 2]
    assert plan.counts(3).tolist() == [3, 1, 1]
    np.testing.assert_allclose(plan.offsets(0.01), [0, 0.31, 0.37, 0, 0])
    clips = [np.arange(n) + 1 for n in (100, 10, 63)]
    cut = plan.cut(clips)
    assert [c.shape for c in cut] == [(63,)] * 5
    assert cut[1][0] == 32 and cut[2][-1] == 100 and cut[3][26] == 1 and cut[3][:26].sum() == 0
    assert plan_windows([100], size=50, hop=50, pad="start").starts.tolist() == [0, 50]


# ----------------------------------------------------------------------------- every caller
def test_training_crops_use_the_module():
    torch = pytest.importorskip("torch")
    from classify.data.imageset import CropDataset

    rng = np.random.default_rng(0)
    for w in (20, 62, 63, 90):
        img = rng.integers(0, 255, (1, 8, w), dtype=np.uint8)
        ds = CropDataset([torch.from_numpy(img)], np.zeros((1, 2), np.float32), np.ones(1, np.float32),
                         width=63, train=False)
        np.testing.assert_array_equal(ds[0][0].numpy(), take(img, start=crop_offset(w, size=63, crop="center"),
                                                                  size=63))
        train = CropDataset([torch.from_numpy(img)], np.zeros((1, 2), np.float32), np.ones(1, np.float32),
                            width=63, train=True)
        torch.manual_seed(w)
        got = [train[0][0].numpy() for _ in range(30)]
        windows = [take(img, start=s, size=63) for s in range(min(0, w - 63), max(0, w - 63) + 1)]
        assert all(any(np.array_equal(g, c) for c in windows) for g in got)  # each a legal window
        if len(windows) > 1:
            assert len({g.tobytes() for g in got}) > 1  # random, not always the same crop


def test_model_windows_use_the_module():
    torch = pytest.importorskip("torch")
    from classify.models.classifier import cut_windows

    imgs = [torch.arange(n, dtype=torch.uint8).view(1, 1, n) for n in (100, 10)]
    crops, plan = cut_windows(imgs, width=63)
    assert plan.starts.tolist() == [0, 31, 37, -26] and plan.owner.tolist() == [0, 0, 0, 1]
    for c, s, o in zip(crops, plan.starts, plan.owner):
        np.testing.assert_array_equal(c.numpy(), take(imgs[o].numpy(), start=int(s), size=63))


def test_tag_windows_use_the_module(tmp_path):
    sf = pytest.importorskip("soundfile")
    from classify.prediction.tag import clip_windows
    from spec2img.config import from_preset

    cfg = from_preset("efficientat")
    path = tmp_path / "t.wav"
    sf.write(path, np.zeros(int(2.5 * 8000), np.float32) + 0.1, 8000)
    mels = clip_windows(path, cfg, seconds=1.0)
    assert len(mels) == len(tile_starts(20000, size=8000, hop=8000)) == 3


def test_prediction_windows_use_the_module(tmp_path):
    sf = pytest.importorskip("soundfile")
    from classify.prediction.windows import file_windows
    from spec2img.config import SpectrogramConfig
    from spec2img.render import iter_images

    cfg = SpectrogramConfig(sr=8000, n_fft=256, hop_length=128, n_mels=32)
    t = np.arange(int(2.0 * 8000)) / 8000
    path = tmp_path / "chirp.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 500 * t) * t)).astype(np.float32), 8000)
    (_, img), = iter_images(path, cfg)
    got = file_windows(path, cfg, 40, tta=1)
    starts = tile_starts(img.shape[-1], size=40, hop=20)
    np.testing.assert_allclose(got.start, [s * 128 / 8000 for s in starts])
    np.testing.assert_allclose(got.end - got.start, columns_to_seconds(40, sr=8000, hop_length=128))
    for k, s in enumerate(starts):
        np.testing.assert_array_equal(got.images[2 * k, 0], take(img, start=s, size=40))
        shifted = shift_start(s, 40 // 8, n=img.shape[-1], size=40)
        np.testing.assert_array_equal(got.images[2 * k + 1, 0], take(img, start=shifted, size=40))
