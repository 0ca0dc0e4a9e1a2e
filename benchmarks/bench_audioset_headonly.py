"""Head-only AudioSet transfer on esc50-dev: frozen EfficientAT mn04 embeddings + logistic regression.

4 folds stratified by class and grouped by ``src_file``: the folds of ``benchmarks/accuracy.py``
and ``benchmarks/bench_audioset.py`` (``classify.data.splits.group_kfold``, seed 0). Embeddings are
computed once (the network is frozen), from the audio and from the
same log-mels round-tripped through 8-bit spec2img images, so the cost of the PNG quantisation
shows. Reads ``../shared`` beside the checkout and exits with a message when it is absent.

    uv run python benchmarks/bench_audioset_headonly.py [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classify.data import splits
from classify.models.backbones.efficientat import efficientat_mn04
from classify.models.backbones.embed_head import audio_log_mel, embed_log_mels
from classify.training.headonly import fit_logistic, probabilities
from spec2img.config import from_preset
from spec2img.image import render, unrender

sys.path.insert(0, str(Path(__file__).parent))
from record import RESULTS, environment  # noqa: E402  (benchmarks/record.py)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ESC50 = SHARED / "data" / "esc50-dev"
CHECKPOINT = SHARED / "weights" / "efficientat" / "mn04_as_mAP_432.pt"


def grouped_folds(meta: pd.DataFrame, *, n_splits: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, valid) index pairs: stratified by category, grouped by src_file, with the folds
    ``classify`` and the other accuracy benchmarks use (clips of single-recording classes, fold -1,
    train in every fold)."""
    fold = splits.group_kfold(meta["category"].to_numpy(), meta["src_file"].to_numpy(), n_splits=n_splits, seed=seed)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def cross_validate(X: np.ndarray, y: np.ndarray, folds) -> tuple[list[float], float]:
    """Per-fold accuracy and total head-fitting seconds."""
    accs, seconds = [], 0.0
    for train, valid in folds:
        t0 = time.perf_counter()
        classes = np.unique(y[train])
        Y = (y[train][:, None] == classes[None]).astype(float)
        shift, scale, W, b = fit_logistic(np.asarray(X[train], np.float64), Y, multi_label=False)
        seconds += time.perf_counter() - t0
        pred = classes[probabilities((X[valid] - shift) / scale, W, b, multi_label=False).argmax(1)]
        accs.append(float((pred == y[valid]).mean()))
    return accs, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(RESULTS / "audioset_headonly.json"),
                        help="write the numbers, with commit, versions and machine, to this JSON file "
                             "(default benchmarks/results/audioset_headonly.json)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (ESC50.is_dir() and CHECKPOINT.is_file()):
        print(f"skipped: needs {ESC50} and {CHECKPOINT}", file=sys.stderr)
        return 0
    meta = pd.read_csv(ESC50 / "esc50.csv")
    cfg = from_preset("efficientat")
    y = meta["category"].to_numpy()
    folds = grouped_folds(meta)

    t0 = time.perf_counter()
    model = efficientat_mn04(CHECKPOINT)
    mels = [audio_log_mel(ESC50 / "audio" / f, cfg) for f in meta["filename"]]
    t_features = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_audio = embed_log_mels(model, mels)
    t_embed = time.perf_counter() - t0
    X_image = embed_log_mels(model, [unrender(render(m[None], cfg), cfg)[0] for m in mels])

    results = {"clips": len(meta), "classes": int(meta["category"].nunique()), "folds": 4,
               "torch_threads": torch.get_num_threads(),
               "load_and_logmel_s": round(t_features, 2), "embed_s": round(t_embed, 2)}
    for name, X in (("audio", X_audio), ("png_roundtrip", X_image)):
        accs, fit_s = cross_validate(X, y, folds)
        results[name] = {"fold_accuracy": [round(a, 4) for a in accs], "mean_accuracy": round(float(np.mean(accs)), 4),
                         "std_accuracy": round(float(np.std(accs)), 4), "head_fit_s_all_folds": round(fit_s, 2)}
    results["environment"] = environment()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
