"""A synthetic run folder written to the RUN_DIR contract (ARCHITECTURE.md), for tests, the report
benchmark and demos. No training: predictions, embeddings and curves are drawn from a seeded RNG.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from spec2img.config import SpectrogramConfig

from ..config import TrainConfig
from ..runfolder import ModelInfo, write_classes, write_json, write_metrics, write_predictions, write_run


def write_synthetic_run(root: Path, *, n_classes: int = 6, n_clips: int = 40, tiles: int = 2,
                        n_audio: int | None = None, audio_seconds: float | None = None, audio_sr: int = 8000,
                        image_size: tuple[int, int] = (32, 40), multi_label: bool = False,
                        folds: int = 0, emb_dim: int = 32, seed: int = 0, classes: list[str] | None = None,
                        flipped: int = 0, head_only: bool = False) -> dict[str, Path]:
    """Write ``root/audio``, ``root/images`` and ``root/run``; return those three paths.

    Every validation clip is cut into ``tiles`` windows of 1 s (one image each, offsets 0, 1, ...),
    so there are ``n_clips * tiles`` validation items. Only the first ``n_audio`` clips (default
    all) get a WAV (``audio_seconds``, default one second per tile), so the rest exercise "no audio file". ``folds > 0`` writes a cv run
    (``fold_k/`` subfolders + ``oof_predictions.csv`` + ``cv_metrics.json``).
    ``classes``: class names (default generated); ``flipped``: that many clips (single-label; the
    last ones) carry a wrong given label, two classes on, while their scores follow the real class;
    ``head_only``: the files ``classify fit --head-only`` writes (one-row history, no lr_find).
    """
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root = Path(root)
    audio_dir, images_dir, run_dir = root / "audio", root / "images", root / "run"
    for d in (audio_dir, images_dir, run_dir):
        d.mkdir(parents=True, exist_ok=True)
    if classes is None:
        classes = [f"class_{k:02d}" if k % 3 else f"Long class name {k:02d}" for k in range(n_classes)]
    classes = list(classes)
    n_classes = len(classes)

    # clips: a label (or 1-3 labels), a source path, an audio file for the first n_audio
    n_audio = n_clips if n_audio is None else n_audio
    clip_labels = []
    for c in range(n_clips):
        first = c % n_classes
        labs = [first]
        if multi_label and rng.random() < 0.4:
            labs.append(int(rng.integers(n_classes)))
        clip_labels.append(sorted(set(labs)))
    given_labels = [list(labs) for labs in clip_labels]
    for c in range(n_clips - flipped, n_clips):
        given_labels[c] = [(clip_labels[c][0] + 2) % n_classes]
    sources = [f"class{labs[0]}/clip {c:04d}.wav" for c, labs in enumerate(clip_labels)]
    t = np.arange(int((audio_seconds or float(tiles)) * audio_sr)) / audio_sr
    for c in range(min(n_audio, n_clips)):
        (audio_dir / sources[c]).parent.mkdir(parents=True, exist_ok=True)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * clip_labels[c][0]) * t) * np.exp(-3 * t)
        sf.write(audio_dir / sources[c], tone.astype(np.float32), audio_sr, subtype="PCM_16")

    # images + manifest
    h, w = image_size
    rows, manifest = [], []
    for c, (src, labs) in enumerate(zip(sources, clip_labels)):
        imgs = []
        for k in range(tiles):
            rel = f"{classes[labs[0]].replace(' ', '_')}/clip_{c:04d}_{k}.png"
            (images_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            pix = (rng.random((h, w)) * 80 + np.linspace(160, 0, h)[:, None] * (1 + labs[0] % 3) / 3)
            Image.fromarray(np.clip(pix, 0, 255).astype(np.uint8), mode="L").save(images_dir / rel)
            imgs.append(rel)
            rows.append({"image": rel, "source": src, "offset": float(k), "clip": c})
        manifest.append({"source": src, "images": ";".join(imgs), "offsets": ";".join(str(float(k)) for k in range(tiles)),
                         "labels": ";".join(classes[i] for i in given_labels[c]), "fold": c % max(folds, 1), "group": src,
                         "manually_verified": int(c % 4 != 0), "duration": float(tiles), "orig_sr": audio_sr,
                         "channels": 1, "status": "ok", "error": ""})
    manifest.append({"source": "broken.wav", "images": "", "offsets": "", "labels": "", "fold": "", "group": "broken.wav",
                     "manually_verified": "", "duration": "", "orig_sr": "", "channels": "", "status": "failed",
                     "error": "could not decode"})
    pd.DataFrame(manifest).to_csv(images_dir / "manifest.csv", index=False)
    spec = {"preset": "default", "feature": "logmel", "sr": audio_sr, "n_fft": 256, "hop_length": 64,
            "n_mels": h, "fmin": 20.0, "fmax": None, "mode": "grey", "duration": None, "crop": "center",
            "tile": 1.0, "tile_hop": 1.0}
    (images_dir / "spectrogram.json").write_text(json.dumps(spec, indent=2))

    # predictions: the true class gets a boost; each class leaks into its neighbour
    n = len(rows)
    truth = np.zeros((n, n_classes), dtype=bool)
    for r, row in enumerate(rows):
        truth[r, clip_labels[row["clip"]]] = True
    logits = rng.normal(0, 1.0, (n, n_classes)) + 2.5 * truth
    logits += 1.6 * np.roll(truth, 1, axis=1) * (rng.random((n, 1)) < 0.5)
    if multi_label:
        probs = 1 / (1 + np.exp(-(logits - 1.5)))
        loss = -np.mean(truth * np.log(probs) + (~truth) * np.log(1 - probs), axis=1)
    else:
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        given = np.array([given_labels[row["clip"]][0] for row in rows])
        loss = -np.log(probs[np.arange(n), given])
    df = pd.DataFrame(rows).drop(columns="clip")
    df["labels"] = [";".join(classes[i] for i in given_labels[row["clip"]]) for row in rows]
    df["pred"] = [classes[i] for i in probs.argmax(axis=1)]
    df["loss"] = loss
    for k, cname in enumerate(classes):
        df[f"p_{cname}"] = probs[:, k]
    centroids = rng.normal(0, 3, (n_classes, emb_dim))
    emb = (truth @ centroids) / truth.sum(axis=1, keepdims=True) + rng.normal(0, 1, (n, emb_dim))

    # the audio folder is recorded where spec2img records it (IMAGES_DIR/spec2img_run.json)
    (images_dir / "spec2img_run.json").write_text(json.dumps({"audio_dir": str(audio_dir), "labels_csv": None}))
    # train.json and model.json as fit writes them (the one typed writers)
    train = TrainConfig(images=str(images_dir), arch="resnet18", epochs=3, lr=3e-3, bs=32, seed=seed)
    model = ModelInfo(arch="resnet18", n_classes=n_classes, in_channels=1, input_height=None, dropout=0.5,
                      hidden=512, crop_width=63, multi_label=multi_label)
    extra = {}
    if head_only:
        train = TrainConfig(images=str(images_dir), arch="efficientat_mn04", head_only=True, head_c=1.0, seed=seed)
        model = dataclasses.replace(model, arch="efficientat_mn04", head="linear", hidden=384, crop_width=250)
        extra = {"head_only": True, "head_c": 1.0, "train_windows": 3 * n, "embed_seconds": 4.2,
                 "head_fit_seconds": 0.3, "protocol": {"head_c": "fixed", "checkpoint": "the one logistic fit"}}
    epochs = np.arange(3)
    history = pd.DataFrame({"epoch": epochs, "train_loss": 2.0 / (epochs + 1), "valid_loss": 1.8 / (epochs + 1) + 0.2,
                            "accuracy": 0.5 + 0.1 * epochs, "time": ["00:01"] * 3})
    lrs = np.logspace(-7, 1, 60)
    lr_find = {"lrs": lrs.tolist(), "losses": (2 - np.exp(-((np.log10(lrs) + 2.5) ** 2)) + np.where(lrs > 0.3, 5 * lrs, 0)).tolist(),
               "valley": 1e-3, "slide": 2e-3}

    def write_one(folder: Path, sel: np.ndarray) -> None:
        if head_only:
            hist = pd.DataFrame({"train_loss": [0.4], "valid_loss": [float(loss[sel].mean())], "epoch": [0],
                                 "phase": ["head-only"]})
        else:
            hist = history
        metrics = {"accuracy": float(np.mean(probs[sel].argmax(1) == truth[sel].argmax(1))),
                   "valid_loss": float(loss[sel].mean()), **extra}
        write_run(folder, classes=classes, spectrogram=SpectrogramConfig.from_dict(spec), train=train,
                  model_info=model, metrics=metrics, history=hist, predictions=df[sel].reset_index(drop=True),
                  embeddings=emb[sel], versions_json=False)
        if not head_only:
            write_json(folder / "lr_find.json", lr_find)

    if folds:
        clip_fold = np.array([row["clip"] % folds for row in rows])
        write_classes(run_dir, classes)
        train.save(run_dir)
        for k in range(folds):
            write_one(run_dir / f"fold_{k}", clip_fold == k)
        write_predictions(run_dir, df.assign(fold=[f"fold_{k}" for k in clip_fold]), name="oof_predictions.csv")
        write_metrics(run_dir, {"folds": folds}, name="cv_metrics.json")
    else:
        write_one(run_dir, np.ones(n, dtype=bool))
    return {"audio": audio_dir, "images": images_dir, "run": run_dir}
