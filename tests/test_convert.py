"""Folder conversion: formats, layouts, the manifest, resumability, determinism and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spec2img import convert as conv
from spec2img import render
from spec2img.config import from_preset
from spec2img.errors import LabelsError, Spec2ImgError
from spec2img.io import read_png
from spec2img.manifest import image_table, read_manifest
from tests.conftest import tone, write

CFG = from_preset("logmel", sr=22050)


@pytest.mark.parametrize(
    "name, sr, subtype, channels",
    [("a.wav", 8000, "PCM_U8", 1), ("b.wav", 44100, "PCM_16", 2), ("c.wav", 48000, "PCM_24", 6),
     ("d.wav", 16000, "PCM_32", 1), ("e.wav", 22050, "FLOAT", 2), ("f.flac", 96000, "PCM_24", 1),
     ("g.ogg", 44100, "VORBIS", 2), ("h.aiff", 32000, "PCM_16", 1), ("i.mp3", 44100, "MPEG_LAYER_III", 1)],
)
def test_every_format_depth_and_channel_count_converts(tmp_path, name, sr, subtype, channels):
    y = tone(440, sr=sr, duration=1.0, amp=0.5)
    y = np.stack([y] * channels, axis=1) if channels > 1 else y
    write(tmp_path / "audio" / "k" / name, y, sr, subtype)
    s = conv.convert(tmp_path / "audio", tmp_path / "img", CFG, jobs=1)
    assert (s.converted, s.failed) == (1, 0), s.rows
    row = s.rows[0]
    assert (row["orig_sr"], row["channels"]) == (sr, channels)
    img = read_png(tmp_path / "img" / "k" / f"{Path(name).stem}.png")
    assert img.shape[0] == 128 and abs(img.shape[1] - (1 + 22050 // 512)) <= 2
    # the 440 Hz partial is the brightest row whatever the container
    assert img.mean(axis=1).argmax() > 64


@pytest.mark.parametrize("subtype, channels", [("PCM_U8", 1), ("PCM_S8", 2), ("PCM_16", 1), ("PCM_16", 3),
                                               ("PCM_24", 1), ("PCM_32", 2), ("FLOAT", 1)])
def test_integer_pcm_scaled_by_hand_equals_libsndfile_floats(tmp_path, subtype, channels):
    """audio.load reads integer PCM as integers and scales it itself (3.5x faster); the samples
    must be exactly libsndfile's own float conversion, mixed down the same way."""
    import soundfile as sf

    from spec2img import audio

    rng = np.random.default_rng(3)
    y = np.clip(rng.standard_normal((8000, channels)) * 0.3, -1, 1).astype(np.float32)
    path = tmp_path / ("x.aiff" if subtype == "PCM_S8" else "x.wav")
    sf.write(path, y, 8000, subtype=subtype)
    ref = sf.read(path, dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    got, sr = audio.load(path, offset=0.25, duration=0.5)
    assert sr == 8000 and got.dtype == np.float32
    np.testing.assert_allclose(got, ref[2000:6000], rtol=0, atol=1e-7)


def test_manifest_accounts_for_every_input_and_images_are_deterministic(two_class_dir, tmp_path):
    (two_class_dir / "high" / "broken.wav").write_bytes(b"RIFF....garbage")
    (two_class_dir / "low" / "empty.wav").write_bytes(b"")
    write(two_class_dir / "low" / "silent.wav", np.zeros(22050, np.float32), 22050)
    write(two_class_dir / "low" / "nan.wav", np.full(22050, np.nan, np.float32), 22050, "FLOAT")
    write(two_class_dir / "low" / "tiny.wav", tone(300, duration=0.01), 22050)
    write(two_class_dir / "low" / "zero.wav", np.zeros(0, np.float32), 22050)
    (two_class_dir / "notes.txt").write_text("not audio, not listed")
    (two_class_dir / "high" / "fake.wav").write_text("this is text, not audio")

    a = conv.convert(two_class_dir, tmp_path / "A", CFG, jobs=2)
    b = conv.convert(two_class_dir, tmp_path / "B", CFG, jobs=1)
    assert (a.converted, a.failed) == (6, 7)
    df = read_manifest(tmp_path / "A")
    assert len(df) == 13 and set(df["status"]) == {"ok", "failed"}
    errors = dict(zip(df["source"], df["error"]))
    assert "empty file (0 bytes)" in errors["low/empty.wav"]
    assert "is silent" in errors["low/silent.wav"]
    assert "NaN or infinite" in errors["low/nan.wav"]
    assert "shorter than one analysis window" in errors["low/tiny.wav"]
    assert "no samples" in errors["low/zero.wav"] or "zero-length" in errors["low/zero.wav"]
    assert "cannot decode" in errors["high/broken.wav"] or "not audio" in errors["high/broken.wav"]
    assert all("\n" not in e for e in errors.values())
    for rel in df.loc[df.status == "ok", "images"].explode():
        assert (tmp_path / "A" / rel).read_bytes() == (tmp_path / "B" / rel).read_bytes()
    table = image_table(df)
    assert sorted(set(table["labels"].map(tuple))) == [("high",), ("low",)]


def test_rerun_skips_up_to_date_and_rerenders_on_config_change(two_class_dir, tmp_path):
    out = tmp_path / "img"
    first = conv.convert(two_class_dir, out, CFG, jobs=1)
    assert first.converted == 6
    again = conv.convert(two_class_dir, out, CFG, jobs=1)
    assert (again.converted, again.up_to_date) == (0, 6)
    changed = conv.convert(two_class_dir, out, CFG.replace(n_mels=64), jobs=1)
    assert changed.converted == 6
    assert read_png(out / "low" / "low0.png").shape[0] == 64


def test_tiles_trace_clip_and_offset_and_stale_tiles_go(tmp_path):
    write(tmp_path / "a" / "x" / "long.wav", tone(500, duration=3.0, noise=0.01), 22050)
    cfg = CFG.replace(tile=1.0, tile_hop=0.5)
    s = conv.convert(tmp_path / "a", tmp_path / "img", cfg, jobs=1)
    row = s.rows[0]
    assert row["offsets"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert len(row["images"]) == 5 and all(read_png(tmp_path / "img" / p).shape[1] == 44 for p in row["images"])
    conv.convert(tmp_path / "a", tmp_path / "img", cfg.replace(tile_hop=1.0), jobs=1)
    assert len(list((tmp_path / "img" / "x").glob("*.png"))) == 3


def test_duration_pads_short_clips_by_the_crop_rule(tmp_path):
    write(tmp_path / "a" / "c" / "short.wav", tone(800, duration=0.5), 22050)
    for crop, side in (("start", "right"), ("center", "both")):
        img = render.render_clip(tmp_path / "a" / "c" / "short.wav", CFG.replace(duration=2.0, crop=crop))[0][1]
        assert img.shape[1] == 1 + 2 * 22050 // 512
        cols = img.max(axis=0)
        if side == "right":
            assert cols[:15].min() > 0 and cols[-30:].max() == 0
        else:
            assert cols[:15].max() == 0 and cols[-15:].max() == 0 and cols[40] > 0
    r1 = render.render_clip(tmp_path / "a" / "c" / "short.wav", CFG.replace(duration=0.2, crop="random"), key="k")
    r2 = render.render_clip(tmp_path / "a" / "c" / "short.wav", CFG.replace(duration=0.2, crop="random"), key="k")
    assert np.array_equal(r1[0][1], r2[0][1])


def test_long_recording_tiles_without_loading_it_whole(tmp_path, monkeypatch):
    import soundfile as sf

    path = tmp_path / "a" / "hour.wav"
    path.parent.mkdir(parents=True)
    with sf.SoundFile(str(path), "w", samplerate=8000, channels=1, subtype="PCM_16") as fh:
        block = tone(300, sr=8000, duration=60.0, noise=0.01)
        for _ in range(60):  # one hour at 8 kHz
            fh.write(block)
    biggest = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *a, **k):
        out = real_read(self, frames, *a, **k)
        biggest.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    cfg = from_preset("logmel", sr=8000, n_fft=512, hop_length=256, n_mels=32, tile=60.0, tile_hop=60.0)
    n = sum(1 for _ in render.iter_images(path, cfg))
    assert n == 60 and max(biggest) <= 60 * 8000


def test_labels_csv_layouts(tmp_path, two_class_dir):
    files = sorted(p.relative_to(two_class_dir).as_posix() for p in two_class_dir.rglob("*.wav"))
    esc = pd.DataFrame({"filename": [Path(f).name for f in files], "fold": [1, 2, 3, 1, 2, 3],
                        "target": 0, "category": ["h", "h", "h", "l", "l", "l"], "esc10": False,
                        "src_file": ["s1", "s1", "s2", "s3", "s4", "s4"], "take": "A"})
    esc.to_csv(tmp_path / "esc50.csv", index=False)
    df = read_manifest(conv.convert(two_class_dir, tmp_path / "e", CFG, labels_csv=tmp_path / "esc50.csv",
                                    jobs=1).manifest)
    assert list(df["fold"]) == [1, 2, 3, 1, 2, 3] and list(df["group"]) == ["s1", "s1", "s2", "s3", "s4", "s4"]

    fs = pd.DataFrame({"fname": [Path(f).name for f in files[:5]], "label": ["A"] * 5,
                       "manually_verified": [1, 0, 1, 0, 1]})
    fs.to_csv(tmp_path / "train.csv", index=False)
    df = read_manifest(conv.convert(two_class_dir, tmp_path / "f", CFG, labels_csv=tmp_path / "train.csv",
                                    jobs=1).manifest)
    assert list(df["status"]) == ["ok"] * 5 + ["skipped"]
    assert "not listed in train.csv" in df["error"].iloc[5]
    assert list(df["manually_verified"][:5]) == [1, 0, 1, 0, 1]

    multi = pd.DataFrame({"fname": [Path(f).name for f in files], "labels": ["Bark,Walk"] * 6})
    multi.to_csv(tmp_path / "train_curated.csv", index=False)
    df = read_manifest(conv.convert(two_class_dir, tmp_path / "m", CFG,
                                    labels_csv=tmp_path / "train_curated.csv", jobs=1).manifest)
    assert df["labels"].iloc[0] == ["Bark", "Walk"]

    us = pd.DataFrame({"slice_file_name": [Path(f).name for f in files], "fsID": [7] * 6, "start": 0,
                       "end": 1, "salience": 1, "fold": [1] * 6, "classID": 0, "class": ["dog_bark"] * 6})
    us.to_csv(tmp_path / "UrbanSound8K.csv", index=False)
    df = read_manifest(conv.convert(two_class_dir, tmp_path / "u", CFG, labels_csv=tmp_path / "UrbanSound8K.csv",
                                    jobs=1).manifest)
    assert set(df["group"]) == {"7"} and (tmp_path / "u" / "dog_bark" / "low0.png").exists()

    custom = pd.DataFrame({"path": files, "tag": ["x"] * 6, "split": [4] * 6})
    custom.to_csv(tmp_path / "mine.csv", index=False)
    df = read_manifest(conv.convert(two_class_dir, tmp_path / "c", CFG, labels_csv=tmp_path / "mine.csv",
                                    file_col="path", label_col="tag", fold_col="split", jobs=1).manifest)
    assert set(df["fold"]) == {4}


@pytest.mark.parametrize(
    "csv, match",
    [("fname,label\nlow0.wav,a\nmissing.wav,b\n", r"line 3, column 'fname': 'missing.wav' is not under"),
     ("what,ever\n1,2\n", r"unknown label layout .*--file-col"),
     ("fname,label\nlow0.wav,\n", r"line 2, column 'label': empty label"),
     ("fname,label\nlow0.wav,a\nlow0.wav,b\n", r"line 3.*listed twice")],
)
def test_bad_labels_csv_names_line_and_column(tmp_path, two_class_dir, csv, match):
    (tmp_path / "l.csv").write_text(csv)
    with pytest.raises(LabelsError, match=match):
        conv.convert(two_class_dir, tmp_path / "img", CFG, labels_csv=tmp_path / "l.csv", jobs=1)
    assert not (tmp_path / "img").exists()


def test_strict_stops_at_first_failure_and_keeps_the_manifest(two_class_dir, tmp_path):
    (two_class_dir / "high" / "a_bad.wav").write_bytes(b"nope")
    with pytest.raises(Spec2ImgError, match="a_bad.wav.*--strict"):
        conv.convert(two_class_dir, tmp_path / "img", CFG, jobs=1, strict=True)
    df = read_manifest(tmp_path / "img", require_complete=False)
    assert len(df) == 7 and (df["status"] == "skipped").sum() == 6
    with pytest.raises(Spec2ImgError, match="did not finish.*rerun"):  # classify would refuse it
        read_manifest(tmp_path / "img")


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(tmp_path):
    audio = tmp_path / "audio"
    n = 150  # enough that the kill lands mid-run: a clip takes only a few ms
    for i in range(n):
        write(audio / "c" / f"n{i:03d}.wav", tone(200 + 37 * i, duration=2.0, noise=0.02, seed=i), 22050)
    ref = tmp_path / "ref"
    conv.convert(audio, ref, CFG, jobs=1)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spec2img.cli", str(audio), str(out), "--preset", "logmel", "--sr", "22050", "-j", "1", "-q"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.rglob("*.png"))) < 5:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    made = len(list(out.rglob("*.png")))
    assert 5 <= made < n, "the run must be killed part-way"
    resumed = conv.convert(audio, out, CFG, jobs=1)
    assert resumed.up_to_date >= 5 and resumed.converted + resumed.up_to_date == n
    assert not list(out.rglob("*.tmp"))
    for p in ref.rglob("*.png"):
        assert (out / p.relative_to(ref)).read_bytes() == p.read_bytes()


def test_not_a_folder_and_no_audio_messages(tmp_path):
    with pytest.raises(Spec2ImgError, match="not a folder"):
        conv.convert(tmp_path / "nope", tmp_path / "img", CFG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Spec2ImgError, match="no audio files found"):
        conv.convert(tmp_path / "empty", tmp_path / "img", CFG)
