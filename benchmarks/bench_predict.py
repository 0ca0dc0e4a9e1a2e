"""Prediction speed on CPU: clips/s for the torch and the ONNX (onnxruntime) backends.

    uv run python benchmarks/bench_predict.py [--n 100] [--archs efficientnet_lite0 resnet34]

Clips: the first ``--n`` ESC-50 clips of ``../shared/data/esc50-dev/audio`` (5 s, 44.1 kHz) when
present, else ``--n`` synthetic 5 s clips. Models: untrained networks of each architecture in a run
folder with the default spectrogram settings and 5 s crops (speed does not depend on training).
Feature time (decode, resample, log-mel, image, windows) is measured once and apart from model
time; each backend then scores the same windows in batches of ``--bs``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]

from classify.testing import make_untrained_run  # noqa: E402

from classify.prediction.export import export_onnx  # noqa: E402
from classify.prediction.onnx_predict import onnx_scorer  # noqa: E402
from classify.prediction.ensemble import torch_scorer  # noqa: E402
from classify.prediction.windows import file_windows  # noqa: E402
from spec2img.config import SpectrogramConfig  # noqa: E402

ESC50 = ROOT.parent / "shared" / "data" / "esc50-dev" / "audio"
DEFAULT = dict(sr=44100, n_fft=2048, hop_length=512, n_mels=128)  # spec2img's default preset


def clips(n: int, tmp: Path) -> tuple[list[Path], str]:
    if ESC50.is_dir():
        files = sorted(ESC50.glob("*.wav"))[:n]
        return files, f"{len(files)} ESC-50 clips (5 s, 44.1 kHz)"
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(5 * 44100) / 44100
        y = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        out.append(tmp / f"clip{i:03d}.wav")
        sf.write(out[-1], y.astype(np.float32), 44100, subtype="PCM_16")
    return out, f"{n} synthetic clips (5 s, 44.1 kHz)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--archs", nargs="+", default=["efficientnet_lite0", "resnet34"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    files, what = clips(args.n, tmp)
    cfg = SpectrogramConfig(**DEFAULT)
    crop = int(np.ceil(5.0 * cfg.sr / cfg.hop_length)) + 1
    crop = min(crop, cfg.frames(5 * cfg.sr))  # fit's rule: at most the widest image (431 columns)
    file_windows(files[0], cfg, crop)  # warm-up: imports, FFT plans, mel filters
    t0 = time.perf_counter()
    wins = [file_windows(f, cfg, crop) for f in files]
    feat = time.perf_counter() - t0
    x = np.concatenate([w.images for w in wins])
    print(f"# {what}, {len(x)} windows of {x.shape[1:]} ; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load avg "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"features: {feat:.2f} s = {len(files) / feat:.1f} clips/s\n")
    print("| arch | backend | model s | model clips/s | end-to-end clips/s |")
    print("|---|---|---|---|---|")
    for arch in args.archs:
        run = make_untrained_run(tmp / arch, arch=arch, crop_width=crop, classes=[f"c{i}" for i in range(50)],
                                 **DEFAULT)
        onnx = export_onnx(run)
        for backend, scorer in (("torch", torch_scorer(run)), ("onnx", onnx_scorer(onnx))):
            scorer.score(x[: args.bs])  # warm-up
            t0 = time.perf_counter()
            for b in range(0, len(x), args.bs):
                scorer.score(x[b:b + args.bs])
            model = time.perf_counter() - t0
            print(f"| {arch} | {backend} | {model:.2f} | {len(files) / model:.1f} | "
                  f"{len(files) / (model + feat):.1f} |", flush=True)
    print(f"\nload avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
