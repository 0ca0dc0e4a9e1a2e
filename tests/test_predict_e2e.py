"""End to end: synthetic audio -> spec2img -> classify fit (short real training) -> predict raw audio
of other lengths and formats, torch and ONNX, (ensembles: test_predict.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify.config import TrainConfig
from classify.data.imageset import load_image_set
from classify.prediction.export import export_onnx
from classify.prediction.predict import predict
from conftest import tone, write
from spec2img.config import SpectrogramConfig
from spec2img.convert import convert

SR = 8000
TONES = {"low": 300.0, "high": 2000.0}


def _train(images: Path, out: Path, seed: int) -> Path:
    cfg = TrainConfig(images=str(images), arch="resnet18", pretrained=False, epochs=2, freeze_epochs=0,
                      bs=8, lr=3e-3, crop_seconds=1.0, valid_pct=0.25, patience=0, seed=seed,
                      channels_last=False, quiet=True)
    from classify.training.train import fit  # fastai: imported when a test trains, not at collection

    fit(load_image_set(images), cfg, out)
    return out


@pytest.mark.slow
def test_fit_then_predict_raw_audio(tmp_path):
    audio = tmp_path / "audio"
    for label, f in TONES.items():
        for i in range(8):
            write(audio / label / f"{label}{i}.wav", tone(f * (1 + 0.02 * i), sr=SR, duration=1.0, noise=0.05,
                                                          seed=i), SR, "PCM_16")
    spec = SpectrogramConfig(sr=SR, n_fft=256, hop_length=128, n_mels=32)
    convert(audio, tmp_path / "images", spec, jobs=1, progress=False)
    run_a = _train(tmp_path / "images", tmp_path / "run_a", seed=0)

    new = tmp_path / "new"
    files = [write(new / "short_low.wav", tone(310, sr=SR, duration=0.4, noise=0.05, seed=50), SR),
             write(new / "long_high.flac", tone(2050, sr=16000, duration=6.0, noise=0.05, seed=51), 16000),
             write(new / "mid_low.ogg", tone(295, sr=SR, duration=2.5, noise=0.05, seed=52), SR)]
    r = predict([run_a], files, timeline=True)
    assert (r.table["status"] == "ok").all()
    assert r.timeline["file"].value_counts()[str(files[1])] >= 10
    onnx = export_onnx(run_a)
    ro = predict([onnx], files, backend="onnx")
    assert np.abs(r.probs - ro.probs).max() < 1e-4
    # raw audio through predict == the images fit validated on (same features, same crop), so the
    # probabilities must equal fit's own valid_predictions.csv
    vp = pd.read_csv(run_a / "valid_predictions.csv")
    rv = predict([run_a], [audio / src for src in vp["source"]])
    cols = [c for c in vp.columns if c.startswith("p_")]
    assert np.abs(rv.probs - vp[cols].to_numpy()).max() < 1e-4


@pytest.mark.slow
def test_imagenet_recipe_colour_images_resized_height_predict_like_fit(tmp_path):
    """The README's ImageNet recipe shape (magma colour images, --input-height, notebook-style
    schedule, no augmentation): predicting raw audio reproduces fit's validation probabilities."""
    from classify.data.augment import AugmentConfig

    audio = tmp_path / "audio"
    for label, f in TONES.items():
        for i in range(6):
            write(audio / label / f"{label}{i}.wav", tone(f * (1 + 0.02 * i), sr=SR, duration=1.0, noise=0.05,
                                                          seed=i), SR, "PCM_16")
    spec = SpectrogramConfig(sr=SR, n_fft=256, hop_length=256, n_mels=32, mode="colormap", cmap="magma")
    convert(audio, tmp_path / "images", spec, jobs=1, progress=False)
    ds = load_image_set(tmp_path / "images")
    assert ds.images[0].shape[0] == 3
    cfg = TrainConfig(images=str(tmp_path / "images"), arch="resnet18", pretrained=False, epochs=1,
                      freeze_epochs=1, bs=4, lr=1e-2, unfrozen_lr=1e-4, input_height=48, crop_seconds=1.0,
                      valid_pct=0.34, patience=0, seed=0, quiet=True,
                      augment=AugmentConfig(time_masks=0, freq_masks=0, roll=False, mixup=0.0))
    from classify.training.train import fit

    fit(ds, cfg, tmp_path / "run")
    vp = pd.read_csv(tmp_path / "run" / "valid_predictions.csv")
    rv = predict([tmp_path / "run"], [audio / src for src in vp["source"]])
    cols = [c for c in vp.columns if c.startswith("p_")]
    assert np.abs(rv.probs - vp[cols].to_numpy()).max() < 1e-4
