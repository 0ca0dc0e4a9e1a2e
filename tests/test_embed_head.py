"""Head-only transfer end to end on tiny synthetic data (seeded, random-init network, no weights)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from classify.models.backbones.efficientat import EfficientATMN
from classify.models.backbones.embed_head import (
    audio_log_mel,
    check_front_end,
    embed_audio,
    embed_images,
    embed_images_dir,
)
from classify.errors import ClassifyError
from classify.training.headonly import fit_logistic, probabilities
from spec2img.config import from_preset
from spec2img.convert import convert
from spec2img.image import render
from spec2img.io import encode_png

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fit_head(X, labels, *, multi_label=False):
    """The head-only logistic head on embeddings: ``predict(X)`` -> labels, ``predict_proba(X)``."""
    classes = None if multi_label else np.unique(labels)
    Y = labels if multi_label else (labels[:, None] == classes[None]).astype(float)
    shift, scale, W, b = fit_logistic(X.astype(np.float64), Y, multi_label=multi_label)

    class Head:
        @staticmethod
        def predict_proba(Z):
            return probabilities((Z - shift) / scale, W, b, multi_label=multi_label)

        @staticmethod
        def predict(Z):
            return classes[Head.predict_proba(Z).argmax(1)]

    return Head


def tones(folder, *, n: int = 6, sr: int = 16000):
    """n low (300-400 Hz) and n high (3-4 kHz) noisy 1 s tones; returns paths and labels."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    t = np.arange(sr) / sr
    for label, lo in (("low", 300.0), ("high", 3000.0)):
        for i in range(n):
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(lo, lo * 4 / 3) * t) + 0.01 * rng.standard_normal(sr)
            path = folder / f"{label}_{i}.wav"
            sf.write(str(path), y.astype(np.float32), sr)
            paths.append(path)
            labels.append(label)
    return paths, np.array(labels)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EfficientATMN().eval()


def test_head_only_from_audio_and_from_images(tmp_path, model):
    paths, labels = tones(tmp_path)
    cfg = from_preset("efficientat")
    X = embed_audio(model, paths)
    assert X.shape == (12, 384) and X.dtype == np.float32
    pngs = []
    for p in paths:
        png = tmp_path / f"{p.stem}.png"
        png.write_bytes(encode_png(render(audio_log_mel(p, cfg)[None], cfg)))
        pngs.append(png)
    X_img = embed_images(model, pngs, cfg)
    assert np.corrcoef(X.ravel(), X_img.ravel())[0, 1] > 0.99  # 8-bit images: the same embeddings
    train = np.r_[0:4, 6:10]
    valid = np.r_[4:6, 10:12]
    head = fit_head(X_img[train], labels[train])
    assert (head.predict(X_img[valid]) == labels[valid]).all()
    assert head.predict_proba(X_img[valid]).shape == (4, 2)


def test_multi_label_head(tmp_path, model):
    paths, labels = tones(tmp_path, n=4)
    X = embed_audio(model, paths)
    Y = np.stack([labels == "low", labels == "high", np.arange(8) % 2 == 0], axis=1).astype(int)
    head = fit_head(X, Y, multi_label=True)
    assert head.predict_proba(X).shape == (8, 3)


def test_front_end_check():
    check_front_end(from_preset("efficientat", duration=5.0))  # cropping is fine
    with pytest.raises(ClassifyError, match="sr=44100.*--preset efficientat"):
        check_front_end(from_preset("default"))
    with pytest.raises(ClassifyError, match="colormap"):
        check_front_end(from_preset("efficientat", mode="colormap"))


def test_head_only_from_a_spec2img_folder(tmp_path, model):
    (tmp_path / "audio" / "x").mkdir(parents=True)
    paths, labels = tones(tmp_path / "audio" / "x", n=4)
    for p, label in zip(paths, labels):  # folder-per-class layout
        (tmp_path / "audio" / label).mkdir(exist_ok=True)
        p.rename(tmp_path / "audio" / label / p.name)
    convert(tmp_path / "audio", tmp_path / "images", from_preset("efficientat"), jobs=1, progress=False)
    X, table = embed_images_dir(model, tmp_path / "images")
    assert X.shape == (8, 384) and len(table) == 8
    y = np.array([lab[0] for lab in table["labels"]])
    assert set(y) == {"low", "high"}
    head = fit_head(X, y)
    assert (head.predict(X) == y).all()
    with pytest.raises(ClassifyError, match="--preset efficientat"):
        convert(tmp_path / "audio", tmp_path / "plain", from_preset("default"), jobs=1, progress=False)
        embed_images_dir(model, tmp_path / "plain")
