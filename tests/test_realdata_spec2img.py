"""spec2img over the real clips beside the checkout (skips cleanly when they are absent)."""

import pytest

from spec2img.config import from_preset
from spec2img.convert import convert
from spec2img.manifest import image_table, read_manifest
from tests.conftest import SHARED_DATA, require

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_esc50_subset_converts_with_its_csv(tmp_path):
    root = require(SHARED_DATA / "esc50-dev")
    s = convert(root / "audio", tmp_path / "img", from_preset("logmel"), labels_csv=root / "esc50.csv", jobs=2)
    assert (s.converted, s.failed) == (206, 0)
    df = read_manifest(tmp_path / "img")
    assert df["labels"].map(len).eq(1).all() and df["labels"].map(tuple).nunique() == 25
    assert df["group"].nunique() < 206  # src_file groups clips cut from one recording
    t = image_table(df)
    assert len(t) == 206 and (tmp_path / "img" / t["image"].iloc[0]).exists()


def test_fsdd_digits_at_8khz_with_tiles(tmp_path):
    root = require(SHARED_DATA / "fsdd" / "recordings")
    sub = tmp_path / "fsdd"
    sub.mkdir()
    for p in sorted(root.glob("*_jackson_*.wav"))[:60]:  # a slice keeps the test quick
        (sub / p.name).symlink_to(p)
    cfg = from_preset("logmel", sr=8000, n_fft=256, hop_length=64, n_mels=64, fmin=20.0, duration=1.0)
    s = convert(sub, tmp_path / "img", cfg, jobs=1, follow_symlinks=True)  # links lead out of sub
    assert (s.converted, s.failed) == (60, 0)
