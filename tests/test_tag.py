"""``classify tag``: AudioSet tags straight from the pretrained model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from classify import cli
from classify.models.backbones.efficientat import EfficientATMN
from classify.prediction.tag import audioset_labels, clip_windows, format_tags, tag
from spec2img.config import from_preset

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS_DIR = SHARED / "weights" / "efficientat"
CHECKPOINT = WEIGHTS_DIR / "mn04_as_mAP_432.pt"
ESC50_AUDIO = SHARED / "data" / "esc50-dev" / "audio"

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def tone(path: Path, *, seconds: float, sr: int = 8000, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def test_labels_shipped_with_the_package():
    labels = audioset_labels()
    assert list(labels.columns) == ["index", "mid", "display_name"]
    assert len(labels) == 527 and labels["index"].tolist() == list(range(527))
    assert labels["display_name"].iloc[0] == "Speech"


@pytest.mark.realdata
@pytest.mark.skipif(not (WEIGHTS_DIR / "audioset_class_labels_indices.csv").is_file(), reason="no ../shared weights")
def test_labels_equal_the_reference_list():
    with open(WEIGHTS_DIR / "audioset_class_labels_indices.csv", newline="") as fh:
        ref = list(csv.DictReader(fh))
    assert audioset_labels()["display_name"].tolist() == [r["display_name"] for r in ref]
    assert audioset_labels()["mid"].tolist() == [r["mid"] for r in ref]


def test_windows_cover_long_and_short_files(tmp_path):
    cfg = from_preset("efficientat")
    long = clip_windows(tone(tmp_path / "long.wav", seconds=23), cfg)
    assert len(long) == 3 and all(m.shape == (128, 1000) for m in long)  # 0-10, 10-20, 13-23 s
    short = clip_windows(tone(tmp_path / "short.wav", seconds=0.01), cfg)  # below one STFT window
    assert len(short) == 1 and short[0].shape[0] == 128


def test_tag_table_and_lines(tmp_path):
    torch.manual_seed(0)
    paths = [tone(tmp_path / "a.wav", seconds=1), tone(tmp_path / "b.flac", seconds=5, freq=1000)]
    (tmp_path / "bad.wav").write_bytes(b"junk")
    df = tag([*paths, tmp_path / "bad.wav"], top_k=4, window=2.0, model=EfficientATMN())
    assert list(df.columns) == ["source", "rank", "label", "probability", "index", "mid"]
    assert len(df) == 8 and df["rank"].tolist() == [1, 2, 3, 4] * 2
    assert (np.diff(df["probability"].to_numpy().reshape(2, 4), axis=1) <= 0).all()
    lines = format_tags(df)
    assert len(lines) == 2 and lines[0].startswith(f"{paths[0]}: ")


@pytest.mark.realdata
@pytest.mark.skipif(not (CHECKPOINT.is_file() and ESC50_AUDIO.is_dir()), reason="no ../shared weights or esc50-dev")
def test_top3_tags_match_reference(tmp_path, capsys):
    with open(WEIGHTS_DIR / "reference_tags.csv", newline="") as fh:
        ref = {r["filename"]: r["top3_audioset_tags"] for r in csv.DictReader(fh)}
    names = ["2-104168-A-32.wav", "5-198411-E-20.wav"]  # keyboard typing, crying baby
    out = tmp_path / "tags.csv"
    argv = ["tag", *(str(ESC50_AUDIO / n) for n in names), "--top-k", "3", "--weights", str(CHECKPOINT)]
    assert cli.main([*argv, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    for name, line in zip(names, lines):
        assert line == f"{ESC50_AUDIO / name}: {ref[name]}"
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6
