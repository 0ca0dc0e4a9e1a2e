"""EfficientAT's own per-clip pipeline, timed like ``bench_serve.py --clip-cost`` for the side-by-side
in the README (issue 16).

Per clip, as EfficientAT's ``inference.py`` does it on CPU: decode and resample with
``librosa.load(path, sr=32000, mono=True)``; its mel front-end ``AugmentMelSTFT`` (n_mels 128,
win_length 800, hop 320, eval mode) from ``models/preprocess.py`` of an EfficientAT checkout given
with ``--src`` (https://github.com/fschmid56/EfficientAT; its code is not part of this repository);
the mn04 network's forward pass in fp32 (the same network and AudioSet weights: classify's port,
checked module for module and against EfficientAT's reference outputs, so the arithmetic is its).
One core, one torch thread; the marginal cost per 5 s clip is the time for 200 ESC-50 clips minus
the time for 20, divided by 180 (the same clips and rule as ``bench_serve.py --clip-cost``).

Its mel needs torchaudio, which has no build for the torch this project locks, so it runs in an
environment of its own (uv builds it; nothing of it enters the project):

    uv run --no-project -p 3.11 --with 'torch==2.11.0' --with 'torchaudio==2.11.0' --with librosa \\
        python benchmarks/bench_efficientat_reference.py --src EFFICIENTAT_CHECKOUT

Writes benchmarks/results/efficientat_reference_clip_cost.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # classify's torch-only port of the network (no other project import)

from bench_serve import ESC50, RESULTS, marginal_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True, help="an EfficientAT checkout (holds models/preprocess.py)")
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--big", type=int, default=200)
    args = ap.parse_args()
    if not (args.src / "models" / "preprocess.py").is_file():
        raise SystemExit(f"{args.src}: no models/preprocess.py; pass an EfficientAT checkout with --src")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import librosa
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(args.src))
    from models.preprocess import AugmentMelSTFT  # EfficientAT's own front-end

    from classify.models.backbones.efficientat import efficientat_mn04

    model = efficientat_mn04(ROOT / "assets" / "efficientat" / "mn04_as_mAP_432.pt").eval()
    mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320).eval()
    files = sorted(ESC50.glob("*.wav"))[: args.big]
    if len(files) < args.big:
        raise SystemExit(f"needs {args.big} clips in {ESC50}")

    def run(fs):
        for f in fs:
            waveform, _ = librosa.load(f, sr=32000, mono=True)
            with torch.no_grad():
                spec = mel(torch.from_numpy(waveform[None, :]))
                logits = model(spec.unsqueeze(0))
            torch.sigmoid(logits.float()).squeeze().numpy()

    run(files[:5])  # warm-up
    ms = marginal_ms(run, files, args.small, args.big)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    rec = {"per_clip_ms": ms, "pipeline": "librosa.load(sr=32000) + EfficientAT AugmentMelSTFT + mn04 forward (fp32)",
           "commit": commit, "load_avg": os.getloadavg()[0],
           "versions": {p: version(p) for p in ("torch", "torchaudio", "librosa", "soxr", "numpy")},
           "machine": f"{platform.machine()}, {os.cpu_count()} cpus"}
    print(f"EfficientAT's pipeline: {ms['cpu']:.1f} ms of CPU, {ms['wall']:.1f} ms wall per 5 s clip "
          f"({args.small} clips {ms['small_s']:.2f} s, {args.big} clips {ms['big_s']:.2f} s; load {rec['load_avg']:.1f})")
    (RESULTS / "efficientat_reference_clip_cost.json").write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main()
