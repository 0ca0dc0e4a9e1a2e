"""Synthetic demo data: deterministic bytes, layout, parameter ranges, decodable files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from spec2img import synth as S
from spec2img.errors import ConfigError


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = _tree(S.synth(tmp_path / "a", n_per_class=2))
    b = _tree(S.synth(tmp_path / "b", n_per_class=2))
    c = _tree(S.synth(tmp_path / "c", n_per_class=2, seed=1))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_clip_depends_only_on_seed_class_and_index(tmp_path):
    small = _tree(S.synth(tmp_path / "s", n_per_class=1, classes=["bell"]))
    big = _tree(S.synth(tmp_path / "b", n_per_class=2))
    assert small["bell/bell_0.wav"] == big["bell/bell_0.wav"]


def test_layout_ranges_and_decodable(tmp_path):
    out = S.synth(tmp_path / "d", n_per_class=3, sr=16000)
    classes = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert classes == sorted(S.CLASSES) and len(classes) >= 6
    with open(out / S.CSV_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * len(classes)
    for row in rows:
        y, sr = sf.read(out / row["fname"], dtype="float32")
        info = sf.info(out / row["fname"])
        assert (sr, info.subtype, y.ndim) == (16000, "PCM_16", 1)
        assert row["fname"].startswith(row["label"] + "/")
        assert S.MIN_DURATION <= y.size / sr <= S.MAX_DURATION
        peak_db = 20 * np.log10(np.max(np.abs(y)))
        assert S.MIN_LEVEL - 0.1 <= peak_db <= S.MAX_LEVEL + 0.1
        assert abs(peak_db - float(row["level_dbfs"])) < 0.1
        assert row["manually_verified"] in ("0", "1")


@pytest.mark.parametrize("name", sorted(S.CLASSES))
def test_every_class_is_finite_and_scaled(name):
    y, p = S.make_clip(name, np.random.default_rng(3), sr=22050)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y.size == round(p.duration * 22050)
    assert np.max(np.abs(y)) == pytest.approx(10 ** (p.level_dbfs / 20), rel=1e-4)


def test_generators_have_the_asked_pitch():
    sr = 8000
    y = S.tone(440.0, sr=sr, duration=1.0)
    assert y.shape == (sr,) and np.argmax(np.abs(np.fft.rfft(y))) == 440
    up = S.chirp(200.0, 2000.0, sr=sr, duration=1.0)
    first, last = np.abs(np.fft.rfft(up[:1000])), np.abs(np.fft.rfft(up[-1000:]))
    assert np.argmax(first) < np.argmax(last)


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="whistle"):
        S.synth(tmp_path, classes=["whistle"])
    with pytest.raises(ConfigError, match="n_per_class=0"):
        S.synth(tmp_path, n_per_class=0)
