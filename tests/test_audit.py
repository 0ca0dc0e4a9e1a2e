"""Audit: per-file statistics on fixtures with known peak, duration, clipping and silence."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from spec2img import audit as A
from spec2img.labels import ClipLabels
from spec2img.synth import synth


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "audio"
    sr = 44100
    half = np.zeros(sr // 2, dtype=np.float32)
    sine = 0.5 * np.sin(2 * np.pi * 441 * np.arange(sr // 2) / sr).astype(np.float32)
    (d / "dog").mkdir(parents=True)
    (d / "cat").mkdir()
    sf.write(d / "dog" / "half_silent.wav", np.r_[half, sine], sr, subtype="PCM_16")
    clip = np.zeros((8000, 2), dtype=np.float32)
    clip[100:110, 0] = 1.0
    clip[200:205, 1] = -1.0
    sf.write(d / "cat" / "clipped.wav", clip, 8000, subtype="FLOAT")
    # 25 s at 8 kHz spans three 10 s blocks; 1 kHz tone at -20 dBFS in the last 5 s only
    long = np.zeros(25 * 8000, dtype=np.float32)
    long[-5 * 8000 :] = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(5 * 8000) / 8000)
    sf.write(d / "dog" / "long.flac", long, 8000, subtype="PCM_24")
    (d / "cat" / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    (d / "cat" / "empty.wav").write_bytes(b"")
    return d


def test_stats_of_known_files(folder):
    df = A.audit_table(folder).set_index("path")
    h = df.loc["dog/half_silent.wav"]
    assert (h.status, h.samplerate, h.channels, h.subtype, h.bits, h.labels) == ("ok", 44100, 1, "PCM_16", 16, "dog")
    assert h.duration == pytest.approx(1.0)
    assert h.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    assert h.rms_dbfs == pytest.approx(-12.04, abs=0.02)
    assert h.silent_share == pytest.approx(0.5)
    assert h.clipped == 0 and h.issues == ""
    c = df.loc["cat/clipped.wav"]
    assert (c.channels, c.bits, c.clipped) == (2, 32, 15)
    assert c.clipped_share == pytest.approx(15 / 16000)
    assert c.peak_dbfs == pytest.approx(0.0) and "clipped" in c.issues and "mostly_silent" in c.issues
    lg = df.loc["dog/long.flac"]
    assert lg.duration == pytest.approx(25.0) and lg.bits == 24
    assert lg.silent_share == pytest.approx(20 / 25)
    assert lg.peak_dbfs == pytest.approx(-20.0, abs=0.01)


def test_bad_files_get_failed_rows(folder):
    df = A.audit_table(folder).set_index("path")
    for name in ("cat/corrupt.wav", "cat/empty.wav"):
        assert df.loc[name, "status"] == "failed"
        assert name.split("/")[1] in df.loc[name, "error"]
    assert "empty file" in df.loc["cat/empty.wav", "error"]


def test_labels_mapping_verified_and_class_table(folder):
    labels = {
        "dog/half_silent.wav": ClipLabels(("bark", "dog"), verified=True),
        "dog/long.flac": ClipLabels(("dog",), fold=2, verified=False),
        "cat/missing.wav": ClipLabels(("cat",)),
    }
    df = A.audit_table(folder, labels=labels)
    row = df.set_index("path").loc["dog/half_silent.wav"]
    assert row.labels == "bark;dog" and row.manually_verified == 1
    assert df.set_index("path").loc["dog/long.flac", "fold"] == 2
    assert df.set_index("path").loc["cat/missing.wav", "status"] == "failed"
    assert df.set_index("path").loc["cat/clipped.wav", "labels"] == ""  # the mapping does not name it
    cl = A.class_table(df).set_index("label")
    assert cl.loc["dog", "files"] == 2 and cl.loc["dog", "verified_share"] == pytest.approx(0.5)
    assert cl.loc["cat", "files"] == 1 and cl.loc["cat", "failed"] == 1
    assert cl.loc["bark", "total_duration"] == pytest.approx(1.0)
    assert cl.loc["(none)", "files"] == 3


def test_freesound_csv_labels(tmp_path):
    out = synth(tmp_path / "syn", n_per_class=2, classes=["tone", "bell"])
    res = A.audit(out, labels_csv=out / "synth.csv", jobs=1)
    assert set(res.classes["label"]) == {"tone", "bell"}
    assert res.files["manually_verified"].notna().all() and "verified_share" in res.classes
    assert res.n_failed == 0 and "audited 4 files" in res.line()


def test_writes_self_contained_html(folder, tmp_path):
    res = A.audit(folder, out_dir=tmp_path / "out", jobs=1)
    assert [p.name for p in res.paths] == ["audit.csv", "audit_classes.csv", "audit.html"]
    assert res.n_failed == 2
    page = (tmp_path / "out" / "audit.html").read_text()
    assert not re.search(r"https?://", page)
    srcs = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert srcs and all(src.startswith("data:image/png;base64,") for src in srcs)
    assert "corrupt.wav" in page and page.count("<img") == 2


def test_parallel_equals_serial(folder):
    assert A.audit_table(folder, jobs=2).equals(A.audit_table(folder))
